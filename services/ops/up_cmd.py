"""``polyband up``: one paper run from the console, from pre-flight to the summary line.

What the console promises (README, "Running it"):

- a bad setting, a missing tape or leader file: one line per problem naming the variable or file,
  exit status 2, nothing started;
- a process that dies while the run starts: its error line on the console, everything stopped,
  exit status 1, no summary (nothing ran);
- Ctrl-C (SIGINT) or SIGTERM: the children live in their own sessions, so the signal reaches ``up``
  alone, which stops them in order (workers cancel their orders first, Redis last), prints the
  summary and exits 0;
- each run writes into its own folder (``var/runs/up-<UTC time>`` unless ``--run-dir``), with
  ``var/runs/latest`` pointing at it; at the end the folder also holds ``summary.json`` and the run's
  Redis data for ``polyband report --run``.
"""
from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from services.ops.paper import PaperConfig, PaperRun
from services.ops.preflight import settings_problems
from services.ops.supervisor import REPO, SupervisorError, error_line

log = logging.getLogger("polyband")
RUNS = REPO / "var" / "runs"


class UpRefused(Exception):
    """The run cannot start; ``lines`` say why, one problem each."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("; ".join(lines))
        self.lines = lines


def run_folder(explicit: Path | None, now: datetime) -> Path:
    """The run's folder: ``explicit`` (which must be new or empty), else ``var/runs/up-<UTC time>``.

    Raises:
        UpRefused: ``explicit`` already holds files (an earlier run's logs would be mixed in)."""
    if explicit is not None:
        folder = explicit.resolve()
        if folder.exists() and any(folder.iterdir()):
            raise UpRefused([f"run folder {folder} already holds an earlier run's files; "
                             "name a new folder with --run-dir, or remove it"])
        return folder
    folder = RUNS / f"up-{now.astimezone(timezone.utc):%Y%m%d-%H%M%S}"
    suffix = 1
    while folder.exists():
        folder, suffix = folder.with_name(f"{folder.name.split('.')[0]}.{suffix}"), suffix + 1
    return folder


def mark_latest(folder: Path) -> None:
    """Point ``var/runs/latest`` at ``folder`` (a symlink; best effort)."""
    latest = RUNS / "latest"
    try:
        RUNS.mkdir(parents=True, exist_ok=True)
        if latest.is_symlink() or latest.exists():
            latest.unlink()
        latest.symlink_to(folder)
    except OSError as exc:
        log.warning("event RUN_LATEST_LINK_FAILED folder=%s err=%s", folder, exc)


def preflight(run: PaperRun) -> None:
    """Refuse, before anything starts, what would make a process die at start.

    Raises:
        UpRefused: one line per problem (bad setting named with its value; missing tape or leader)."""
    missing = [f"leader file {p}: no such file" for p in run.cfg.leaders if not Path(p).is_file()]
    if not Path(run.cfg.tape).exists():
        missing.insert(0, f"tape {run.cfg.tape}: no such directory or file")
    if missing:
        raise UpRefused(missing)
    try:
        envs = run.preflight_envs()
    except Exception as exc:  # noqa: BLE001 - a leader file that does not parse: named in the message
        raise UpRefused([f"leader files: {exc}"]) from None
    problems = settings_problems(envs)
    if problems:
        raise UpRefused(problems)


def up(cfg: PaperConfig, duration: float | None) -> int:
    """Run ``cfg`` until ``duration`` wall seconds pass, Ctrl-C or SIGTERM; returns the exit status.
    The summary JSON is the last line on stdout whenever the run got going."""
    run = PaperRun(cfg)
    try:
        preflight(run)
    except UpRefused as exc:
        for line in exc.lines:
            print(f"up: {line}", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    cfg.log_dir.mkdir(parents=True, exist_ok=True)
    mark_latest(cfg.log_dir)
    try:
        run.start()
    except SupervisorError as exc:
        print(f"up: the run did not start: {exc}", file=sys.stderr)
        run.sup.stop_all()
        return 1
    _announce(run)
    status = 0
    try:
        status = _watch(run, stop, duration)
    finally:
        log.info("stopping: workers cancel their orders first")
        print(json.dumps(run.stop()), flush=True)
    return status


def _announce(run: PaperRun) -> None:
    log.info("running tape=%s speed=%s workers=%d run folder=%s redis=%s", run.cfg.tape, run.cfg.speed,
             run.cfg.workers, run.cfg.log_dir, run.sup.redis_url)
    if run.metrics_ports:
        log.info("metrics %s", " ".join(f"{n}=http://127.0.0.1:{p}/metrics" for n, p in run.metrics_ports.items()))


def _watch(run: PaperRun, stop: threading.Event, duration: float | None) -> int:
    """Log a progress line every 10 s until ``duration`` passes or ``stop`` is set (0), or a process
    dies (1, its error line on the console)."""
    end = time.monotonic() + duration if duration else float("inf")
    next_line = time.monotonic() + 10
    while not stop.is_set() and time.monotonic() < end:
        dead = run.sup.dead()
        if dead:
            for p in dead:
                log.error("event PROCESS_DIED %s exit=%s: %s (log %s)", p.name, p.popen.returncode,
                          error_line(p.log_path), p.log_path)
            return 1
        if time.monotonic() >= next_line:
            log.info("progress %s", json.dumps(run.summary()))
            next_line += 10
        stop.wait(min(0.5, max(0.0, end - time.monotonic())))
    return 0
