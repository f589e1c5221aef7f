"""The emulator's DynamoDB patch (infra.local.moto_patches._item_rollback_transactions).

moto deep-copies every table a transaction names; the patch backs up only
the items named, with the same all-or-nothing answers.
"""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.dynamodb import models as ddb

from infra.local import moto_patches


@pytest.fixture
def patched(monkeypatch):
    """The patch applied in this process, moto's own code put back after the test; a table may not be copied."""
    monkeypatch.setattr(ddb, "copy", ddb.copy)
    monkeypatch.setattr(ddb.DynamoDBBackend, "transact_write_items", ddb.DynamoDBBackend.transact_write_items)
    moto_patches._item_rollback_transactions()

    def no_copy(table, memo):
        raise AssertionError("a whole table was deep-copied")

    monkeypatch.setattr(ddb.Table, "__deepcopy__", no_copy, raising=False)


@pytest.fixture
def table():
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        table = boto3.resource("dynamodb", region_name="us-east-1").Table("t")
        for n in range(3):
            table.put_item(Item={"pk": "J", "sk": f"F{n}", "state": "processing"})
        yield table


def _update(sk: str, expected: str) -> dict:
    return {
        "Update": {
            "TableName": "t",
            "Key": {"pk": {"S": "J"}, "sk": {"S": sk}},
            "UpdateExpression": "SET #s = :done",
            "ConditionExpression": "#s = :expected",
            "ExpressionAttributeNames": {"#s": "state"},
            "ExpressionAttributeValues": {":done": {"S": "completed"}, ":expected": {"S": expected}},
        }
    }


def _states(table) -> dict[str, str]:
    return {item["sk"]: item["state"] for item in table.scan()["Items"]}


def test_a_transaction_writes_every_item_without_copying_the_table(patched, table):
    client = boto3.client("dynamodb", region_name="us-east-1")  # low-level values, not the resource's
    client.transact_write_items(
        TransactItems=[
            _update("F0", "processing"),
            _update("F1", "processing"),
            {"Put": {"TableName": "t", "Item": {"pk": {"S": "J"}, "sk": {"S": "F9"}, "state": {"S": "new"}}}},
        ]
    )
    assert _states(table) == {"F0": "completed", "F1": "completed", "F2": "processing", "F9": "new"}


def test_a_cancelled_transaction_leaves_every_item_as_it_was(patched, table):
    client = boto3.client("dynamodb", region_name="us-east-1")  # low-level values, not the resource's
    with pytest.raises(ClientError) as raised:
        client.transact_write_items(
            TransactItems=[
                _update("F0", "processing"),  # applied by moto, then put back
                {"Put": {"TableName": "t", "Item": {"pk": {"S": "J"}, "sk": {"S": "F9"}, "state": {"S": "new"}}}},
                _update("F1", "queued"),  # fails: F1 is processing
                _update("F2", "processing"),
            ]
        )
    assert raised.value.response["Error"]["Code"] == "TransactionCanceledException"
    reasons = [r["Code"] for r in raised.value.response["CancellationReasons"]]
    assert reasons == ["None", "None", "ConditionalCheckFailed", "None"]
    assert _states(table) == {"F0": "processing", "F1": "processing", "F2": "processing"}  # F9 gone too


def test_two_actions_on_one_item_are_refused_and_nothing_changes(patched, table):
    client = boto3.client("dynamodb", region_name="us-east-1")  # low-level values, not the resource's
    with pytest.raises(ClientError):
        client.transact_write_items(TransactItems=[_update("F0", "processing"), _update("F0", "processing")])
    assert _states(table) == {"F0": "processing", "F1": "processing", "F2": "processing"}


def test_outside_a_transaction_deep_copies_are_moto_s_own(patched):
    assert ddb.copy.deepcopy({"a": [1]}) == {"a": [1]}
    assert ddb.copy.copy is not None  # the rest of the copy module is still there
