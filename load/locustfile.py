"""Locust users for benchmark 7: ``POST /jobs`` (100 files) and ``GET /jobs/{id}``.

Run by load/api_bench.py as ``locust -f load/locustfile.py --headless --csv``;
by hand: ``locust -f load/locustfile.py --host http://127.0.0.1:8000``.
Each user creates a job now and then and reads the status of the jobs it
created (a job of 100 pending files: the API's Query of 101 items).
No upload happens, so the worker stays idle: this is the API alone.
"""

from __future__ import annotations

import os
import random

from job_body import FILES_PER_JOB, job_body  # load/ is on the path: Locust imports this file from there
from locust import HttpUser, between, task


class ApiUser(HttpUser):
    wait_time = between(0.0, 0.1)

    def on_start(self) -> None:
        # the stack's dev tenant (load/e2e_bench.py puts its token in the environment)
        self.client.headers["Authorization"] = f"Bearer {os.environ['SQUEEZER_TOKEN']}"
        self.rng = random.Random()
        self.jobs: list[str] = []
        self.create_job()

    @task(1)
    def create_job(self) -> None:
        with self.client.post(
            "/jobs", json=job_body(self.rng), name="POST /jobs (100 files)", catch_response=True
        ) as response:
            if response.status_code != 201:
                response.failure(f"status {response.status_code}")
                return
            job_id = response.json().get("job_id")
            if not job_id or len(response.json().get("files", [])) != FILES_PER_JOB:
                response.failure("bad body")
                return
            self.jobs = (self.jobs + [job_id])[-20:]

    @task(4)
    def job_status(self) -> None:
        if not self.jobs:
            return
        job_id = self.rng.choice(self.jobs)
        with self.client.get(f"/jobs/{job_id}", name="GET /jobs/{id}", catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}")
            elif len(response.json().get("files", [])) != FILES_PER_JOB:
                response.failure("bad body")
