"""Every route through chalice.test.Client, against moto."""

import json

import pytest
from tenancy import upload_key


def post(client, body, content_type="application/json"):
    raw = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.http.post("/jobs", headers={"Content-Type": content_type}, body=raw)


def error(response):
    body = json.loads(response.body)
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    return body["error"]["code"]


def test_index_names_the_service_and_routes(client):
    response = client.http.get("/")
    body = json.loads(response.body)
    assert response.status_code == 200
    assert body["service"] == "squeezer" and body["version"]
    assert body["links"]["create_job"] == {"method": "POST", "href": "/jobs"}
    assert body["limits"]["multipart_threshold"] == 64 * 1024**2  # what a client needs to plan its uploads


def test_create_job_returns_presigned_uploads(client, tenant):
    response = post(
        client,
        {
            "files": [
                {"name": "logs/app.log", "size": 12, "content_type": "text/plain"},
                {"name": "empty", "size": 0, "sha256": "ab" * 32},
            ],
            "algorithm": "brotli",
            "level": 7,
        },
    )
    assert response.status_code == 201, response.body
    body = json.loads(response.body)
    assert body["job_id"].startswith("j_") and len(body["job_id"]) == 34
    assert response.headers["Location"] == f"/jobs/{body['job_id']}"
    assert (body["algorithm"], body["level"]) == ("brotli", 7)
    first, second = body["files"]
    assert first["upload"]["method"] == "PUT"
    assert first["upload"]["headers"] == {"Content-Length": "12", "Content-Type": "text/plain"}
    assert second["upload"]["headers"]["Content-Type"] == "application/octet-stream"
    assert "x-amz-checksum-sha256" in second["upload"]["headers"]
    assert upload_key(first) == f"uploads/{tenant.tenant.tenant_id}/{body['job_id']}/{first['file_id']}"
    assert "app.log" not in first["upload"]["url"]
    assert first["upload"]["expires_in"] == 3600
    assert first["upload"]["fields"] is None  # one shape for every upload: a PUT has no form fields


def test_create_job_with_post_forms(client, tenant):
    body = {"files": [{"name": "page.html", "size": 12, "content_type": "text/html"}], "upload_method": "post"}
    response = post(client, body)
    assert response.status_code == 201, response.body
    (entry,) = json.loads(response.body)["files"]
    upload = entry["upload"]
    assert set(upload) == {"method", "url", "headers", "fields", "expires_in"}
    assert (upload["method"], upload["headers"], upload["expires_in"], entry["multipart"]) == ("POST", {}, 3600, None)
    assert list(upload["fields"])[:2] == ["Content-Type", "key"] and list(upload["fields"])[-1] == "x-amz-signature"
    assert upload["fields"]["Content-Type"] == "text/html"
    assert (
        upload_key(entry)
        == f"uploads/{tenant.tenant.tenant_id}/{json.loads(response.body)['job_id']}/{entry['file_id']}"
    )
    renewed = client.http.post(f"/jobs/{json.loads(response.body)['job_id']}/files/{entry['file_id']}/upload")
    assert renewed.status_code == 200, renewed.body
    assert json.loads(renewed.body)["upload"]["method"] == "POST"


@pytest.mark.parametrize("method", ["form", "PUT", None, 3])
def test_an_unknown_upload_method_is_a_400(client, method):
    response = post(client, {"files": [{"name": "a", "size": 1}], "upload_method": method})
    assert response.status_code == 400, response.body
    assert error(response) == "invalid_upload_method"


# The HTTP concerns only: a body that is not JSON, an empty one, a JSON shape
# error and one domain rule, each answered 400 in the error shape. Every rule
# itself is tested in tests/unit/test_validation.py.
@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("{not json", "invalid_json"),
        ("", "invalid_json"),
        ("[1]", "invalid_body"),
        ({"files": [{"name": "a/../b", "size": 1}]}, "invalid_name"),
    ],
)
def test_create_job_validation_errors(client, body, code):
    response = post(client, body)
    assert response.status_code == 400, response.body
    assert error(response) == code


