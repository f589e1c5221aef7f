"""The emulator's DynamoDB patch (infra.local.moto_patches._item_rollback_transactions).

moto deep-copies every table a transaction names; the patch backs up only
the items named, with the same all-or-nothing answers.
"""

from __future__ import annotations

import json

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


def _create_table(client, *, owner_index: bool = False) -> None:
    """Table "t" keyed on pk and sk, with a keys-only "by-owner" index if asked."""
    attributes = [{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}]
    extra: dict = {}
    if owner_index:
        attributes.append({"AttributeName": "owner", "AttributeType": "S"})
        extra["GlobalSecondaryIndexes"] = [
            {
                "IndexName": "by-owner",
                "KeySchema": [{"AttributeName": "owner", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ]
    client.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=attributes,
        BillingMode="PAY_PER_REQUEST",
        **extra,
    )


@pytest.fixture
def table():
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        _create_table(client)
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


# -- the reads' answers as plain JSON (moto_patches._plain_json_reads) ----------------------


@pytest.fixture
def compared(monkeypatch):
    """Every answer of a plain-JSON read is also made by moto's serializer, and the two must agree.

    Yields the actions compared. The patched path may not call moto's
    serializer for those reads (that is the cost the patch removes).
    """
    from moto.dynamodb import responses as ddb_responses

    handler = ddb_responses.DynamoHandler
    monkeypatch.setattr(handler, "serialized", handler.serialized)  # moto's own, put back after the test
    original = handler.serialized
    moto_patches._plain_json_reads()
    patched = handler.serialized
    seen: list[str] = []
    calls = [0]
    execute = ddb_responses.DynamoResult.execute_result

    def counting(self, context):
        calls[0] += 1
        return execute(self, context)

    monkeypatch.setattr(ddb_responses.DynamoResult, "execute_result", counting)

    def check(self, action_result):
        before = calls[0]
        fast = patched(self, action_result)
        action = self._get_action()
        if action in moto_patches.PLAIN_JSON_READS and type(action_result) is ddb_responses.DynamoResult:
            assert calls[0] == before, f"{action} went through moto's serializer"
            slow = original(self, action_result)
            assert fast[0] == slow[0]
            assert fast[1]["Content-Type"] == slow[1]["Content-Type"]
            assert json.loads(fast[2]) == json.loads(slow[2]), action
            seen.append(action)
        return fast

    monkeypatch.setattr(handler, "serialized", check)
    return seen


def test_reads_answered_as_plain_json_match_moto_s_serializer(compared):
    every_type = {
        "b": {"B": b"\x00\xff binary"},
        "bs": {"BS": [b"\x01", b"\x02\x03"]},
        "n": {"N": "1.50"},
        "ns": {"NS": ["1", "2.5"]},
        "ss": {"SS": ["p", "q"]},
        "t": {"BOOL": True},
        "none": {"NULL": True},
        "l": {"L": [{"S": "x"}, {"N": "3"}, {"M": {"deep": {"B": b"\x7f"}}}]},
        "m": {"M": {"s": {"S": "é ☃"}, "l": {"L": []}}},
    }
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        _create_table(client, owner_index=True)
        for n in range(5):
            item = {"pk": {"S": "J"}, "sk": {"S": f"F{n}"}, "owner": {"S": "o"}, **every_type}
            client.put_item(TableName="t", Item=item)
        key = {"pk": {"S": "J"}, "sk": {"S": "F1"}}
        values = {":p": {"S": "J"}}

        page = client.query(TableName="t", KeyConditionExpression="pk = :p", ExpressionAttributeValues=values, Limit=2)
        assert len(page["Items"]) == 2 and page["LastEvaluatedKey"] == {"pk": {"S": "J"}, "sk": {"S": "F1"}}
        assert page["Items"][0]["b"] == {"B": b"\x00\xff binary"}  # base64 on the wire, bytes again in boto3
        rest = client.query(
            TableName="t",
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues=values,
            ExclusiveStartKey=page["LastEvaluatedKey"],
            ProjectionExpression="sk, bs, m.s",
            ReturnConsumedCapacity="TOTAL",
        )
        assert [i["sk"]["S"] for i in rest["Items"]] == ["F2", "F3", "F4"]
        owned = client.query(
            TableName="t", IndexName="by-owner", KeyConditionExpression="#o = :o",
            ExpressionAttributeNames={"#o": "owner"}, ExpressionAttributeValues={":o": {"S": "o"}},
        )  # fmt: skip
        assert owned["Count"] == 5
        nothing = client.query(
            TableName="t", KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "?"}}
        )
        assert nothing["Items"] == []
        assert client.get_item(TableName="t", Key=key)["Item"]["ns"] == {"NS": ["1", "2.5"]}
        assert "Item" not in client.get_item(TableName="t", Key={"pk": {"S": "J"}, "sk": {"S": "nope"}})
        client.scan(TableName="t", FilterExpression="sk > :f", ExpressionAttributeValues={":f": {"S": "F2"}})
        client.batch_get_item(RequestItems={"t": {"Keys": [key, {"pk": {"S": "J"}, "sk": {"S": "nope"}}]}})
        with pytest.raises(ClientError):  # an error still goes through moto's serializer
            client.get_item(TableName="missing", Key=key)

    assert sorted(set(compared)) == ["BatchGetItem", "GetItem", "Query", "Scan"]


