"""Start and stop polyband's processes on one machine (``polyband up`` and the end-to-end tests).

A run gets a private redis-server unless a Redis URL is given, free loopback ports for the venue,
one log file per process, and an orderly stop: workers first (they cancel their orders on SIGTERM),
then the other services, the venue, and Redis last.
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
from redis import Redis

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
STOP_ORDER = ("alerter", "maker_worker", "scheduler", "signal_ingest", "md_gateway", "user_feed", "venue_sim")


class SupervisorError(RuntimeError):
    """A process could not be started or did not become ready in time."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check, timeout_s: float, what: str, interval_s: float = 0.1, abort=None) -> None:  # type: ignore[no-untyped-def]
    """Poll ``check()`` until truthy; raise SupervisorError naming ``what`` after ``timeout_s``.
    ``abort()``, called before each poll, may raise to end the wait at once (a process died)."""
    deadline = time.monotonic() + timeout_s
    last_error = "not ready"
    while time.monotonic() < deadline:
        if abort is not None:
            abort()
        try:
            if check():
                return
        except Exception as exc:  # noqa: BLE001 - not ready yet: kept for the timeout message, retried
            last_error = f"{type(exc).__name__}: {exc}"
        time.sleep(interval_s)
    raise SupervisorError(f"timed out after {timeout_s}s waiting for {what} (last: {last_error})")


@dataclass
class Proc:
    """One child process: ``name`` (e.g. maker_worker-1), ``kind`` (its service) and its Popen."""

    name: str
    kind: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes] | None = None


