"""DynamoDB adapter for tenants, tokens and usage, in the jobs table.

Items (the table's keys are pk/sk; see infra/resources.py):

    pk = "TOKEN#<token_id>"       sk = "TOKEN"       hash of the secret, tenant, created, last used, revoked
    pk = "TENANT#<tenant_id>"     sk = "META"        name, limits, current token id, open jobs (a string set),
                                                     gsi1pk = "TENANTS", gsi1sk = name: list-tenants
    pk = "TENANTNAME#<name>"      sk = "NAME"        the tenant id: names are unique
    pk = "TENANT#<tenant_id>"     sk = "DAY#<date>"  bytes declared that day (UTC), expires a few days later

The authorizer reads (and touches) only ``TOKEN#`` items, and its IAM role
allows only those (``dynamodb:LeadingKeys``). Writes that must go together
(a tenant with its name and token, a rotation, a revocation) are one
transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from boto3.dynamodb.conditions import Key

from .aws import aws_errors
from .errors import AwsError
from .table import OWNER_INDEX
from .tenants import Limits, Tenant, TenantExists, TokenRecord

TENANTS_PARTITION = "TENANTS"
TOKEN_PREFIX = "TOKEN#"
CONDITION_FAILED = "ConditionalCheckFailedException"


def token_key(token_id: str) -> dict[str, str]:
    return {"pk": f"{TOKEN_PREFIX}{token_id}", "sk": "TOKEN"}


def tenant_key(tenant_id: str) -> dict[str, str]:
    return {"pk": f"TENANT#{tenant_id}", "sk": "META"}


def name_key(name: str) -> dict[str, str]:
    return {"pk": f"TENANTNAME#{name}", "sk": "NAME"}


def day_key(tenant_id: str, day: str) -> dict[str, str]:
    return {"pk": f"TENANT#{tenant_id}", "sk": f"DAY#{day}"}


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _num(value: float | int) -> Decimal:
    return Decimal(str(value))


class DynamoTenantStore:
    """TenantStore on the jobs table (a boto3 Table resource)."""

    def __init__(self, table: Any) -> None:
        self._table = table
        self._client = table.meta.client  # the resource's client: Python types in, Python types out

    # -- tenants -----------------------------------------------------------------
    def create_tenant(self, tenant: Tenant, token: TokenRecord) -> None:
        items = [
            {**name_key(tenant.name), "tenant_id": tenant.tenant_id},
            self._tenant_item(tenant),
            self._token_item(token),
        ]
        try:
            self._transact(
                [
                    {
                        "Put": {
                            "TableName": self._table.name,
                            "Item": item,
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    }
                    for item in items
                ],
                "creating a tenant",
            )
        except _Cancelled:
            raise TenantExists(f"a tenant named {tenant.name!r} exists already") from None

    def get_tenant(self, tenant_id: str) -> Tenant | None:
        with aws_errors("reading a tenant"):
            item = self._table.get_item(Key=tenant_key(tenant_id), ConsistentRead=True).get("Item")
        return self._to_tenant(item) if item else None

    def find_tenant(self, name: str) -> Tenant | None:
        with aws_errors("finding a tenant"):
            item = self._table.get_item(Key=name_key(name), ConsistentRead=True).get("Item")
        return self.get_tenant(str(item["tenant_id"])) if item else None

    def list_tenants(self) -> list[Tenant]:
        tenants: list[Tenant] = []
        kwargs: dict[str, Any] = {
            "IndexName": OWNER_INDEX,
            "KeyConditionExpression": Key("gsi1pk").eq(TENANTS_PARTITION),
        }
        while True:
            with aws_errors("listing tenants"):
                response = self._table.query(**kwargs)
            tenants.extend(self._to_tenant(item) for item in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return tenants
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def set_limits(self, tenant_id: str, limits: Limits) -> None:
        sets, removes, values = [], [], {}
        for name in ("max_bytes_per_day", "max_open_jobs"):
            value = getattr(limits, name)
            if value is None:
                removes.append(name)
            else:
                sets.append(f"{name} = :{name}")
                values[f":{name}"] = value
        expression = " ".join(
            part
            for part in (
                f"SET {', '.join(sets)}" if sets else "",
                f"REMOVE {', '.join(removes)}" if removes else "",
            )
            if part
        )
        kwargs: dict[str, Any] = {
            "Key": tenant_key(tenant_id),
            "UpdateExpression": expression,
            "ConditionExpression": "attribute_exists(pk)",
        }
        if values:
            kwargs["ExpressionAttributeValues"] = values
        with aws_errors("setting a tenant's limits"):
            self._table.update_item(**kwargs)

    # -- tokens --------------------------------------------------------------------
    def get_token(self, token_id: str) -> TokenRecord | None:
        with aws_errors("reading a token"):
            item = self._table.get_item(Key=token_key(token_id), ConsistentRead=True).get("Item")
        return self._to_token(item) if item else None

    def touch_token(self, token_id: str, *, at: float, unless_after: float) -> None:
        self._update_if(
            "recording a token's use",
            Key=token_key(token_id),
            UpdateExpression="SET last_used_at = :at",
            ConditionExpression="attribute_exists(pk) AND (attribute_not_exists(last_used_at) OR last_used_at < :after)",
            ExpressionAttributeValues={":at": _num(at), ":after": _num(unless_after)},
        )

    def replace_token(self, tenant: Tenant, token: TokenRecord, *, at: float) -> bool:
        table = self._table.name
        try:
            self._transact(
                [
                    {
                        "Put": {
                            "TableName": table,
                            "Item": self._token_item(token),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {
                        "Update": {
                            "TableName": table,
                            "Key": token_key(tenant.token_id),
                            "UpdateExpression": "SET revoked_at = :at",
                            "ExpressionAttributeValues": {":at": _num(at)},
                        }
                    },
                    {
                        "Update": {
                            "TableName": table,
                            "Key": tenant_key(tenant.tenant_id),
                            "UpdateExpression": "SET token_id = :new",
                            "ConditionExpression": "token_id = :old AND attribute_not_exists(revoked_at)",
                            "ExpressionAttributeValues": {":new": token.token_id, ":old": tenant.token_id},
                        }
                    },
                ],
                "rotating a token",
            )
        except _Cancelled:
            return False
        return True

    def revoke_tenant(self, tenant: Tenant, *, at: float) -> None:
        table = self._table.name
        values = {":at": _num(at)}
        self._transact(
            [
                {
                    "Update": {
                        "TableName": table,
                        "Key": tenant_key(tenant.tenant_id),
                        "UpdateExpression": "SET revoked_at = if_not_exists(revoked_at, :at)",
                        "ExpressionAttributeValues": values,
                    }
                },
                {
                    "Update": {
                        "TableName": table,
                        "Key": token_key(tenant.token_id),
                        "UpdateExpression": "SET revoked_at = if_not_exists(revoked_at, :at)",
                        "ExpressionAttributeValues": values,
                    }
                },
            ],
            "revoking a tenant",
        )

    # -- usage -------------------------------------------------------------------
    def reserve_bytes(self, tenant_id: str, day: str, amount: int, *, limit: int, expires_at: int) -> int | None:
        if self._update_if(
            "reserving the day's bytes",
            Key=day_key(tenant_id, day),
            UpdateExpression="ADD declared_bytes :n SET expires_at = :exp",
            ConditionExpression="attribute_not_exists(declared_bytes) OR declared_bytes <= :room",
            ExpressionAttributeValues={":n": amount, ":room": limit - amount, ":exp": expires_at},
        ):
            return None
        with aws_errors("reading the day's bytes"):
            item = self._table.get_item(Key=day_key(tenant_id, day), ConsistentRead=True).get("Item") or {}
        return int(item.get("declared_bytes", 0))

    def release_bytes(self, tenant_id: str, day: str, amount: int) -> None:
        with aws_errors("releasing the day's bytes"):
            self._table.update_item(
                Key=day_key(tenant_id, day),
                UpdateExpression="ADD declared_bytes :n",
                ConditionExpression="attribute_exists(declared_bytes)",
                ExpressionAttributeValues={":n": -amount},
            )

    def add_open_job(self, tenant_id: str, job_id: str, *, limit: int) -> bool:
        return self._update_if(
            "counting an open job",
            Key=tenant_key(tenant_id),
            UpdateExpression="ADD open_jobs :job",
            ConditionExpression="attribute_exists(pk) AND (attribute_not_exists(open_jobs) OR size(open_jobs) < :limit)",
            ExpressionAttributeValues={":job": {job_id}, ":limit": limit},
        )

    def remove_open_jobs(self, tenant_id: str, job_ids: Iterable[str]) -> None:
        ids = set(job_ids)
        if not ids:
            return
        with aws_errors("closing open jobs"):
            self._table.update_item(
                Key=tenant_key(tenant_id),
                UpdateExpression="DELETE open_jobs :jobs",
                ExpressionAttributeValues={":jobs": ids},
            )

    # -- items -------------------------------------------------------------------
    def _update_if(self, what: str, **update: Any) -> bool:
        """An UpdateItem with a condition: False (nothing changed) when the condition does not hold."""
        try:
            with aws_errors(what):
                self._table.update_item(**update)
        except AwsError as exc:
            if exc.aws_code != CONDITION_FAILED:
                raise
            return False
        return True

    def _transact(self, items: list[dict[str, Any]], what: str) -> None:
        try:
            with aws_errors(what):
                self._client.transact_write_items(TransactItems=items)
        except AwsError as exc:
            if exc.aws_code == "TransactionCanceledException":
                raise _Cancelled() from exc
            raise

    @staticmethod
    def _tenant_item(tenant: Tenant) -> dict[str, Any]:
        item: dict[str, Any] = {
            **tenant_key(tenant.tenant_id),
            "gsi1pk": TENANTS_PARTITION,
            "gsi1sk": tenant.name,
            "tenant_id": tenant.tenant_id,
            "name": tenant.name,
            "created_at": _num(tenant.created_at),
            "token_id": tenant.token_id,
        }
        if tenant.limits.max_bytes_per_day is not None:
            item["max_bytes_per_day"] = tenant.limits.max_bytes_per_day
        if tenant.limits.max_open_jobs is not None:
            item["max_open_jobs"] = tenant.limits.max_open_jobs
        return item

    @staticmethod
    def _token_item(token: TokenRecord) -> dict[str, Any]:
        return {
            **token_key(token.token_id),
            "secret_hash": token.secret_hash,
            "tenant_id": token.tenant_id,
            "tenant_name": token.tenant_name,
            "created_at": _num(token.created_at),
        }

    @staticmethod
    def _to_tenant(item: dict[str, Any]) -> Tenant:
        return Tenant(
            tenant_id=str(item["tenant_id"]),
            name=str(item["name"]),
            created_at=float(item["created_at"]),
            token_id=str(item["token_id"]),
            limits=Limits(
                max_bytes_per_day=_int(item.get("max_bytes_per_day")),
                max_open_jobs=_int(item.get("max_open_jobs")),
            ),
            revoked_at=_float(item.get("revoked_at")),
            open_jobs=frozenset(str(j) for j in item.get("open_jobs", ())),
        )

    @staticmethod
    def _to_token(item: dict[str, Any]) -> TokenRecord:
        return TokenRecord(
            token_id=str(item["pk"])[len(TOKEN_PREFIX) :],
            secret_hash=str(item["secret_hash"]),
            tenant_id=str(item["tenant_id"]),
            tenant_name=str(item["tenant_name"]),
            created_at=float(item["created_at"]),
            last_used_at=_float(item.get("last_used_at")),
            revoked_at=_float(item.get("revoked_at")),
        )


class _Cancelled(Exception):
    """A transaction's condition failed."""
