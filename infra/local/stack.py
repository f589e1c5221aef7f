"""Starts and stops the local stack: emulator, API, event-source bridge.

Every process runs in its own session (so a terminal's Ctrl-C reaches the
runner only, which then stops them in order) and, on Linux, dies with the
runner if the runner is killed. Logs and the pid file live in the state
directory (``<repo>/.state/local`` unless told otherwise); a process's
previous log is rotated to ``<name>.log.1`` (up to ``.log.3``), never
overwritten. With ``keep_state=True`` the emulator's data is saved there too
and restored at the next start (:mod:`infra.local.persistence`).
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import boto3

from chalicelib.auth import Authenticator
from chalicelib.tenants import Limits, TenantAdmin, TenantExists
from chalicelib.tenantstore import DynamoTenantStore
from chalicelib.tokens import Token
from client.config import LOCAL_STACK_TOKEN_FILE, read_local_stack_token, write_local_stack_token
from infra.resources import ROOT, CreatedResources, create_resources, stage_config

from . import persistence
from .config import FAKE_AWS, HOST, REGION, BridgeOptions, LocalConfig
from .errors import AlreadyRunning, PortInUse, StartupFailed

log = logging.getLogger("infra.local")

PID_FILE = "pids.json"
# Seconds each process gets to exit after SIGTERM before its group is killed.
# The bridge lets running invocations finish first; the emulator saves its
# data (only what changed since its last save, every few seconds).
GRACE = {"bridge": 30.0, "api": 5.0, "emulator": 120.0}
# Logs of earlier runs kept: <name>.log.1 (the previous run) to <name>.log.<N>.
LOG_GENERATIONS = 3
DEV_TENANT = "dev"
# The dev tenant runs demos, tests and benchmarks: room for many unfinished jobs.
DEV_LIMITS = Limits(max_open_jobs=1000)


def rotate_log(path: Path, generations: int = LOG_GENERATIONS) -> None:
    """``x.log`` -> ``x.log.1`` -> ... -> ``x.log.<generations>`` (the oldest is dropped)."""
    if not path.exists():
        return
    for n in range(generations - 1, 0, -1):
        older = path.with_name(f"{path.name}.{n}")
        if older.exists():
            os.replace(older, path.with_name(f"{path.name}.{n + 1}"))
    os.replace(path, path.with_name(f"{path.name}.1"))


def port_is_free(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # The servers set SO_REUSEADDR too: a socket in TIME_WAIT is not "in use".
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_ports(count: int, host: str = HOST) -> list[int]:
    """``count`` different ports nobody listens on right now (the kernel's picks)."""
    probes = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for probe in probes:  # all bound at once, so the kernel cannot hand out one twice
            probe.bind((host, 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def free_port(host: str = HOST) -> int:
    return free_ports(1, host)[0]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort; stop() is the real cleanup
        pass


@dataclass
class ManagedProcess:
    """One child process of the stack, leader of its own process group."""

    name: str
    argv: list[str]
    log_path: Path
    popen: subprocess.Popen | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    def start(self, env: Mapping[str, str], cwd: Path) -> None:
        rotate_log(self.log_path)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - open while the process runs; closed in stop()
        self.popen = subprocess.Popen(
            self.argv,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, grace: float) -> None:
        """SIGTERM, wait ``grace`` seconds, then SIGKILL whatever is left of its group."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0fs; killing it", self.name, grace)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)  # leftovers: reloader or pool children
        self.popen.wait()
        if self._log:
            self._log.close()

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def wait_for_port(process: ManagedProcess, port: int, timeout: float, host: str = HOST) -> None:
    """Return once ``process`` listens on ``port``; StartupFailed if it exits or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        check_alive(process, deadline, timeout, f"listening on port {port}")
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)


def check_alive(process: ManagedProcess, deadline: float, timeout: float, what: str) -> None:
    """StartupFailed (with the end of its log) if ``process`` died or ``deadline`` passed while ``what``."""
    if not process.alive:
        raise StartupFailed(f"{process.name} exited while {what}; its log ({process.log_path}):\n{process.tail()}")
    if time.monotonic() > deadline:
        raise StartupFailed(f"{process.name} was not {what} after {timeout:.0f}s; see {process.log_path}")


def start_emulator(
    port: int,
    *,
    log_path: Path,
    env: Mapping[str, str],
    save_to: Path | None = None,
    timeout: float = 60.0,
    python: str = sys.executable,
) -> ManagedProcess:
    """Start the AWS emulator (``python -m infra.local.emulator``); return once it listens on ``port``.

    The one way Squeezer starts its emulator: the local stack starts its own
    with it, and so does :func:`running_emulator` (the benchmarks). ``save_to``
    turns saving on (see :mod:`infra.local.persistence`). If it does not
    come up, it is stopped and StartupFailed says why; PortInUse if
    something else listens on ``port`` (it would pass for the emulator).
    """
    if not port_is_free(port):
        raise PortInUse(port, "SQUEEZER_MOTO_PORT")
    argv = [python, "-m", "infra.local.emulator", str(port)]
    if save_to is not None:
        argv += ["--save-to", str(save_to)]
    process = ManagedProcess("emulator", argv, log_path)
    process.start(env, ROOT)
    try:
        wait_for_port(process, port, timeout)
    except BaseException:
        process.stop(GRACE["emulator"])
        raise
    return process


def _emulator_session() -> boto3.session.Session:
    return boto3.session.Session(
        aws_access_key_id=FAKE_AWS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_AWS["AWS_SECRET_ACCESS_KEY"],
        region_name=REGION,
    )


def emulator_client(service: str, endpoint_url: str) -> Any:
    """A boto3 client for the emulator at ``endpoint_url`` (the fake credentials, never AWS)."""
    return _emulator_session().client(service, endpoint_url=endpoint_url)


@contextlib.contextmanager
def running_emulator(port: int | None = None, *, timeout: float = 60.0) -> Iterator[str]:
    """The emulator alone, on ``port`` (a free one if None), for as long as the block runs; yields its URL.

    No resources are created and nothing is saved. It runs in its own
    process with the stack's environment (the fake credentials, none of this
    process's AWS_* variables) and logs to a temporary folder, removed with it.
    """
    port = port or free_port()
    config = LocalConfig(moto_port=port)
    with tempfile.TemporaryDirectory(prefix="squeezer-emulator-") as folder:
        process = start_emulator(
            port, log_path=Path(folder) / "emulator.log", env=config.process_environment(), timeout=timeout
        )
        try:
            yield config.endpoint_url
        finally:
            process.stop(GRACE["emulator"])


class LocalStack:
    """The whole system on 127.0.0.1, as a context manager.

    ``with LocalStack(api_port=..., moto_port=..., state_dir=...) as stack:``
    starts the emulator, creates the resources from infra.resources, starts
    ``chalice local`` and the bridge, and returns once ``GET /`` answers.
    Leaving the block stops every process it started.

    ``keep_state=True`` restores the data saved in ``state_dir`` by an earlier
    run (jobs, files, queued messages) and saves it while running and at
    stop; ``fresh=True`` discards what was saved first. ``env`` overrides
    variables of every process's environment, the stage's included (also
    inside ``chalice local``); ``visibility_timeout`` (seconds) replaces the
    visibility timeout of the jobs and ranges queues, otherwise 6x the
    worker's timeout.
    """

    def __init__(
        self,
        *,
        api_port: int | None = None,
        moto_port: int | None = None,
        state_dir: str | Path | None = None,
        bridge: BridgeOptions | None = None,
        autoreload: bool = False,
        env: Mapping[str, str] | None = None,
        base_env: Mapping[str, str] | None = None,
        visibility_timeout: int | None = None,
        keep_state: bool = False,
        fresh: bool = False,
        startup_timeout: float = 60.0,
        python: str = sys.executable,
    ) -> None:
        self.config = LocalConfig.from_env(
            base_env,
            api_port=api_port,
            moto_port=moto_port,
            state_dir=Path(state_dir) if state_dir else None,
            bridge=bridge,
        )
        self._extra_env = {name: str(value) for name, value in (env or {}).items()}
        self._base_env = base_env
        self.visibility_timeout = visibility_timeout
        self.keep_state = keep_state
        self._fresh = fresh
        self.restored: dict[str, int] | None = None
        self._autoreload = autoreload
        self._timeout = startup_timeout
        self._python = python
        self.processes: list[ManagedProcess] = []
        self.resources: CreatedResources | None = None
        self.started_in: float | None = None
        # The dev tenant's token (set by start()): what a client of this stack sends.
        self.token: str | None = None

    # -- what tests and people need ---------------------------------------------
    @property
    def api_url(self) -> str:
        return self.config.api_url

    @property
    def endpoint_url(self) -> str:
        return self.config.endpoint_url

    @property
    def state_dir(self) -> Path:
        return self.config.state_dir

    @property
    def saved_state(self) -> Path:
        """Where the emulator's data is saved (``keep_state=True``)."""
        return persistence.state_path(self.state_dir)

    @property
    def environment(self) -> dict[str, str]:
        """The environment the stack's processes run with."""
        return self.config.process_environment(self._base_env, self._extra_env)

    def client(self, service: str) -> Any:
        """A boto3 client for the emulator (fake credentials, never AWS)."""
        return emulator_client(service, self.endpoint_url)

    @property
    def client_environment(self) -> dict[str, str]:
        """What the ``squeezer`` CLI needs to use this stack as its dev tenant."""
        assert self.token is not None, "the stack is started"
        return {"SQUEEZER_API_URL": self.api_url, "SQUEEZER_TOKEN": self.token}

    @property
    def auth_headers(self) -> dict[str, str]:
        """``Authorization`` for HTTP requests to this stack's API, as its dev tenant."""
        assert self.token is not None, "the stack is started"
        return {"Authorization": f"Bearer {self.token}"}

    # -- life cycle -------------------------------------------------------------------
    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> LocalStack:
        began = time.monotonic()
        cfg = self.config
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        self._check_not_running()  # first: leftovers of a killed runner may hold the ports
        for port, variable in ((cfg.moto_port, "SQUEEZER_MOTO_PORT"), (cfg.api_port, "SQUEEZER_API_PORT")):
            if not port_is_free(port):
                raise PortInUse(port, variable)
        if self._fresh:
            persistence.discard(cfg.state_dir)
        atexit.register(self.stop)
        env = self.environment
        try:
            # moto spills large objects to temporary files: keep them in the state dir.
            spill = cfg.state_dir / "emulator-tmp"
            shutil.rmtree(spill, ignore_errors=True)
            spill.mkdir()
            emulator = start_emulator(
                cfg.moto_port,
                log_path=cfg.state_dir / "emulator.log",
                env={**env, "TMPDIR": str(spill)},
                save_to=self.saved_state if self.keep_state else None,
                timeout=self._timeout,
                python=self._python,
            )
            self.processes.append(emulator)
            self.resources = self._create_resources()
            if self.keep_state:
                self._restore_state(emulator)
            self.token = str(ensure_dev_tenant(self.tenant_store(), self.state_dir, self.api_url))
            api = [
                "-m",
                "infra.local.api",
                "--project-dir",
                str(ROOT),
                "local",
                "--stage",
                cfg.stage,
                "--host",
                HOST,
                "--port",
                str(cfg.api_port),
            ]
            api += ["--autoreload"] if self._autoreload else ["--no-autoreload"]
            api_process = self._spawn("api", api, env)
            self._spawn("bridge", ["-m", "infra.local", "bridge"], env)
            self._wait_for_api(api_process)
            self._write_pid_file()
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - began
        log.info("local stack up in %.1fs: API %s, emulator %s", self.started_in, self.api_url, self.endpoint_url)
        return self

    def stop(self) -> None:
        """Stop every process this object started (bridge first, emulator last)."""
        for process in reversed(self.processes):
            process.stop(GRACE.get(process.name, 5.0))
        self.processes.clear()
        pid_file = self.config.state_dir / PID_FILE
        try:
            if json.loads(pid_file.read_text()).get("runner") == os.getpid():
                pid_file.unlink()
        except (OSError, ValueError):
            pass
        atexit.unregister(self.stop)

    def wait(self, stop_requested: Any = None, poll: float = 0.5) -> ManagedProcess | None:
        """Block until a process dies (returned) or ``stop_requested()`` is true (None)."""
        while True:
            for process in self.processes:
                if not process.alive:
                    return process
            if stop_requested is not None and stop_requested():
                return None
            time.sleep(poll)

    # -- steps --------------------------------------------------------------------------
    def _spawn(self, name: str, args: list[str], env: Mapping[str, str]) -> ManagedProcess:
        process = ManagedProcess(name, [self._python, *args], self.config.state_dir / f"{name}.log")
        process.start(env, ROOT)
        self.processes.append(process)
        return process

    def tenant_store(self) -> DynamoTenantStore:
        """The stack's tenants, in the emulator (for tests and the dev tenant)."""
        resource = _emulator_session().resource("dynamodb", endpoint_url=self.endpoint_url)
        return DynamoTenantStore(resource.Table(stage_config(self.config.stage).table))

    def _create_resources(self) -> CreatedResources:
        # the browser page served by this stack's API posts to the bucket: its origin is allowed
        cfg = dataclasses.replace(stage_config(self.config.stage), cors_origins=self.config.cors_origins)
        if self.visibility_timeout is not None:
            cfg = dataclasses.replace(cfg, visibility_timeout_override=int(self.visibility_timeout))
        return create_resources(
            cfg,
            s3=self.client("s3"),
            sqs=self.client("sqs"),
            dynamodb=self.client("dynamodb"),
            region=REGION,
            enforce_tls=False,  # plain HTTP on loopback
        )

    def _restore_state(self, emulator: ManagedProcess) -> None:
        """Put back what the last run saved, then let the emulator save again."""
        began = time.monotonic()
        try:
            self.restored = persistence.restore(
                self.saved_state,
                s3=self.client("s3"),
                sqs=self.client("sqs"),
                dynamodb=self.client("dynamodb"),
            )
        except (OSError, ValueError, KeyError) as exc:  # unreadable or incomplete: say so, keep it for a look
            raise StartupFailed(
                f"could not restore the saved state in {self.saved_state} ({exc!r}); "
                "start empty with: python -m infra.local up --fresh"
            ) from exc
        if self.restored is not None:
            log.info(
                "restored %d item(s), %d object(s), %d message(s) from %s in %.1fs",
                self.restored["items"],
                self.restored["objects"],
                self.restored["messages"],
                self.saved_state,
                time.monotonic() - began,
            )
        emulator.popen.send_signal(signal.SIGUSR1)  # saving on: see infra.local.emulator

    def _wait_for_api(self, process: ManagedProcess) -> None:
        deadline = time.monotonic() + self._timeout
        while True:
            check_alive(process, deadline, self._timeout, "answering GET /")
            for other in self.processes:
                if not other.alive:
                    check_alive(other, deadline, self._timeout, "starting")
            try:
                with urllib.request.urlopen(self.api_url + "/", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)

    def _check_not_running(self) -> None:
        pid_file = self.config.state_dir / PID_FILE
        try:
            recorded = json.loads(pid_file.read_text())
        except (OSError, ValueError):
            return
        runner = recorded.get("runner")
        if runner and runner != os.getpid() and _pid_alive(runner):
            raise AlreadyRunning(
                f"a local stack (pid {runner}) already uses {self.config.state_dir}; "
                "stop it first (Ctrl-C, or: python -m infra.local down)"
            )
        stop_recorded(self.config.state_dir)  # leftovers of a runner that was killed

    def _write_pid_file(self) -> None:
        (self.config.state_dir / PID_FILE).write_text(
            json.dumps(
                {
                    "runner": os.getpid(),
                    "api_url": self.api_url,
                    "endpoint_url": self.endpoint_url,
                    "processes": {p.name: p.pid for p in self.processes},
                },
                indent=2,
            )
        )


@dataclass(frozen=True)
class RunningStack:
    """A local stack started by another process (``make up``) that a client can use."""

    api_url: str
    token: str
    runner: int

    @property
    def client_environment(self) -> dict[str, str]:
        return {"SQUEEZER_API_URL": self.api_url, "SQUEEZER_TOKEN": self.token}


def running_stack(state_dir: Path, api_url: str, *, timeout: float = 2.0) -> RunningStack | None:
    """The stack whose pid file is in ``state_dir``, if it is alive, serves ``api_url`` and its dev token is there.

    None if any of that is missing (nothing recorded, a dead runner, another
    port, no token file, an API that does not answer ``GET /``).
    """
    try:
        recorded = json.loads((state_dir / PID_FILE).read_text())
    except (OSError, ValueError):
        return None
    runner = recorded.get("runner")
    if not isinstance(runner, int) or not _pid_alive(runner):
        return None
    if recorded.get("api_url") != api_url:
        return None
    saved = read_local_stack_token(state_dir / LOCAL_STACK_TOKEN_FILE, warn=log.warning)
    if saved is None or saved.api_url != api_url:
        return None
    try:
        with urllib.request.urlopen(api_url + "/", timeout=timeout) as response:
            if response.status != 200:
                return None
    except (urllib.error.URLError, OSError):
        return None
    return RunningStack(api_url=api_url, token=str(saved.token), runner=runner)


def ensure_dev_tenant(store: DynamoTenantStore, state_dir: Path, api_url: str) -> Token:
    """The local stack's ``dev`` tenant: created once, kept with the saved state, its token in ``dev-tenant.json``.

    The token file (mode 0600, in the state directory) is what the CLI reads
    when it is pointed at this stack with no token of its own. A token that
    no longer works (the state was discarded) is replaced; the file is
    rewritten with the current API URL either way.
    """
    saved = read_local_stack_token(state_dir / LOCAL_STACK_TOKEN_FILE, warn=log.warning)
    principal = Authenticator(store).authenticate(f"Bearer {saved.token}") if saved else None
    if saved is not None and principal is not None and principal.name == DEV_TENANT:
        token, tenant_id = saved.token, principal.tenant_id
    else:
        admin = TenantAdmin(store)
        try:
            issued = admin.create(DEV_TENANT, DEV_LIMITS)
        except TenantExists:  # the saved state has it, the token file was lost: a new token
            issued = admin.rotate(DEV_TENANT)
        token, tenant_id = issued.token, issued.tenant.tenant_id
        log.info("created the local stack's %r tenant (%s)", DEV_TENANT, tenant_id)
    write_local_stack_token(state_dir, api_url, tenant_id, DEV_TENANT, token)
    return token


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_group_members(pgid: int) -> list[int]:
    """Pids of the processes still in group ``pgid`` (Linux; empty elsewhere)."""
    members = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            # Field 5 of /proc/<pid>/stat is the pgid; the command name (field 2) may hold spaces.
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def _is_ours(pid: int) -> bool:
    """Guard against pid reuse: only signal processes that run our commands."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return b"infra.local" in cmdline or b"chalice" in cmdline


def stop_recorded(state_dir: Path) -> list[str]:
    """Stop the processes a (dead or running) runner recorded in its pid file."""
    pid_file = state_dir / PID_FILE
    try:
        recorded = json.loads(pid_file.read_text())
    except (OSError, ValueError):
        return []
    stopped = []
    for name, pid in recorded.get("processes", {}).items():
        if pid and _pid_alive(pid) and _is_ours(pid):
            for sig, pause in ((signal.SIGTERM, GRACE.get(name, 5.0)), (signal.SIGKILL, 1.0)):
                try:
                    os.killpg(pid, sig)
                except (ProcessLookupError, PermissionError):
                    break
                waited = time.monotonic() + pause
                while _pid_alive(pid) and time.monotonic() < waited:
                    time.sleep(0.1)
            stopped.append(f"{name} (pid {pid})")
    pid_file.unlink(missing_ok=True)
    return stopped
