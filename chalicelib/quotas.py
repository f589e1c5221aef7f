"""A tenant's limits, checked when a job is created: bytes declared per day and open jobs.

Both are reserved with conditional writes before the job is written, so
concurrent ``POST /jobs`` of one tenant cannot together pass a limit:

- bytes: a per-day (UTC) counter item, added to only while the total stays
  within the limit;
- open jobs: a set of job ids on the tenant's item, added to only while it
  is smaller than the limit. A job leaves the set when it is seen finished:
  when the set is full, each job in it is looked at once (``is_open``,
  given by the service) and the finished ones are taken out.

Over a limit: ``QuotaExceeded`` (429, with Retry-After). A job that could
never fit the daily limit is a 400: retrying cannot help.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

from .domain import now
from .errors import QuotaExceeded, Unauthorized, ValidationError
from .ports import TenantStore
from .settings import Settings
from .tenants import Tenant
from .throughput import format_size

log = logging.getLogger("squeezer.quotas")

# A day's counter is kept this long after the day ends (the table's TTL removes it).
DAY_RECORD_KEEP_SECONDS = 2 * 86400
# How soon a tenant at its open-jobs limit is told to try again.
OPEN_JOBS_RETRY_SECONDS = 60


@dataclass(frozen=True)
class Reservation:
    """What admit() reserved, for release() if the job is not written after all."""

    tenant_id: str
    job_id: str
    day: str
    size: int


class Quotas:
    def __init__(self, store: TenantStore, settings: Settings, *, clock: Callable[[], float] = now) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock

    def admit(self, tenant_id: str, job_id: str, size: int, *, is_open: Callable[[str], bool]) -> Reservation:
        """Reserve ``size`` bytes of today's allowance and an open-job slot for ``job_id``, or raise."""
        tenant = self._store.get_tenant(tenant_id)
        if tenant is None or tenant.revoked:
            raise Unauthorized("this token's tenant is revoked or gone: ask the operator for a new token")
        max_bytes, max_jobs = self._limits(tenant)
        reservation = self._reserve_bytes(tenant_id, job_id, size, max_bytes, what="this job")
        try:
            self._take_job_slot(tenant, tenant_id, job_id, max_jobs, is_open)
        except BaseException:
            self._release_bytes(reservation)
            raise
        return reservation

    def reserve_bytes(self, tenant_id: str, job_id: str, size: int) -> Reservation:
        """Reserve ``size`` more bytes of today's allowance for a job that holds its open-job slot already."""
        tenant = self._store.get_tenant(tenant_id)
        if tenant is None or tenant.revoked:
            raise Unauthorized("this token's tenant is revoked or gone: ask the operator for a new token")
        max_bytes, _ = self._limits(tenant)
        return self._reserve_bytes(tenant_id, job_id, size, max_bytes, what="this batch")

    def release_bytes(self, reservation: Reservation) -> None:
        """Give back what reserve_bytes() reserved (the batch could not be written)."""
        self._release_bytes(reservation)

    def _reserve_bytes(self, tenant_id: str, job_id: str, size: int, max_bytes: int, *, what: str) -> Reservation:
        at = self._clock()
        day, seconds_left = _day(at)
        if size > max_bytes:
            raise ValidationError(
                f"{what} declares {format_size(size)}, more than the {format_size(max_bytes)} a day this "
                "tenant may send: split it over several days or ask the operator to raise --max-bytes-per-day",
                code="exceeds_quota",
            )
        used = self._store.reserve_bytes(
            tenant_id, day, size, limit=max_bytes, expires_at=int(at) + seconds_left + DAY_RECORD_KEEP_SECONDS
        )
        if used is not None:
            raise QuotaExceeded(
                f"daily limit reached: {format_size(used)} of this tenant's {format_size(max_bytes)} a day are "
                f"declared today (UTC) and {what} adds {format_size(size)}; the allowance resets at 00:00 UTC",
                retry_after=seconds_left,
            )
        return Reservation(tenant_id, job_id, day, size)

    def release(self, reservation: Reservation) -> None:
        """Give back what admit() reserved (the job could not be written)."""
        self._release_bytes(reservation)
        self._store.remove_open_jobs(reservation.tenant_id, [reservation.job_id])

    def _take_job_slot(
        self, tenant: Tenant, tenant_id: str, job_id: str, limit: int, is_open: Callable[[str], bool]
    ) -> None:
        if self._store.add_open_job(tenant_id, job_id, limit=limit):
            return
        # Full: take out the jobs that have finished since they were counted, then try once more.
        current = self._store.get_tenant(tenant_id) or tenant
        counted = current.open_jobs
        finished = [job for job in sorted(counted) if not is_open(job)]
        if finished:
            self._store.remove_open_jobs(tenant_id, finished)
            log.info("tenant %s: %d finished job(s) no longer counted as open", tenant_id, len(finished))
            if self._store.add_open_job(tenant_id, job_id, limit=limit):
                return
        raise QuotaExceeded(
            f"open-jobs limit reached: this tenant has {len(counted) - len(finished)} unfinished job(s) and may have "
            f"{limit} at a time; wait for one to finish, or cancel one ('squeezer cancel JOB_ID')",
            retry_after=OPEN_JOBS_RETRY_SECONDS,
        )

    def _release_bytes(self, reservation: Reservation) -> None:
        try:
            self._store.release_bytes(reservation.tenant_id, reservation.day, reservation.size)
        except Exception:  # noqa: BLE001 - an allowance counted twice is the lesser harm; logged
            log.warning("could not give back %d bytes of tenant %s", reservation.size, reservation.tenant_id)

    def _limits(self, tenant: Tenant) -> tuple[int, int]:
        return (
            tenant.limits.max_bytes_per_day or self._settings.max_bytes_per_day,
            tenant.limits.max_open_jobs or self._settings.max_open_jobs,
        )


def _day(at: float) -> tuple[str, int]:
    """The UTC date of ``at`` and the whole seconds left in it."""
    moment = dt.datetime.fromtimestamp(at, tz=dt.UTC)
    tomorrow = dt.datetime.combine(moment.date() + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    return moment.date().isoformat(), max(1, int((tomorrow - moment).total_seconds()))
