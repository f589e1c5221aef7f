"""The ``POST /jobs`` body of the API benchmarks: 100 files of random sizes.

No relative imports: Locust imports load/locustfile.py (and this module)
from its folder, the benchmark runner as ``load.job_body``.
"""

from __future__ import annotations

import random

FILES_PER_JOB = 100


def job_body(rng: random.Random) -> dict:
    return {
        "algorithm": "zstd",
        "files": [
            {
                "name": f"dir{i % 7}/file-{i:03d}.log",
                "size": rng.randint(1024, 64 * 1024 * 1024),
                "content_type": "text/plain",
            }
            for i in range(FILES_PER_JOB)
        ],
    }
