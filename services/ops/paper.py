"""One paper-mode run of the whole system: Redis, the venue on a tape, and every service.

Used by ``polyband up`` and by the end-to-end tests, so what the tests prove is what users run.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from redis import Redis

from libs.common import keys, pnl
from libs.common.pnl_redis import system_pnl
from libs.common.redis_client import redis_for_url
from libs.common.tapes import load_leader
from services.ops.tape_defaults import DEFAULT_TAPE, DEMO_LEADERS, DEMO_TAPE, LEADERS, TAPE_LEADERS, TAPES, default_leaders  # noqa: F401 - re-exported
from services.ops.supervisor import REPO, Proc, Supervisor, SupervisorError, error_line, free_port, venue_ready, wait_until

log = logging.getLogger(__name__)

SUMMARY_COUNTERS = ("signals", "tokens_activated", "orders_posted", "fills", "sells_posted", "redeemed")


@dataclass
class PaperConfig:
    """What to run. ``speed`` is market ms per wall ms; ``extra_env`` reaches every process."""

    tape: Path = DEMO_TAPE
    leaders: tuple[Path, ...] = DEMO_LEADERS
    speed: float = 20.0
    workers: int = 2
    redis_url: str | None = None
    log_dir: Path = REPO / "var" / "run"
    extra_env: dict[str, str] = field(default_factory=dict)
    service_env: dict[str, dict[str, str]] = field(default_factory=dict)
    services: tuple[str, ...] = ("md_gateway", "user_feed", "scheduler", "signal_ingest", "maker_worker")
    redis_appendonly: bool = False
    export: bool = False  # at stop, keep the run's Redis data in log_dir (``polyband report --run``)


def leader_accounts(paths: tuple[Path, ...]) -> list[dict[str, object]]:
    """Leader targets for signal_ingest: the wallet of each leader file (``_meta.wallet`` or rows)."""
    targets = []
    for p in paths:
        lf = load_leader(p)
        wallet = lf.meta.get("wallet") or next((r.get("proxyWallet") for r in lf.rows if r.get("proxyWallet")), None)
        if not wallet:
            raise ValueError(f"leader file {p}: no _meta.wallet and no row with proxyWallet")
        targets.append({"account": str(wallet).lower(), "min_size": "0", "enabled": True})
    return targets


class PaperRun:
    """Start with ``start()``; ``summary()`` reads the run's counters; ``stop()`` ends it cleanly."""

    def __init__(self, cfg: PaperConfig) -> None:
        self.cfg = cfg
        self.sup = Supervisor(cfg.log_dir, cfg.redis_url, redis_appendonly=cfg.redis_appendonly)
        env = {**os.environ, **cfg.extra_env}
        self.metrics_base = int(env.get("PB_METRICS_PORT") or 0)  # validated by the pre-flight
        self.metrics_ports: dict[str, int] = {}  # process name -> its Prometheus port
        self.instances: dict[str, str] = {}  # process name -> instance id (its name in pb:svc)
        self.http_port, self.ws_port = self._venue_ports()
        self.clob_url = f"http://127.0.0.1:{self.http_port}"
        self.baseline: dict[str, int] = {}
        self.baseline_errors: dict[str, int] = {}
        self.r: Redis | None = None

    def _venue_ports(self) -> tuple[int, int]:
        """Two free ports for the venue, outside the metrics ports (base .. base+31) of this run."""
        taken = range(self.metrics_base, self.metrics_base + 32) if self.metrics_base else range(0)
        ports: list[int] = []
        while len(ports) < 2:
            port = free_port()
            if port not in taken and port not in ports:
                ports.append(port)
        return ports[0], ports[1]

    def urls(self) -> dict[str, str]:
        """The PB_* URL settings that point every service at this run's venue."""
        return {
            "PB_CLOB_URL": self.clob_url,
            "PB_WS_MARKET_URL": f"ws://127.0.0.1:{self.ws_port}/ws/market",
            "PB_WS_USER_URL": f"ws://127.0.0.1:{self.ws_port}/ws/user",
            "PB_DATA_API_URL": f"{self.clob_url}/data-api",
            "PB_GAMMA_URL": f"{self.clob_url}/gamma",
        }

    def env(self, kind: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        """Environment for one process of ``kind``."""
        env = {"PB_MODE": "paper", **self.urls(), **self.cfg.extra_env, **self.cfg.service_env.get(kind, {})}
        env.update(extra or {})
        return self.sup.base_env(env)

    def start(self) -> None:
        """Start Redis (if needed), every service, then the venue; raise if the venue is not ready."""
        self.sup.__enter__()
        self.r = redis_for_url(str(self.sup.redis_url))  # a plain Redis, or a cluster (redis+cluster://)
        self.r.delete(keys.CLOCK)
        self.baseline = self._counters()
        self.baseline_errors = self._counters(keys.ERRORS)
        # The services start first: each boots (imports, settings, Redis) and then waits for the
        # venue's replay clock, so all of them run before the tape's first frame instead of booting
        # while a fast replay is already minutes of market time in.
        for kind in ("md_gateway", "user_feed", "scheduler", "alerter"):
            if kind in self.cfg.services:
                self.spawn(kind, {"PB_INSTANCE_ID": f"{kind}-1"})
        if "signal_ingest" in self.cfg.services:
            self.start_ingest()
        if "maker_worker" in self.cfg.services:
            for i in range(1, self.cfg.workers + 1):
                self.start_worker(i)
        self._start_venue()
        self._await_heartbeats()

    def spawn(self, kind: str, extra: dict[str, str], name: str | None = None) -> Proc:
        """Start one process of ``kind`` named ``name``. With a metrics port in the environment
        (``PB_METRICS_PORT=N``), process i in start order gets port N+i (``metrics_ports``), so no two
        of them bind the same one; a ``service_env`` that names a port for the kind wins."""
        name = name or kind
        env = self.env(kind, extra)
        if self.metrics_base and "PB_METRICS_PORT" not in self.cfg.service_env.get(kind, {}):
            env["PB_METRICS_PORT"] = str(self.metrics_base + len(self.metrics_ports))
        if int(env.get("PB_METRICS_PORT") or 0):
            self.metrics_ports[name] = int(env["PB_METRICS_PORT"])
        self.instances[name] = env.get("PB_INSTANCE_ID") or name
        return self.sup.start(kind, env, name=name)

    def raise_if_dead(self) -> None:
        """Raise ``SupervisorError`` naming every process that exited, with the line of its log that
        says why (``BAD_SETTING``, an error, or a traceback's last line) and the log's path."""
        dead = self.sup.dead()
        if dead:
            raise SupervisorError("; ".join(f"{p.name} exited with status {p.popen.returncode}: "
                                            f"{error_line(p.log_path)} (log {p.log_path})" for p in dead))

    def _await_heartbeats(self, timeout_s: float = 30.0) -> None:
        """Started means every process has heartbeated once (after its boot and the replay clock)."""
        assert self.r is not None
        r, missing = self.r, [self.instances.get(p.name, p.name) for p in self.sup.procs]

        def all_beat() -> bool:
            missing[:] = [n for n in missing if r.zscore(keys.SERVICES, n) is None]
            return not missing
        try:
            wait_until(all_beat, timeout_s, "every service's first heartbeat", abort=self.raise_if_dead)
        except SupervisorError as exc:
            raise SupervisorError(f"{exc}; no heartbeat from {', '.join(missing)}") from None

    def start_ingest(self) -> Proc:
        """Start signal_ingest following the wallets of the run's leader files."""
        leaders = json.dumps(leader_accounts(self.cfg.leaders))
        return self.spawn("signal_ingest", {"PB_LEADERS": leaders, "PB_INSTANCE_ID": "signal_ingest-1"})

    def start_worker(self, i: int) -> None:
        """Start worker number ``i`` (instance and worker id ``maker_worker-<i>``)."""
        wid = f"maker_worker-{i}"
        self.spawn("maker_worker", {"PB_WORKER_ID": wid, "PB_INSTANCE_ID": wid}, name=wid)

    def restart(self, name: str, timeout_s: float = 10.0) -> Proc:
        """Start process ``name`` (e.g. ``scheduler``, ``maker_worker-2``) again under the same name,
        instance id and environment, after it exited (a crash, or a SIGKILL by a fault test): waits up
        to ``timeout_s`` for the old one to be gone, forgets it and returns the new one.

        Raises:
            SupervisorError: no process of that name, it is still running, or it is the venue
            (restarting the venue would lose its books, orders and balances)."""
        old = next((p for p in reversed(self.sup.procs) if p.name == name), None)
        if old is None or old.kind == "venue_sim":
            raise SupervisorError(f"restart: no restartable process named {name!r}")
        try:
            old.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            raise SupervisorError(f"restart: {name} (pid {old.popen.pid}) is still running") from None
        self.sup.stop(old)  # closes its log file; it has exited already
        self.sup.procs.remove(old)
        if old.kind == "maker_worker":
            self.start_worker(int(name.rsplit("-", 1)[1]))
        elif old.kind == "signal_ingest":
            self.start_ingest()
        else:
            self.spawn(old.kind, {"PB_INSTANCE_ID": self.instances.get(name, f"{old.kind}-1")}, name=name)
        return self.sup.procs[-1]

    def venue_env(self) -> dict[str, str]:
        """The venue's own settings: ports, tape, speed, leader files, audit log in the run folder."""
        return {
            "PB_VENUE_HTTP_PORT": str(self.http_port), "PB_VENUE_WS_PORT": str(self.ws_port),
            "PB_TAPE": str(self.cfg.tape), "PB_SPEED": repr(self.cfg.speed),
            "PB_LEADER_FILES": ",".join(str(p) for p in self.cfg.leaders),
            "PB_AUDIT_LOG": str(self.cfg.log_dir / "venue_audit.jsonl"), "PB_INSTANCE_ID": "venue_sim-1",
        }

    def preflight_envs(self) -> dict[str, dict[str, str]]:
        """The environment each kind of process would be started with (for ``preflight``), before
        ``start``: the venue first (it checks the tape and leader files), then every service.

        Raises:
            ValueError, OSError, TapeError: a leader file that cannot be read (named)."""
        redis_url = {"PB_REDIS_URL": self.sup.redis_url or "redis://127.0.0.1:6379/0"}
        envs = {"venue_sim": {**self.env("venue_sim", self.venue_env()), **redis_url}}
        for kind in self.cfg.services:
            extra = {"PB_INSTANCE_ID": f"{kind}-1", "PB_WORKER_ID": f"{kind}-1"}
            if kind == "signal_ingest":
                extra["PB_LEADERS"] = json.dumps(leader_accounts(self.cfg.leaders))
            envs[kind] = {**self.env(kind, extra), **redis_url}
        return envs

    def _start_venue(self) -> None:
        self.spawn("venue_sim", self.venue_env())
        wait_until(lambda: venue_ready(self.clob_url), 30, f"venue at {self.clob_url}", abort=self.raise_if_dead)
        wait_until(lambda: self.r is not None and self.r.exists(keys.CLOCK), 10, "the venue's replay clock in Redis",
                   abort=self.raise_if_dead)

    def _counters(self, key: str = keys.SUMMARY) -> dict[str, int]:
        assert self.r is not None
        return {k: int(v) for k, v in self.r.hgetall(key).items()}

    def summary(self) -> dict[str, object]:
        """This run's counters (deltas from the start), error counts by reason code, and ``pnl_usd``:
        the system's P&L (``pnl_redis.system_pnl``: every token with fills in Redis) as decimal strings."""
        assert self.r is not None
        now = self._counters()
        out: dict[str, object] = {k: now.get(k, 0) - self.baseline.get(k, 0) for k in SUMMARY_COUNTERS}
        errors = self._counters(keys.ERRORS)
        deltas = {k: v - self.baseline_errors.get(k, 0) for k, v in sorted(errors.items())}
        out["errors"] = {k: v for k, v in deltas.items() if v}
        out["pnl_usd"] = pnl.as_json(system_pnl(self.r)[1])
        return out

    def stop(self) -> dict[str, object]:
        """Stop every process in order (workers cancel their orders first), then Redis if ours;
        returns the final summary, read after the services stopped and before Redis did."""
        self.sup.stop_services()
        final = self.summary() if self.r is not None else {}
        if self.cfg.export and self.r is not None:
            self.export(final)
        self.sup.stop_all()
        return final

    def export(self, final: dict[str, object]) -> None:
        """Keep the run in its folder: ``summary.json`` and the Redis data (``run_store``), so that
        ``polyband report --run <folder>`` answers after Redis is gone. A failure is logged with a
        reason code and loses nothing else (the summary is still printed)."""
        from libs.common.run_store import export_redis

        try:
            (self.cfg.log_dir / "summary.json").write_text(json.dumps(final, indent=1) + "\n")
            assert self.r is not None
            export_redis(self.r, self.cfg.log_dir)
        except Exception as exc:  # noqa: BLE001 - reported with a reason code; the run's summary stands
            log.error("event RUN_EXPORT_FAILED folder=%s err=%s: %s", self.cfg.log_dir, type(exc).__name__, exc)

    def audit(self) -> list[dict[str, object]]:
        """The venue's audit log lines so far."""
        path = self.cfg.log_dir / "venue_audit.jsonl"
        if not path.exists():
            return []
        return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]

    def wait(self, seconds: float) -> None:
        """Let the run go on for ``seconds``; raise if a process died meanwhile."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            dead = self.sup.dead()
            if dead:
                names = ", ".join(f"{p.name} (exit {p.popen.returncode}, log {p.log_path})" for p in dead)
                raise RuntimeError(f"process died during the run: {names}")
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
