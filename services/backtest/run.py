"""One back-test run: a private Redis, the environment every service reads, the in-process venue and
the harness, a progress bar on stderr, then the results written to the run folder.

Determinism: the run is single-threaded on a virtual clock, the venue is seeded, order salts and
timestamps come from the virtual clock, and the process runs with ``PYTHONHASHSEED=0`` (the CLI
re-executes itself with it), so the same inputs give byte-identical results.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis import Redis
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from libs.common.logs import KeyValueFormatter
from libs.common.run_store import export_redis
from services.backtest.determinism import deterministic_orders
from services.backtest.equity import MarkSampler, plot_equity, write_equity
from services.backtest.harness import Harness
from services.backtest.venue_side import SimVenue, tape_defaults, venue_settings
from services.backtest.wire import in_process_http
from services.ops.paper import leader_accounts
from services.ops.supervisor import Supervisor

log = logging.getLogger(__name__)
SIM_URL = "http://venue.sim"


@dataclass
class BacktestConfig:
    """What to run: ``tape`` dir, ``leaders`` files, ``overrides`` (``PB_*`` -> value, from ``--set``
    and the tape's ``backtest`` defaults), ``workers``, ``seed``, ``out`` (the run folder)."""

    tape: Path
    leaders: tuple[Path, ...]
    out: Path
    overrides: dict[str, str] = field(default_factory=dict)
    workers: int = 2
    seed: int = 7
    tail_ms: int = 10 * 60_000
    minutes: float | None = None  # run only the first N minutes of tape (tests, quick looks)


def service_env(cfg: BacktestConfig, redis_url: str) -> dict[str, str]:
    """Every ``PB_*`` the services read: paper mode, the in-process venue's URLs, the run's Redis,
    the leaders, metrics off, then the tape's defaults and ``--set`` values."""
    env = {"PB_MODE": "paper", "PB_REDIS_URL": redis_url, "PB_CLOB_URL": SIM_URL,
           "PB_WS_MARKET_URL": "ws://venue.sim/ws/market", "PB_WS_USER_URL": "ws://venue.sim/ws/user",
           "PB_DATA_API_URL": f"{SIM_URL}/data-api", "PB_GAMMA_URL": f"{SIM_URL}/gamma",
           "PB_LEADERS": json.dumps(leader_accounts(cfg.leaders)), "PB_METRICS_PORT": "0",
           "PB_LOG_LEVEL": "WARNING", "PB_STEP_INTERVAL_S": "5"}
    env.update(tape_defaults(cfg.tape))
    env.update(cfg.overrides)
    return env


def _log_to(path: Path, level: str) -> None:
    handler = logging.FileHandler(path, mode="w")
    handler.setFormatter(KeyValueFormatter("backtest"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def _progress() -> Progress:
    return Progress(TextColumn("[bold]backtest"), BarColumn(), TextColumn("{task.fields[tape]}"),
                    TextColumn("{task.fields[eps]} ev/s"), TimeRemainingColumn(), transient=False,
                    redirect_stdout=False, redirect_stderr=False)


def _drive(h: Harness, venue: SimVenue, sampler: MarkSampler) -> float:
    """Run the harness under a progress bar (tape time, events per second, ETA) on stderr, sampling
    marks for the equity curve; returns wall seconds."""
    start, span = time.monotonic(), max(1, h.end_ms - venue.first_ms)
    with _progress() as bar:
        task = bar.add_task("run", total=span, tape="", eps="0")
        last = {"t": 0.0}

        def on_tick(t_ms: int) -> None:
            sampler.on_tick(t_ms)
            now = time.monotonic()
            if now - last["t"] < 0.25:
                return
            last["t"] = now
            eps = h.stats.venue_events / max(1e-6, now - start)
            tape = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t_ms / 1000))
            bar.update(task, completed=t_ms - venue.first_ms, tape=tape, eps=f"{eps:,.0f}")

        h.run(on_tick)
        bar.update(task, completed=span)
    return time.monotonic() - start


def run_backtest(cfg: BacktestConfig) -> dict[str, Any]:
    """Run one back-test into ``cfg.out``; returns the summary (also written as ``summary.json``).

    Raises:
        libs.common.tapes.TapeError / ValueError: unusable tape or leader file.
        libs.common.settings.BadSetting: a ``--set`` value a service refuses.
    """
    from services.backtest.results import collect, write_run

    cfg.out.mkdir(parents=True, exist_ok=True)
    with Supervisor(cfg.out) as sup:
        url = sup.unix_url or str(sup.redis_url)
        env = service_env(cfg, url)
        os.environ.update(env)
        _log_to(cfg.out / "backtest.log", env["PB_LOG_LEVEL"])
        r = Redis.from_url(url, decode_responses=True)
        venue = SimVenue(venue_settings(cfg.tape, list(cfg.leaders), cfg.seed, None), r, cfg.out / "venue_audit.jsonl")
        with in_process_http(venue.app), deterministic_orders(venue.clock):
            h = Harness(venue, r, cfg.workers, cfg.tail_ms)
            if cfg.minutes is not None:
                h.end_ms = min(h.end_ms, venue.first_ms + int(cfg.minutes * 60_000))
            sampler = MarkSampler(venue, h.workers[0].venue.wallet)
            wall_s = _drive(h, venue, sampler)
        venue.close()
        result = collect(r, venue, h, cfg)
        write_run(cfg.out, result)
        curve = write_equity(cfg.out / "equity.csv", result["pnl_fills"], sampler, venue, h.end_ms)
        plot_equity(cfg.out / "equity.png", curve, f"polyband back-test: {cfg.tape.name}")
        export_redis(r, cfg.out)  # redis.pbdump: `polyband report --run <out>` reads the run's Redis
    result["summary"]["wall_s"] = round(wall_s, 1)  # not in summary.json: it differs between runs
    result["summary"]["out"] = str(cfg.out)
    return result
