"""``polyband``: the operator's console (typer). ``up`` runs everything in paper mode on one
machine; ``live`` runs it against Polymarket after a pre-flight; ``status`` prints the live state
from Redis; ``halt``/``resume`` stop and restart trading."""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Optional

from typing import TYPE_CHECKING

import typer

from libs.common import keys
from services.ops.tape_defaults import DEFAULT_TAPE, default_leaders

if TYPE_CHECKING:  # the heavy modules load inside the commands that use them: the console starts fast
    from redis import Redis

    from libs.common.settings import BaseServiceSettings
    from services.ops.supervisor import Supervisor

app = typer.Typer(add_completion=False, help="polyband: copy-trading and maker band trading for Polymarket")
log = logging.getLogger("polyband")


def _settings() -> "BaseServiceSettings":
    from libs.common.settings import BadSetting, BaseServiceSettings, load_settings

    try:
        return load_settings(BaseServiceSettings)
    except BadSetting as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


@app.command()
def up(
    workers: int = typer.Option(2, min=1, help="maker_worker processes"),
    tape: Path = typer.Option(DEFAULT_TAPE, help="tape dir (frames.jsonl[.gz] + markets.json) or frames file"),
    leader: Optional[list[Path]] = typer.Option(None, help="leader file (repeatable); default: the tape's leaders"),
    speed: float = typer.Option(20.0, min=0.01, help="replay speed: market seconds per wall second"),
    duration: Optional[float] = typer.Option(None, min=1, help="stop cleanly after this many wall seconds"),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", "--log-dir",
                                           help="the run's folder (new or empty): logs, venue audit, summary, "
                                                "Redis data; default var/runs/up-<UTC time>"),
) -> None:
    """Run the whole system in paper mode: Redis (PB_REDIS_URL, or a private redis-server), the venue
    replaying TAPE at SPEED, and every service. The last line printed is the run's summary JSON."""
    from datetime import datetime, timezone

    from services.ops.up_cmd import UpRefused, run_folder
    from services.ops.up_cmd import up as run_up

    from libs.common.logs import configure_logging
    from services.ops.paper import PaperConfig

    settings = _settings()
    configure_logging("polyband", settings.log_level)
    redis_url = settings.redis_url if "redis_url" in settings.model_fields_set else None
    try:
        leaders = tuple(leader or default_leaders(tape))
        folder = run_folder(run_dir, datetime.now(timezone.utc))
    except (ValueError, UpRefused) as exc:
        typer.echo(f"up: {exc}", err=True)
        raise typer.Exit(2) from None
    services = PaperConfig.services + (("alerter",) if os.environ.get("PB_ALERT_WEBHOOK_URL") else ())
    cfg = PaperConfig(tape=tape, leaders=leaders, speed=speed, workers=workers, redis_url=redis_url,
                      log_dir=folder, services=services, export=True)
    raise typer.Exit(run_up(cfg, duration))


