"""The one-machine local stack: moto's server, ``chalice local`` and an SQS bridge.

``python -m infra.local up`` runs it in the foreground; tests use
:class:`LocalStack` (a context manager). See ``python -m infra.local --help``.
"""

from .config import BridgeOptions, LocalConfig
from .errors import AlreadyRunning, LocalStackError, PortInUse, StartupFailed
from .stack import (
    LocalStack,
    emulator_client,
    free_port,
    free_ports,
    process_group_members,
    running_emulator,
    start_emulator,
)

__all__ = [
    "AlreadyRunning",
    "BridgeOptions",
    "LocalConfig",
    "LocalStack",
    "LocalStackError",
    "PortInUse",
    "StartupFailed",
    "emulator_client",
    "free_port",
    "free_ports",
    "process_group_members",
    "running_emulator",
    "start_emulator",
]
