"""Waiting on a big job polls the one-item summary, not the whole file list."""

from __future__ import annotations

from client import jobs
from client.progress import Progress


def _status(states):
    return {
        "job_id": "j_1",
        "files": [
            {
                "file_id": f"f{i}",
                "name": f"n{i}",
                "state": s,
                "size": 1,
                "compressed_size": 1,
                "ratio": 1.0,
                "algorithm": "zstd",
                "error": None,
            }
            for i, s in enumerate(states)
        ],
    }


def _summary(done, total):
    return {
        "state": "completed" if done == total else "processing",
        "counts": {"queued": total - done, "completed": done, "failed": 0, "cancelled": 0, "open": total - done},
    }


class FakeApi:
    def __init__(self, total, done_per_poll):
        self.total, self.step, self.done = total, done_per_poll, 0
        self.calls = {"get_job": 0, "get_summary": 0}

    def get_job(self, job_id):
        self.calls["get_job"] += 1
        return _status(["completed"] * self.done + ["queued"] * (self.total - self.done))

    def get_summary(self, job_id):
        self.calls["get_summary"] += 1
        self.done = min(self.total, self.done + self.step)
        return _summary(self.done, self.total)


def test_big_jobs_poll_the_summary_and_list_files_rarely(monkeypatch):
    monkeypatch.setattr(jobs, "LIVE_LIST_LIMIT", 10)
    api = FakeApi(total=50, done_per_poll=5)
    now = [0.0]
    poll = jobs.Poll(first=0.01, cap=0.01, sleep=lambda s: now.__setitem__(0, now[0] + 1.0))
    status = jobs.wait_for_job(api, "j_1", progress=Progress(bars=False), poll=poll, clock=lambda: now[0])
    assert all(f["state"] == "completed" for f in status["files"])
    assert api.calls["get_summary"] == 10  # one per poll until all 50 are done
    assert api.calls["get_job"] == 2  # the first look and the final list


def test_small_jobs_list_files_on_every_poll(monkeypatch):
    api = FakeApi(total=3, done_per_poll=1)
    api.get_job_orig = api.get_job

    def get_job(job_id):  # the file list itself advances for small jobs
        api.done = min(api.total, api.done + (1 if api.calls["get_job"] else 0))
        return api.get_job_orig(job_id)

    api.get_job = get_job
    poll = jobs.Poll(first=0.0, cap=0.0, sleep=lambda s: None)
    jobs.wait_for_job(api, "j_1", progress=Progress(bars=False), poll=poll)
    assert api.calls["get_summary"] == 0 and api.calls["get_job"] == 4
