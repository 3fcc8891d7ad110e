"""One paper-mode run of the whole system: Redis, the venue on a tape, and every service.

Used by ``polyband up`` and by the end-to-end tests, so what the tests prove is what users run.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from redis import Redis

from libs.common import keys, pnl
from libs.common.pnl_redis import system_pnl
from libs.common.tapes import load_leader
from services.ops.supervisor import REPO, Proc, Supervisor, free_port, venue_ready, wait_until

log = logging.getLogger(__name__)

TAPES, LEADERS = REPO / "data" / "tapes", REPO / "data" / "leaders"
# The default of `up` and `backtest`: 5 h of real L2 depth, 18 real resolutions, crypto fees.
DEFAULT_TAPE = TAPES / "btc15m-2026-09-28"
# The tests' tape: 33 min of top of book, with the demo leader drawn from it.
DEMO_TAPE = TAPES / "btc5m-2026-02-18-am"
DEMO_LEADERS = (LEADERS / "demo-synthetic.jsonl", LEADERS / "gabagool22.jsonl.gz")
TAPE_LEADERS = {  # each bundled tape's leaders (data/README.md); a synthetic leader is drawn from its tape
    "btc15m-2026-09-28": (LEADERS / "btc15m-synthetic.jsonl",),
    "week-2026-07": (LEADERS / "week-2026-07-synthetic.jsonl",),
    "btc5m-2026-02-18-am": DEMO_LEADERS,
    "btc5m-2026-02-17-pm": (LEADERS / "demo-synthetic-long.jsonl",),
}


def default_leaders(tape: Path) -> tuple[Path, ...]:
    """The leader files that go with a bundled tape (``TAPE_LEADERS``).

    Raises:
        ValueError: no default for this tape: name one with ``--leader``.
    """
    leaders = TAPE_LEADERS.get(Path(tape).name)
    if leaders is None:
        raise ValueError(f"tape {tape}: no default leader file; pass --leader FILE")
    return leaders


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
        self.http_port, self.ws_port = free_port(), free_port()
        self.clob_url = f"http://127.0.0.1:{self.http_port}"
        self.baseline: dict[str, int] = {}
        self.baseline_errors: dict[str, int] = {}
        self.r: Redis | None = None

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
        self.r = Redis.from_url(str(self.sup.redis_url), decode_responses=True)
        self.r.delete(keys.CLOCK)
        self.baseline = self._counters()
        self.baseline_errors = self._counters(keys.ERRORS)
        # The services start first: each boots (imports, settings, Redis) and then waits for the
        # venue's replay clock, so all of them run before the tape's first frame instead of booting
        # while a fast replay is already minutes of market time in.
        for kind in ("md_gateway", "user_feed", "scheduler"):
            if kind in self.cfg.services:
                self.sup.start(kind, self.env(kind, {"PB_INSTANCE_ID": f"{kind}-1"}))
        if "signal_ingest" in self.cfg.services:
            self.start_ingest()
        if "maker_worker" in self.cfg.services:
            for i in range(1, self.cfg.workers + 1):
                self.start_worker(i)
        self._start_venue()

    def start_ingest(self) -> Proc:
        """Start signal_ingest following the wallets of the run's leader files."""
        leaders = json.dumps(leader_accounts(self.cfg.leaders))
        return self.sup.start("signal_ingest", self.env("signal_ingest", {"PB_LEADERS": leaders,
                                                                          "PB_INSTANCE_ID": "signal_ingest-1"}))

    def start_worker(self, i: int) -> None:
        """Start worker number ``i`` (instance and worker id ``maker_worker-<i>``)."""
        wid = f"maker_worker-{i}"
        self.sup.start("maker_worker", self.env("maker_worker", {"PB_WORKER_ID": wid, "PB_INSTANCE_ID": wid}), name=wid)

    def _start_venue(self) -> None:
        venue_env = {
            "PB_VENUE_HTTP_PORT": str(self.http_port), "PB_VENUE_WS_PORT": str(self.ws_port),
            "PB_TAPE": str(self.cfg.tape), "PB_SPEED": repr(self.cfg.speed),
            "PB_LEADER_FILES": ",".join(str(p) for p in self.cfg.leaders),
            "PB_AUDIT_LOG": str(self.cfg.log_dir / "venue_audit.jsonl"), "PB_INSTANCE_ID": "venue_sim-1",
        }
        proc = self.sup.start("venue_sim", self.env("venue_sim", venue_env))
        wait_until(lambda: proc.popen.poll() is None and venue_ready(self.clob_url), 30, f"venue at {self.clob_url}")
        wait_until(lambda: self.r is not None and self.r.exists(keys.CLOCK), 10, "the venue's replay clock in Redis")

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
        self.sup.stop_all()
        return final

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
