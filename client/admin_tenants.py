"""``squeezer admin`` tenant commands: tokens and limits, with AWS credentials (not through the API).

    create-tenant NAME     a tenant and its first token (printed once)
    list-tenants           every tenant: ids, limits, last use, revoked or not
    rotate-token NAME      a new token; the old one stops working
    revoke-tenant NAME     the tenant's token stops working; its jobs stay until they expire
    set-limits NAME        bytes declared per day and open jobs (empty: the service default)

The table comes from ``--table`` or ``SQUEEZER_TABLE``; region and endpoint
from the usual AWS environment (``AWS_REGION``, ``AWS_ENDPOINT_URL``), so the
same commands work against AWS, LocalStack and the local stack
(``eval "$(python -m infra.local env)"`` sets them for the latter).

Exit codes: 0 done; 1 the tenant does not exist, or the name is taken;
2 usage error; 3 AWS could not be reached or refused the command.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import click

from chalicelib.aws import AwsClients
from chalicelib.errors import AwsError, SqueezerError
from chalicelib.settings import AwsLocation
from chalicelib.tenants import IssuedToken, Limits, Tenant, TenantAdmin
from chalicelib.tenantstore import DynamoTenantStore

from . import output
from .admin import AwsUnavailable, admin
from .errors import SqueezerCliError

_SIZE = re.compile(r"^\s*(\d+)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


class ByteSize(click.ParamType[int]):
    """A number of bytes: ``1073741824``, ``500MiB``, ``10G``, ``2TiB`` (powers of 1024)."""

    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        match = _SIZE.match(str(value))
        if not match:
            self.fail(f"{value!r} is not a size: use bytes or a unit, as in 500MiB, 10GiB, 2TiB", param, ctx)
        unit = (match.group(2) or "").upper()[:1]
        size = int(match.group(1)) * _UNITS[unit]
        if size < 1:
            self.fail("must be at least 1 byte", param, ctx)
        return size


table_option = click.option(
    "--table",
    envvar="SQUEEZER_TABLE",
    required=True,
    metavar="NAME",
    help="The service's DynamoDB table (env: SQUEEZER_TABLE).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Write machine-readable JSON to stdout.")
max_bytes_option = click.option(
    "--max-bytes-per-day",
    type=ByteSize(),
    default=None,
    metavar="SIZE",
    help="Bytes the tenant may declare per day (UTC), e.g. 100GiB (default: the service's SQUEEZER_MAX_BYTES_PER_DAY).",
)
max_jobs_option = click.option(
    "--max-open-jobs",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Unfinished jobs the tenant may have at once (default: the service's SQUEEZER_MAX_OPEN_JOBS).",
)


class TenantCommandFailed(SqueezerCliError):
    """The tenant does not exist, its name is taken, or a value is refused."""


def tenant_admin(table: str) -> TenantAdmin:
    clients = AwsClients(AwsLocation.from_env())
    return TenantAdmin(DynamoTenantStore(clients.dynamodb.Table(table)))


def _run(what: str, table: str, action: Any) -> Any:
    try:
        return action()
    except AwsError as exc:
        raise AwsUnavailable(
            f"could not {what} in table {table!r}: {exc.message} "
            "(check --table/SQUEEZER_TABLE, AWS credentials, AWS_REGION and AWS_ENDPOINT_URL)"
        ) from None
    except SqueezerError as exc:
        raise TenantCommandFailed(exc.message) from None


def _when(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return dt.datetime.fromtimestamp(timestamp, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _tenant_json(tenant: Tenant, *, last_used_at: float | None = None) -> dict[str, Any]:
    return {
        "tenant_id": tenant.tenant_id,
        "name": tenant.name,
        "token_id": tenant.token_id,
        "created_at": _when(tenant.created_at),
        "last_used_at": _when(last_used_at),
        "revoked_at": _when(tenant.revoked_at),
        "max_bytes_per_day": tenant.limits.max_bytes_per_day,
        "max_open_jobs": tenant.limits.max_open_jobs,
    }


def _show_token(issued: IssuedToken, as_json: bool, verb: str) -> None:
    if as_json:
        output.emit_json({**_tenant_json(issued.tenant), "token": str(issued.token)})
        return
    click.echo(f"{verb} tenant {issued.tenant.name!r} ({issued.tenant.tenant_id}); its token:", err=True)
    click.echo(str(issued.token))
    click.echo(
        "This is the only time the token is shown: give it to the tenant's users, who store it with "
        "'squeezer configure' (or SQUEEZER_TOKEN).",
        err=True,
    )


@admin.command(name="create-tenant")
@click.argument("name")
@max_bytes_option
@max_jobs_option
@table_option
@json_option
def create_tenant(
    name: str, max_bytes_per_day: int | None, max_open_jobs: int | None, table: str, as_json: bool
) -> None:
    """Create tenant NAME and print its token (once: only a hash is stored).

    \b
    Examples:
      squeezer admin create-tenant acme
      squeezer admin create-tenant acme --json
    """
    limits = Limits(max_bytes_per_day=max_bytes_per_day, max_open_jobs=max_open_jobs)
    issued = _run("create the tenant", table, lambda: tenant_admin(table).create(name, limits))
    _show_token(issued, as_json, "created")


@admin.command(name="list-tenants")
@table_option
@json_option
def list_tenants(table: str, as_json: bool) -> None:
    """List the tenants: ids, limits, when the token was last used, revoked or not (never a token).

    \b
    Examples:
      squeezer admin list-tenants
      squeezer admin list-tenants --json
    """
    tenants_admin = tenant_admin(table)

    def read() -> list[dict[str, Any]]:
        rows = []
        for tenant in tenants_admin.list():
            token = tenants_admin.token(tenant)
            rows.append(_tenant_json(tenant, last_used_at=token.last_used_at if token else None))
        return rows

    rows = _run("list the tenants", table, read)
    if as_json:
        output.emit_json({"tenants": rows})
        return
    if not rows:
        click.echo("no tenants yet: 'squeezer admin create-tenant NAME' creates one", err=True)
        return
    click.echo(
        output.table(
            ["NAME", "TENANT", "TOKEN ID", "CREATED", "LAST USED", "BYTES/DAY", "OPEN JOBS", "STATE"],
            [
                [
                    output.printable(r["name"]),
                    r["tenant_id"],
                    r["token_id"],
                    r["created_at"],
                    r["last_used_at"] or "never",
                    output.human_size(r["max_bytes_per_day"]) if r["max_bytes_per_day"] else "default",
                    r["max_open_jobs"] or "default",
                    "revoked" if r["revoked_at"] else "active",
                ]
                for r in rows
            ],
        )
    )


@admin.command(name="rotate-token")
@click.argument("name")
@table_option
@json_option
def rotate_token(name: str, table: str, as_json: bool) -> None:
    """Give tenant NAME a new token and print it; the old token stops working at once.

    \b
    Examples:
      squeezer admin rotate-token acme
    """
    issued = _run("rotate the token", table, lambda: tenant_admin(table).rotate(name))
    _show_token(issued, as_json, "rotated the token of")


@admin.command(name="revoke-tenant")
@click.argument("name")
@table_option
@json_option
def revoke_tenant(name: str, table: str, as_json: bool) -> None:
    """Revoke tenant NAME: its token stops working; its jobs and results stay until they expire.

    \b
    Examples:
      squeezer admin revoke-tenant acme
    """
    tenant = _run("revoke the tenant", table, lambda: tenant_admin(table).revoke(name))
    if as_json:
        output.emit_json(_tenant_json(tenant))
        return
    click.echo(f"revoked tenant {tenant.name!r} ({tenant.tenant_id}) at {_when(tenant.revoked_at)}", err=True)


@admin.command(name="set-limits")
@click.argument("name")
@max_bytes_option
@max_jobs_option
@table_option
@json_option
def set_limits(name: str, max_bytes_per_day: int | None, max_open_jobs: int | None, table: str, as_json: bool) -> None:
    """Set tenant NAME's limits; a limit not given goes back to the service's default.

    \b
    Examples:
      squeezer admin set-limits acme --max-bytes-per-day 10GiB --max-open-jobs 5
      squeezer admin set-limits acme
    """
    limits = Limits(max_bytes_per_day=max_bytes_per_day, max_open_jobs=max_open_jobs)
    tenant = _run("set the limits", table, lambda: tenant_admin(table).set_limits(name, limits))
    if as_json:
        output.emit_json(_tenant_json(tenant))
        return
    bytes_text = output.human_size(max_bytes_per_day) if max_bytes_per_day else "the service default"
    jobs_text = str(max_open_jobs) if max_open_jobs else "the service default"
    click.echo(f"tenant {tenant.name!r}: {bytes_text} a day, {jobs_text} open job(s)", err=True)
