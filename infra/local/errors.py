"""Errors of the local stack.

LocalStackError          something the person running the stack can fix
├── PortInUse            a port we need is taken (nothing was started)
├── AlreadyRunning       another local stack owns the state directory
└── StartupFailed        a process died or did not become ready in time
"""

from __future__ import annotations


class LocalStackError(Exception):
    """Base of the errors ``python -m infra.local`` reports in one line."""


class PortInUse(LocalStackError):
    def __init__(self, port: int, variable: str) -> None:
        super().__init__(
            f"port {port} on 127.0.0.1 is in use; stop what holds it or choose another port with {variable}"
        )
        self.port = port


class AlreadyRunning(LocalStackError):
    pass


class StartupFailed(LocalStackError):
    pass
