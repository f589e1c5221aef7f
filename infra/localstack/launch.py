"""Start the LocalStack runtime (started by run.sh with the venv's Python).

Two things `python -m localstack.runtime.main` does not do by itself:
- become a process-group/session leader, so a terminal's Ctrl-C reaches run.sh
  only (run.sh then stops LocalStack in order) and stop.sh can signal the group;
- keep S3 object data inside the state dir: LocalStack hard-codes
  /tmp/localstack-s3-storage (localstack.services.s3.provider.DEFAULT_S3_TMP_DIR,
  read when the S3 provider is created), so two instances would share it.
"""

import contextlib
import os
import sys

with contextlib.suppress(OSError):  # already a session leader
    os.setsid()

storage = os.environ.get("SQUEEZER_S3_STORAGE_DIR")
if storage:
    os.makedirs(storage, exist_ok=True)
    import localstack.services.s3.provider as _s3_provider

    _s3_provider.DEFAULT_S3_TMP_DIR = storage

from localstack.runtime.main import main  # noqa: E402

if __name__ == "__main__":
    sys.argv[0] = "localstack"
    main()
