"""The paper venue of a back-test: the same books, engine, hubs, replay, data-api, Gamma and REST app
as ``python -m services.venue_sim`` (its ``Venue`` class), on the virtual clock and without servers:
the services reach the app through :mod:`services.backtest.wire`."""
from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from redis import Redis

from libs.common.clock import publish_replay_clock, ReplayClock
from libs.common.journal import Journal
from libs.common.tapes import load_markets
from services.backtest.vclock import VirtualClock
from services.venue_sim.__main__ import VenueSink, tape_span
from services.venue_sim.audit import Audit
from services.venue_sim.books import TapeBooks
from services.venue_sim.config import VenueSettings
from services.venue_sim.controls import Silence
from services.venue_sim.engine import Engine
from services.venue_sim.faults import Faults
from services.venue_sim.leaders import Leaders
from services.venue_sim.replay import Replay, read_frames
from services.venue_sim.rest import create_app
from services.venue_sim.ws_market import MarketHub
from services.venue_sim.ws_user import UserHub


class SimVenue:
    """Every part of the paper venue for one back-test (see module doc).

    Args:
        settings: the venue's settings (tape, leader files, seed, start_usdc, audit_log, ticks).
        r: Redis (the venue's journal and the replay clock key).
        audit_path: where the audit log goes (the run folder).

    Raises:
        libs.common.tapes.TapeError: the tape, markets or leader files are unusable.
        ValueError: the tape has no frames.
    """

    def __init__(self, settings: VenueSettings, r: Redis, audit_path: Path) -> None:
        self.settings = settings
        markets = load_markets(settings.markets_path())
        frames_path = settings.frames_path()
        first, last = tape_span(frames_path)
        if first is None or last is None:
            raise ValueError(f"tape {frames_path} holds no frames")
        self.first_ms, self.last_ms = first, last
        self.end_ms = max([last] + [m.end_ms for m in markets])
        self.clock = VirtualClock(first)
        self.markets = markets
        self.journal = Journal(r, "venue_sim", self.clock)
        self.books = TapeBooks(markets, settings.tick_flip_low, settings.tick_flip_high)
        self.by_token = {t: m for m in markets for t in m.token_ids}
        self.audit = Audit(audit_path)
        self.engine = Engine(self.books, self.by_token, self.clock, self.audit, settings.start_usdc, settings.seed)
        self.leaders = Leaders(settings.leader_files, self.clock, first, last)
        silence = Silence(self.clock.wall_ms)
        self.market = MarketHub(self.books, self.engine.resting_levels, self.engine.last_trade, self.clock,
                                self.journal, silence, settings.ws_queue_max)
        self.user = UserHub(self.engine.verify_user, self.clock, self.journal, silence, settings.ws_queue_max)
        self.engine.listen(self.market.on_engine_event, settlement_updates=False)
        self.engine.listen(self.user.on_engine_event)
        self.replay = Replay(read_frames(frames_path), markets, self.books, VenueSink(self.market, self.engine),
                             self.journal)
        self.app = create_app(self.engine, self.books, self.by_token, self.leaders, self.clock, Faults(), self.audit,
                              resolver=self.replay.request_resolution)
        publish_replay_clock(r, ReplayClock(first, first, 1.0))  # services find a paper clock, as under `up`

    def advance_to(self, t_ms: int) -> int:
        """Apply every tape frame and market end due by ``t_ms``, then the engine's sweep
        (settlement steps, GTD expiry, heartbeats); returns frames and ends applied."""
        n = self.replay.advance_to(t_ms)
        self.engine.sweep()
        return n

    def next_due_ms(self) -> int | None:
        """Market ms of the next frame or market end (None when the tape is done)."""
        return self.replay.next_due_ms()

    def close(self) -> None:
        """Close the audit log."""
        self.audit.close()

    def counts(self) -> dict[str, Any]:
        """The engine's counters (orders, fills, rejects)."""
        return self.engine.counts()


def venue_settings(tape: Path, leaders: list[Path], seed: int, start_usdc: Decimal | None) -> VenueSettings:
    """The venue's settings for a back-test (the rest from ``PB_*`` as under ``up``)."""
    fields: dict[str, Any] = {"tape": tape, "leader_files": leaders, "seed": seed, "venue_http_port": 0,
                              "venue_ws_port": 0}
    if start_usdc is not None:
        fields["start_usdc"] = start_usdc
    return VenueSettings(**fields)


def tape_defaults(tape: Path) -> dict[str, str]:
    """The tape's back-test settings (``backtest.json`` beside its frames: ``{"PB_...": "value"}``),
    e.g. longer steps for a week of two-minute quotes; ``--set`` overrides them.

    Raises:
        ValueError: the file is not a JSON object of strings.
    """
    path = tape / "backtest.json"
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ValueError(f"{path}: expected a JSON object of PB_* -> string values")
    return data
