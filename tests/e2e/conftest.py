"""The local stack for end-to-end tests: real HTTP, real processes, free ports."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from infra.local import LocalStack, free_ports, process_group_members

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def local_stack():
    """The whole system on 127.0.0.1 (emulator, ``chalice local``, bridge).

    The stack's processes get the local stage's environment, never this
    session's test variables. Logs: ``.state/local/e2e-<pid>/`` (removed
    when the session's stack stops cleanly).
    """
    api_port, moto_port = free_ports(2)
    state_dir = ROOT / ".state" / "local" / f"e2e-{os.getpid()}"
    stack = LocalStack(api_port=api_port, moto_port=moto_port, state_dir=state_dir)
    with stack:
        pids = [p.pid for p in stack.processes]
        yield stack
    leftovers = {pid: process_group_members(pid) for pid in pids}
    assert not any(leftovers.values()), f"processes left after the stack stopped: {leftovers}"
    shutil.rmtree(state_dir, ignore_errors=True)