@dataclass
class Supervisor:
    """Owns every process of one run. Use as a context manager so everything stops on exit."""

    log_dir: Path
    redis_url: str | None = None
    redis_appendonly: bool = False
    procs: list[Proc] = field(default_factory=list)
    _redis_proc: subprocess.Popen[bytes] | None = None
    _redis_dir: str | None = None
    _redis_log: IO[bytes] | None = None
    _redis_port: int = 0

    def __enter__(self) -> "Supervisor":
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if not self.redis_url:
            self.redis_url = self._start_redis()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def _start_redis(self) -> str:
        if not shutil.which("redis-server"):
            raise SupervisorError("redis-server is not installed and PB_REDIS_URL is not set "
                                  "(apt-get install redis-server, or point PB_REDIS_URL at a Redis)")
        self._redis_port = free_port()
        self._redis_dir = tempfile.mkdtemp(prefix="polyband-redis-")
        self._redis_log = open(self.log_dir / "redis.log", "ab")
        return self._spawn_redis()

    def _spawn_redis(self) -> str:
        port = self._redis_port
        self._redis_proc = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes" if self.redis_appendonly else "no", "--appendfsync", "everysec",
             "--dir", str(self._redis_dir), "--unixsocket", str(Path(str(self._redis_dir)) / "redis.sock"),
             "--unixsocketperm", "700"], stdout=self._redis_log, stderr=subprocess.STDOUT,
            start_new_session=True)  # a Ctrl-C on the terminal reaches only the supervisor
        url = f"redis://127.0.0.1:{port}/0"
        wait_until(lambda: Redis.from_url(url, socket_timeout=0.5).ping(), 10, f"redis-server on port {port}")
        log.info("private redis-server started url=%s appendonly=%s", url, self.redis_appendonly)
        return url

    @property
    def unix_url(self) -> str | None:
        """``unix://`` URL of the private redis-server (a fifth faster than TCP for one process doing
        many round trips, as the back-test does); None when PB_REDIS_URL was given."""
        if self._redis_dir is None:
            return None
        return f"unix://{Path(self._redis_dir) / 'redis.sock'}?db=0"

    def restart_redis(self, down_s: float = 1.0) -> None:
        """SIGKILL the private redis-server, keep it down ``down_s`` seconds, start it again on the
        same port and directory (with ``redis_appendonly`` its data comes back from the AOF)."""
        if self._redis_proc is None:
            raise SupervisorError("restart_redis needs the private redis-server (PB_REDIS_URL was given)")
        self._redis_proc.kill()
        self._redis_proc.wait(10)
        time.sleep(down_s)
        self._spawn_redis()

    def base_env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The environment for a child: this process's env, PB_REDIS_URL, and ``extra``."""
        env = {k: v for k, v in os.environ.items()}
        env["PB_REDIS_URL"] = str(self.redis_url)
        env["PYTHONUNBUFFERED"] = "1"
        env.update(extra or {})
        return env

    def start(self, kind: str, env: dict[str, str], name: str | None = None) -> Proc:
        """Start ``python -m services.<kind>`` with ``env``; its output goes to ``<log_dir>/<name>.log``."""
        name = name or kind
        path = self.log_dir / f"{name}.log"
        out = open(path, "ab")
        # Each child in its own session: a Ctrl-C on the terminal goes to the supervisor alone, which
        # then stops the children in STOP_ORDER (workers cancel first, Redis and the venue last).
        popen = subprocess.Popen([sys.executable, "-m", f"services.{kind}"], cwd=REPO, env=env,
                                 stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        proc = Proc(name, kind, popen, path, out)
        self.procs.append(proc)
        log.info("started %s pid=%d log=%s", name, popen.pid, path)
        return proc

    def dead(self) -> list[Proc]:
        """Processes that exited on their own."""
        return [p for p in self.procs if p.popen.poll() is not None]

    def stop(self, proc: Proc, timeout_s: float = 15.0) -> int | None:
        """SIGTERM ``proc`` and wait; SIGKILL after ``timeout_s``. Returns its exit code."""
        if proc.popen.poll() is None:
            proc.popen.send_signal(signal.SIGTERM)
            try:
                proc.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                log.error("event STOP_TIMEOUT process=%s: killed", proc.name)
                proc.popen.kill()
                proc.popen.wait(5)
        if proc.log_file is not None:
            proc.log_file.close()
            proc.log_file = None
        return proc.popen.returncode

    def stop_services(self) -> None:
        """Stop every process in STOP_ORDER (workers first, venue last); Redis keeps running."""
        for kind in STOP_ORDER:
            for p in [p for p in self.procs if p.kind == kind]:
                self.stop(p)
        for p in self.procs:
            self.stop(p)

    def stop_all(self) -> None:
        """Stop every service, then Redis if this supervisor started it."""
        self.stop_services()
        if self._redis_proc and self._redis_proc.poll() is None:
            self._redis_proc.terminate()
            self._redis_proc.wait(10)
        if self._redis_dir:
            shutil.rmtree(self._redis_dir, ignore_errors=True)
            self._redis_dir = None
        if self._redis_log is not None:
            self._redis_log.close()
            self._redis_log = None


def error_line(log_path: Path, max_bytes: int = 64_000) -> str:
    """The line of a child's log that says why it stopped: the last ``BAD_SETTING`` line, else the last
    ``lvl=ERROR`` line, else the last line of a traceback, else the last line ("" for an empty log)."""
    try:
        with open(log_path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - max_bytes))
            lines = [ln.strip() for ln in f.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    for marker in ("event BAD_SETTING", "lvl=ERROR"):
        found = [ln for ln in lines if marker in ln]
        if found:
            return found[-1]
    return lines[-1] if lines else ""


def venue_ready(clob_url: str) -> bool:
    """True once the venue answers ``GET /ok``."""
    return httpx.get(f"{clob_url}/ok", timeout=1.0).status_code == 200


def pause_redis(sup: Supervisor) -> None:
    """SIGSTOP the supervisor's private redis-server: it keeps its sockets and data but answers nothing
    (a stall, as a long fork, swap or VM pause makes one) until ``resume_redis``.

    Raises:
        SupervisorError: the run uses an external Redis (PB_REDIS_URL), which is never touched.
    """
    proc = sup._redis_proc  # noqa: SLF001 - the supervisor's own process, owned by this module
    if proc is None or proc.poll() is not None:
        raise SupervisorError("pause_redis needs the running private redis-server (PB_REDIS_URL was given)")
    proc.send_signal(signal.SIGSTOP)


def resume_redis(sup: Supervisor) -> None:
    """SIGCONT the redis-server ``pause_redis`` stopped (a no-op when it is not paused)."""
    proc = sup._redis_proc  # noqa: SLF001 - see pause_redis
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGCONT)
