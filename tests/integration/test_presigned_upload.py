"""A real presigned upload over HTTP (requests -> moto server on loopback),
then the worker on the S3 event that upload produced."""

import hashlib
import io
import os
import uuid

import boto3
import pytest
import requests
from events import receive_records
from moto.server import ThreadedMotoServer
from tenancy import TEST_TABLE, create_tenant

from chalicelib import wiring
from chalicelib.codecs import decompress_stream
from chalicelib.domain import Algorithm, FileState
from infra.resources import create_resources, stage_config

TEST_STAGE = stage_config("test")

pytestmark = pytest.mark.integration


@pytest.fixture
def moto_server(monkeypatch):
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    wiring.reset()
    session = boto3.session.Session(region_name="us-east-1")
    clients = {name: session.client(name, endpoint_url=endpoint) for name in ("s3", "sqs", "dynamodb")}
    created = create_resources(TEST_STAGE, region="us-east-1", enforce_tls=False, **clients)
    yield clients, created
    wiring.reset()
    server.stop()


def test_presigned_put_then_worker_on_its_event(moto_server):
    clients, created = moto_server
    data = b"presigned upload over real HTTP\n" * 4000 + os.urandom(1000)
    digest = hashlib.sha256(data).hexdigest()
    service = wiring.get_service()
    # the server shares moto's in-process backends with the other tests of this worker: a name of its own
    name = f"presigned-{uuid.uuid4().hex[:8]}"
    owner = create_tenant(TEST_TABLE, name, endpoint_url=os.environ["AWS_ENDPOINT_URL"]).tenant.tenant_id
    job = service.create_job(
        {
            "files": [{"name": "docs/report.txt", "size": len(data), "sha256": digest, "content_type": "text/plain"}],
            "algorithm": "zstd",
            "level": 9,
        },
        owner=owner,
    )
    record, upload = job.files[0]
    assert upload.url.startswith(os.environ["AWS_ENDPOINT_URL"])
    response = requests.put(upload.url, data=io.BytesIO(data), headers=upload.headers, timeout=30)
    assert response.status_code == 200, response.text

    def has_an_upload_event(records):
        return any("s3:TestEvent" not in r["body"] for r in records)

    received = receive_records(clients["sqs"], created.queue_url, until=has_an_upload_event)
    events = [r for r in received if "s3:TestEvent" not in r["body"]]
    assert len(events) == 1
    assert wiring.get_worker().handle_batch(events) == {"batchItemFailures": []}

    status = service.get_status(job.job.job_id, owner=owner)
    done = status.files[0]
    assert done.state is FileState.COMPLETED and done.compressed_size < len(data)
    url = status.download_urls[record.file_id]
    downloaded = requests.get(url, timeout=30)
    assert downloaded.status_code == 200
    assert "report.txt.zst" in downloaded.headers["Content-Disposition"]
    plain = io.BytesIO()
    decompress_stream(io.BytesIO(downloaded.content), plain, Algorithm.ZSTD)
    assert hashlib.sha256(plain.getvalue()).hexdigest() == digest