def test_a_body_that_is_not_json_typed_is_a_415_with_the_error_body(client):
    response = post(client, "files=a", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415 and error(response) == "unsupported_media_type"


def test_status_of_a_new_job(client):
    job = json.loads(post(client, {"files": [{"name": "b.txt", "size": 3}, {"name": "a.txt", "size": 4}]}).body)
    response = client.http.get(f"/jobs/{job['job_id']}")
    assert response.status_code == 200
    body = json.loads(response.body)
    assert body["state"] == "pending"
    assert body["counts"]["pending"] == 2
    assert body["totals"] == {"files": 2, "bytes_in": 0, "bytes_out": 0, "ratio": None}
    assert [f["name"] for f in body["files"]] == ["a.txt", "b.txt"]
    entry = body["files"][0]
    assert (entry["state"], entry["algorithm"], entry["level"], entry["attempts"]) == ("pending", "zstd", 3, 0)
    assert entry["download_url"] is None and entry["error"] is None


def test_status_pages_its_files_with_a_cursor(client):
    job = json.loads(post(client, {"files": [{"name": n, "size": 3} for n in ("c.txt", "a.txt", "b.txt")]}).body)
    path = f"/jobs/{job['job_id']}"
    assert json.loads(client.http.get("/").body)["limits"]["max_status_page"] == 1000
    first = json.loads(client.http.get(f"{path}?limit=2").body)
    assert [f["name"] for f in first["files"]] == ["a.txt", "b.txt"] and first["next_cursor"]
    assert first["totals"]["files"] == 3 and first["counts"]["pending"] == 3  # the whole job on every page
    second = json.loads(client.http.get(f"{path}?limit=2&cursor={first['next_cursor']}").body)
    assert [f["name"] for f in second["files"]] == ["c.txt"] and second["next_cursor"] is None
    assert json.loads(client.http.get(path).body)["next_cursor"] is None  # one page by default
    for query, code in (
        ("limit=0", "invalid_limit"),
        ("limit=1001", "invalid_limit"),
        ("cursor=bogus", "invalid_cursor"),
    ):
        response = client.http.get(f"{path}?{query}")
        assert response.status_code == 400 and error(response) == code


def test_summary_of_a_new_job(client):
    job = json.loads(post(client, {"files": [{"name": "b.txt", "size": 3}, {"name": "a.txt", "size": 4}]}).body)
    body = json.loads(client.http.get(f"/jobs/{job['job_id']}/summary").body)
    assert body["state"] == "pending" and "files" not in body
    assert body["counts"] == {
        "pending": 2,
        "queued": 0,
        "processing": 0,
        "completed": 0,
        "failed": 0,
        "cancelled": 0,
        "open": 2,
    }
    assert body["totals"] == {"files": 2, "bytes_in": 0, "bytes_out": 0, "ratio": None}


def test_unknown_job_is_a_404_with_the_error_body(client):
    response = client.http.get("/jobs/j_doesnotexist")
    assert response.status_code == 404
    assert error(response) == "job_not_found"
    assert error(client.http.get("/jobs/j_doesnotexist/summary")) == "job_not_found"
    assert client.http.delete("/jobs/j_doesnotexist").status_code == 404


def test_list_jobs_newest_first_with_a_cursor(client):
    ids = [json.loads(post(client, {"files": [{"name": "a", "size": 1}]}).body)["job_id"] for _ in range(3)]
    first = json.loads(client.http.get("/jobs?limit=2").body)
    assert len(first["jobs"]) == 2 and first["next_cursor"]
    second = json.loads(client.http.get(f"/jobs?limit=2&cursor={first['next_cursor']}").body)
    listed = [j["job_id"] for j in first["jobs"] + second["jobs"]]
    assert listed == list(reversed(ids))
    assert second["next_cursor"] is None
    assert error(client.http.get("/jobs?cursor=bogus")) == "invalid_cursor"
    assert error(client.http.get("/jobs?limit=0")) == "invalid_limit"


def test_cancel(client, aws):
    s3, _, _ = aws
    job = json.loads(post(client, {"files": [{"name": "a", "size": 3}]}).body)
    key = upload_key(job["files"][0])
    s3.put_object(Bucket="squeezer-test-files", Key=key, Body=b"abc")
    response = client.http.delete(f"/jobs/{job['job_id']}")
    assert response.status_code == 200
    body = json.loads(response.body)
    assert body["state"] == "cancelled" and body["files"][0]["state"] == "cancelled"
    assert body["cancelled_at"] is not None
    assert s3.list_objects_v2(Bucket="squeezer-test-files", Prefix=key)["KeyCount"] == 0
    again = client.http.delete(f"/jobs/{job['job_id']}")
    assert again.status_code == 200 and json.loads(again.body) == body  # idempotent: the same answer


def test_unexpected_errors_are_500_with_the_error_body(client, monkeypatch):
    from chalicelib.service import JobService

    def broken():
        raise RuntimeError("boom")

    monkeypatch.setattr(JobService, "get_status", lambda *a, **k: broken())
    response = client.http.get("/jobs/j_x")
    assert response.status_code == 500 and error(response) == "internal_error"
    assert "boom" not in response.body.decode()


def test_a_job_takes_more_files_in_batches(client, tenant):
    created = post(
        client, {"files": [{"name": "a", "size": 1, "mode": 0o755, "mtime": 1700000000}], "more_files": True}
    )
    assert created.status_code == 201, created.body
    job = json.loads(created.body)
    assert job["more_files"] is True
    path = f"/jobs/{job['job_id']}/files"
    headers = {"Content-Type": "application/json"}
    batch = {"files": [{"name": f"b/{i}", "size": 2} for i in range(3)], "more_files": True}
    added = client.http.post(path, headers=headers, body=json.dumps(batch))
    assert added.status_code == 200, added.body
    body = json.loads(added.body)
    assert (body["file_count"], body["total_size"], body["more_files"]) == (4, 7, True)
    assert [f["name"] for f in body["files"]] == ["b/0", "b/1", "b/2"] and body["files"][0]["upload"]["method"] == "PUT"
    again = client.http.post(path, headers=headers, body=json.dumps({"files": [{"name": "a", "size": 1}]}))
    assert (again.status_code, error(again)) == (400, "duplicate_name")
    status = json.loads(client.http.get(f"/jobs/{job['job_id']}").body)
    assert status["state"] == "uploading" and status["more_files"] is True
    first = next(f for f in status["files"] if f["name"] == "a")
    assert (first["mode"], first["mtime"], first["result_crc64nvme"]) == (0o755, 1700000000, None)
    assert next(f for f in status["files"] if f["name"] == "b/0")["mode"] is None
    closed = client.http.post(path, headers=headers, body=json.dumps({"files": []}))
    assert json.loads(closed.body)["more_files"] is False
    status = json.loads(client.http.get(f"/jobs/{job['job_id']}").body)
    assert status["state"] == "pending" and status["more_files"] is False
    late = client.http.post(path, headers=headers, body=json.dumps({"files": [{"name": "z", "size": 1}]}))
    assert (late.status_code, error(late)) == (409, "job_closed")
    limits = json.loads(client.http.get("/").body)["limits"]
    assert (limits["max_files_per_job"], limits["max_files_per_request"]) == (100_000, 1000)