@app.command()
def backtest(
    tape: Path = typer.Option(DEFAULT_TAPE, help="tape dir (frames.jsonl[.gz] + markets.json)"),
    leader: Optional[list[Path]] = typer.Option(None, help="leader file (repeatable); default: the tape's synthetic leader"),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="setting KEY=VALUE for every service (repeatable)"),
    grid: Optional[Path] = typer.Option(None, help="JSON list of {name, set}: run each in parallel, side by side"),
    workers: int = typer.Option(2, min=1, help="maker_worker instances"),
    out: Path = typer.Option(Path("var/backtest"), help="run folder (a grid: one sub-folder per entry)"),
    minutes: Optional[float] = typer.Option(None, min=0.1, help="only the first N minutes of tape"),
    procs: int = typer.Option(2, min=1, help="grid: parallel processes"),
) -> None:
    """Back-test the whole system in virtual time: the services' own code and the venue's matching,
    in one process stepped by the tape's clock (no sleeps; byte-identical on every run). Writes
    summary.json, fills.csv, pnl_tokens.csv, equity.csv/png to OUT; the last line is the summary JSON."""
    from rich.console import Console

    from services.backtest.console import (
        ensure_hash_seed,
        load_grid,
        parse_sets,
        print_result,
        run_grid,
    )
    from libs.common.settings import BadSetting
    from services.backtest.run import BacktestConfig, run_backtest

    ensure_hash_seed(sys.argv[1:])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: the private redis-server stops too
    console = Console(width=None if sys.stdout.isatty() else 160)  # a log or a pipe gets whole columns
    try:
        cfg = BacktestConfig(tape=tape, leaders=tuple(leader or default_leaders(tape)), out=out.resolve(),
                             overrides=parse_sets(set_ or []), workers=workers, minutes=minutes)
        if grid is not None:
            run_grid(cfg, load_grid(grid), procs, console)
            return
        print_result(run_backtest(cfg), console)
    except (ValueError, BadSetting, OSError) as exc:
        typer.echo(f"backtest: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command()
def live(
    workers: int = typer.Option(2, min=1, help="maker_worker processes"),
    duration: Optional[float] = typer.Option(None, min=1, help="stop cleanly after this many wall seconds"),
    log_dir: Path = typer.Option(Path("var/live"), help="one log file per process"),
    check: bool = typer.Option(False, "--check", help="run the pre-flight only; start nothing"),
) -> None:
    """Trade real money: every service against Polymarket itself. Needs PB_MODE=live,
    PB_LIVE_CONFIRM=true, PB_PRIVATE_KEY and PB_LEADERS (README, "Live mode"); anything the services
    would refuse is refused first, one line per problem, and nothing starts."""
    from services.ops.live import LiveRun, live_env, preflight

    env = live_env(os.environ)
    problems = preflight(env)
    for line in problems:
        typer.echo(line, err=True)
    if problems:
        raise typer.Exit(2)
    if check:
        typer.echo("live pre-flight: ready")
        return
    from libs.common.logs import configure_logging

    configure_logging("polyband", env.get("PB_LOG_LEVEL", "INFO"))  # type: ignore[arg-type]
    run = LiveRun(env, workers, log_dir.resolve())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        run.start()
        _wait(run.sup, stop, duration)
    finally:
        log.info("stopping: workers cancel their own orders first")
        run.stop()


def _wait(sup: "Supervisor", stop: threading.Event, duration: float | None) -> None:
    """Block until ``duration`` passes, SIGINT/SIGTERM, or a process dies (exit 1, naming it)."""
    end = time.monotonic() + duration if duration else float("inf")
    while not stop.is_set() and time.monotonic() < end:
        dead = sup.dead()
        if dead:
            log.error("event PROCESS_DIED %s", ", ".join(f"{p.name} exit={p.popen.returncode} log={p.log_path}" for p in dead))
            raise typer.Exit(1)
        stop.wait(min(0.5, max(0.0, end - time.monotonic())))


REDIS_URL_OPTION = typer.Option(None, "--redis-url", help="the run's Redis (default: PB_REDIS_URL)")


def _redis(redis_url: str | None, name: str) -> tuple[Redis, str]:
    """A client for ``redis_url`` or PB_REDIS_URL, and the URL it talks to."""
    from libs.common.redis_client import make_redis

    settings = _settings()
    url = redis_url or settings.redis_url
    return make_redis(settings.model_copy(update={"redis_url": url}), name), url


def _polyband_redis(redis_url: str | None) -> Redis:
    """The run's Redis, refused (exit 2) when it does not answer or holds no polyband data: a halt
    written to some other Redis would stop nothing."""
    from redis.exceptions import RedisError

    r, url = _redis(redis_url, "polyband-cli")
    try:
        found = r.exists(keys.SERVICES, keys.TOKENS, keys.SUMMARY)
    except RedisError as exc:
        typer.echo(f"redis at {url} does not answer: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(2) from None
    if not found:
        typer.echo(f"redis at {url} holds no polyband data (no {keys.SERVICES}, {keys.TOKENS} or {keys.SUMMARY}); "
                   "point PB_REDIS_URL or --redis-url at the run's Redis (up logs it)", err=True)
        raise typer.Exit(2)
    return r


@app.command()
def status(watch: bool = typer.Option(False, "--watch", "-w", help="refresh every second"),
           redis_url: Optional[str] = REDIS_URL_OPTION) -> None:
    """Live state from Redis on one 200x50 screen: clock, halt and risk, services, gateway, queues,
    total P&L, and every token (market, outcome, lease, book, position, P&L)."""
    from services.ops.status import render_status

    r, url = _redis(redis_url, "polyband-status")
    raise typer.Exit(render_status(r, url, watch))


@app.command()
def halt(reason: str = typer.Argument("MANUAL_HALT", help="reason code recorded with the halt"),
         redis_url: Optional[str] = REDIS_URL_OPTION) -> None:
    """Stop trading: workers cancel every order and place no new entries until ``resume``."""
    r = _polyband_redis(redis_url)
    r.set(keys.HALT, reason)
    typer.echo(f"halted: {reason}")


@app.command()
def resume(redis_url: Optional[str] = REDIS_URL_OPTION) -> None:
    """Lift a halt (set by ``halt`` or by a risk limit)."""
    r = _polyband_redis(redis_url)
    was = r.get(keys.HALT)
    r.delete(keys.HALT)
    typer.echo(f"resumed (was: {was or 'not halted'})")


from services.ops.report_cmd import register as _register_report  # noqa: E402 - after the app's own commands
_register_report(app)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    sys.exit(main())