# -- a Query reads its partition only (moto_patches._partition_queries) ----------------------


def _queries(client) -> list[dict]:
    def query(**kwargs) -> dict:
        answer = client.query(TableName="t", ConsistentRead=True, **kwargs)
        answer.pop("ResponseMetadata")
        return answer

    job = {":p": {"S": "J7"}}
    first = query(KeyConditionExpression="pk = :p", ExpressionAttributeValues=job, Limit=4)
    return [
        query(KeyConditionExpression="pk = :p", ExpressionAttributeValues=job),
        first,
        query(
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues=job,
            ExclusiveStartKey=first["LastEvaluatedKey"],
        ),
        query(KeyConditionExpression="pk = :p", ExpressionAttributeValues=job, ScanIndexForward=False, Limit=3),
        query(
            KeyConditionExpression="pk = :p AND begins_with(sk, :f)",
            ExpressionAttributeValues={**job, ":f": {"S": "FILE#1"}},
        ),
        query(
            KeyConditionExpression="pk = :p AND sk BETWEEN :a AND :b",
            FilterExpression="#s = :done",
            ProjectionExpression="sk, #s",
            ExpressionAttributeNames={"#s": "state"},
            ExpressionAttributeValues={**job, ":a": {"S": "FILE#03"}, ":b": {"S": "FILE#12"}, ":done": {"S": "done"}},
        ),
        query(KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "absent"}}),
    ]


def test_a_query_answers_as_moto_does_reading_only_its_partition(monkeypatch):
    from moto.dynamodb.models import table as ddb_table

    monkeypatch.setattr(ddb_table.Table, "query", ddb_table.Table.query)  # moto's own, put back after
    monkeypatch.setattr(ddb_table.Table, "all_items", ddb_table.Table.all_items)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        _create_table(client)
        for job in range(12):  # inserted out of order: moto sorts, so must the patch
            for n in reversed(range(15)):
                state = "done" if n % 3 else "queued"
                item = {"pk": {"S": f"J{job}"}, "sk": {"S": f"FILE#{n:02d}"}, "state": {"S": state}}
                client.put_item(TableName="t", Item=item)
        client.put_item(TableName="t", Item={"pk": {"S": "J7"}, "sk": {"S": "META"}, "state": {"S": "open"}})
        expected = _queries(client)

        moto_patches._partition_queries()
        sizes: list[int] = []
        patched_all_items = ddb_table.Table.all_items

        def counted(self):
            items = patched_all_items(self)
            sizes.append(len(items))
            return items

        monkeypatch.setattr(ddb_table.Table, "all_items", counted)
        assert _queries(client) == expected

    assert expected[0]["Count"] == 16 and [i["sk"]["S"] for i in expected[3]["Items"]] == ["META", "FILE#14", "FILE#13"]
    assert sizes and max(sizes) == 16, f"a query read {max(sizes)} items of a table of 181"
