"""``polyband report``: the operators' questions (SPEC S5) answered from Redis, for a live system
(``--redis-url``, default ``PB_REDIS_URL``) or a finished run folder (``--run DIR``: its
``redis.pbdump``, served by a throwaway redis-server). Logic in ``services.report``."""
from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Optional

import typer

if TYPE_CHECKING:  # imported where used: the console starts fast, and --run needs no settings
    from redis import Redis


@contextmanager
def _redis(run: Path | None, redis_url: str | None) -> Iterator["Redis"]:
    if run is not None:
        from libs.common.run_store import open_run

        with open_run(run) as r:
            yield r
    elif redis_url:
        from libs.common.redis_client import redis_for_url

        yield redis_for_url(redis_url, "polyband-report")  # a plain Redis or a cluster (redis+cluster://)
    else:
        from libs.common.redis_client import make_redis
        from libs.common.settings import BaseServiceSettings, load_settings

        yield make_redis(load_settings(BaseServiceSettings), "polyband-report")


def report(run: Path | None, redis_url: str | None, since: str | None, as_json: bool, plots: Path | None,
           window_min: float) -> None:
    """Read, answer, print (and plot). Raises ValueError, RunStoreError, BadSetting, RedisError."""
    from rich.console import Console

    from services.report import answers as ans
    from services.report import render
    from services.report.model import Params
    from services.report.reader import read_curve, read_run

    with _redis(run, redis_url) as r:
        d = read_run(r, since)
        curve = read_curve(r, d) if plots is not None else None
    out = ans.compute(d, Params(reconnect_window_ms=int(window_min * 60_000)))
    tokens = ans.token_rows(d)
    if as_json:
        sys.stdout.buffer.write(render.to_json(out, tokens, d.since_ms, d.now_ms) + b"\n")
    else:
        render.render(Console(width=200), out, tokens, d.since_ms, d.now_ms)
    if plots is not None and curve is not None:
        from services.report.plots import write_plots

        written = write_plots(plots, d, out, curve)
        typer.echo(f"plots: {', '.join(str(p) for p in written)}", err=True)


def register(app: typer.Typer) -> None:
    """Add the ``report`` command to ``app``."""

    @app.command("report")
    def report_command(
        run: Optional[Path] = typer.Option(None, "--run", help="a finished run folder (holds redis.pbdump)"),
        redis_url: Optional[str] = typer.Option(None, "--redis-url", help="a live Redis (default PB_REDIS_URL)"),
        since: Optional[str] = typer.Option(None, "--since", help="market ms, ISO time or span back (30m, 2h)"),
        as_json: bool = typer.Option(False, "--json", help="one JSON object instead of tables"),
        plots: Optional[Path] = typer.Option(None, "--plots", help="write PNG plots into this folder"),
        window_min: float = typer.Option(5.0, "--window-min", min=0.1, help="minutes after a reconnect (answer 8)"),
    ) -> None:
        """Answers from Redis: inactivity, stale books, side gaps, aggressive steps, reconnects, fill
        rates, data age, exits, exit-only residue, balance rejects, states, P&L (SPEC S5)."""
        from redis.exceptions import RedisError

        from libs.common.run_store import RunStoreError

        if run is not None and redis_url:
            typer.echo("report: give --run or --redis-url, not both", err=True)
            raise typer.Exit(2)
        try:
            report(run, redis_url, since, as_json, plots, window_min)
        except (ValueError, RunStoreError) as exc:  # a BadSetting is a ValueError
            typer.echo(f"report: {exc}", err=True)
            raise typer.Exit(2) from None
        except RedisError as exc:
            typer.echo(f"report: Redis failed: {type(exc).__name__}: {exc}", err=True)
            raise typer.Exit(1) from None
