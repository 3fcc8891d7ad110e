"""``python -m services.venue_sim``: the paper venue in one process.

Wiring: settings -> logging -> Redis -> replay clock (published to ``pb:clock``, the venue's only
Redis state; the journal and heartbeats also go to Redis) -> tape books -> engine -> HTTP server
(CLOB REST, data-api, Gamma, ``/_sim``) -> WebSocket server (``/ws/market``, ``/ws/user``) -> replay
thread. SIGTERM/SIGINT stop everything within about 2 s. Redis is waited for at start (one
REDIS_UNAVAILABLE line per window); during an outage the venue keeps trading and republishes its
clock when Redis is back. Exit status 2 on a bad setting or an unusable tape/market/leader file, 1
when a port cannot be used (or Redis fails during the start itself).
"""
from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from websockets.sync.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from libs.common.clock import ReplayClock, publish_replay_clock
from libs.common import runtime
from libs.common.journal import Journal
from libs.common.runtime import heartbeat, install_stop_handlers, instance_name, run_loop
from libs.common.quote_tape import is_quote_tape, quote_span
from libs.common.tapes import MarketMeta, TapeError, TapeFrame, load_markets
from services.venue_sim.audit import Audit
from services.venue_sim.books import Applied, ParsedFrame, TapeBooks
from services.venue_sim.config import VenueSettings
from services.venue_sim.controls import Silence, make_blueprint
from services.venue_sim.engine import Engine
from services.venue_sim.faults import Faults
from services.venue_sim.leaders import Leaders
from services.venue_sim.redeem import resolutions_for
from services.venue_sim.replay import Replay, make_clock, read_frames
from services.venue_sim.rest import create_app, make_http_server
from services.venue_sim.ws_market import MarketHub, handle_market_text
from services.venue_sim.ws_user import UserHub

log = logging.getLogger("services.venue_sim")
# Python hands the GIL between threads every 5 ms by default. The replay thread is CPU-bound at high
# speeds, so every REST answer waited for it in 5 ms slices (an order's POST took 7-8 ms at the scale
# bench's load, bench/scale.py): the venue would add latency a real exchange does not. 0.5 ms, as
# md_gateway's socket threads.
SWITCH_INTERVAL_S = 0.0005
SERVICE = "venue_sim"
WS_PATHS = ("/ws/market", "/ws/user")


def tape_span(path: Path) -> tuple[int | None, int | None]:
    """(first, last) ``recv_ms`` of the tape's valid lines; (None, None) for an empty tape. A quote tape
    (libs/common/quote_tape.py) is scanned without building its frames."""
    if is_quote_tape(path):
        return quote_span(path)
    first = last = None
    for _, item in read_frames(path):
        if isinstance(item, TapeFrame):
            first = item.recv_ms if first is None else first
            last = item.recv_ms if last is None else max(last, item.recv_ms)
    return first, last


class VenueSink:
    """Replay effects -> market channel, then the engine (which may fill our orders)."""

    def __init__(self, market: MarketHub, engine: Engine) -> None:
        self.market, self.engine = market, engine

    def on_frame(self, frame: TapeFrame, parsed: ParsedFrame, applied: Applied) -> None:
        """Forward the frame, then let the engine match our orders of every touched token."""
        self.market.publish_frame(frame.payload, parsed, applied)
        for token_id in applied.touched:
            self.engine.on_tape_update(token_id)

    def on_market_end(self, market: MarketMeta, message: dict[str, Any]) -> None:
        """Record the winner for redemption (redeem.py), cancel the market's orders in the engine, then
        announce ``market_resolved``."""
        resolutions_for(self.engine).record(market.condition_id, str(message.get("winning_asset_id") or ""))
        self.engine.on_market_end(market.condition_id)
        self.market.publish_events([message])

    def on_done(self) -> None:
        """The tape ended (books stay as they are)."""
        log.info("event REPLAY_DONE_FORWARDED")


class Venue:
    """Every part of the venue, built from ``settings`` (ports 0 = any free port); ``start``/``stop``."""

    def __init__(self, settings: VenueSettings, r: Redis) -> None:
        self.settings, self.r = settings, r
        markets = load_markets(settings.markets_path())
        frames_path = settings.frames_path()
        first, last = tape_span(frames_path)
        wall = time.time_ns() // 1_000_000
        self.clock: ReplayClock = make_clock(first or wall, settings.speed, settings.start_delay_ms, wall)
        self.journal = Journal(r, SERVICE, self.clock)
        self.books = TapeBooks(markets, settings.tick_flip_low, settings.tick_flip_high)
        by_token = {t: m for m in markets for t in m.token_ids}
        self.audit = Audit(settings.audit_log)
        self.engine = Engine(self.books, by_token, self.clock, self.audit, settings.start_usdc, settings.seed)
        leaders = Leaders(settings.leaders, self.clock, first or wall, last or wall)
        self.silence = Silence(self.clock.wall_ms)
        self.market = MarketHub(self.books, self.engine.resting_levels, self.engine.last_trade, self.clock,
                                self.journal, self.silence, settings.ws_queue_max)
        self.user = UserHub(self.engine.verify_user, self.clock, self.journal, self.silence, settings.ws_queue_max)
        self.engine.listen(self.market.on_engine_event, settlement_updates=False)
        self.engine.listen(self.user.on_engine_event)
        self.replay = Replay(read_frames(frames_path), markets, self.books, VenueSink(self.market, self.engine),
                             self.journal)
        self.app = create_app(self.engine, self.books, by_token, leaders, self.clock, Faults(), self.audit,
                              resolver=self.replay.request_resolution)
        self.app.register_blueprint(make_blueprint(self.market, self.user, self.silence, self.replay_state))
        self.http = make_http_server(settings.venue_host, settings.venue_http_port, self.app)
        self.ws: Server = serve(self._route, settings.venue_host, settings.venue_ws_port,
                                process_request=_only_ws_paths, ping_interval=None, close_timeout=1)
        self.stop_event = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def http_port(self) -> int:
        """The bound HTTP port."""
        return int(self.http.server_port)

    @property
    def ws_port(self) -> int:
        """The bound WebSocket port."""
        return int(self.ws.socket.getsockname()[1])

    def _route(self, ws: ServerConnection) -> None:
        idle = self.settings.ws_idle_timeout_s
        if ws.request is not None and ws.request.path.split("?")[0] == "/ws/user":
            self.user.session(ws, idle, self.user.handle_text)
        else:
            self.market.session(ws, idle, lambda conn, text: handle_market_text(self.market, conn, text))

    def start(self) -> None:
        """Publish the replay clock and start the dispatcher, both servers and the replay thread."""
        publish_replay_clock(self.r, self.clock)
        self.market.start()
        for name, target in (("http", self.http.serve_forever), ("ws", self.ws.serve_forever),
                             ("replay", lambda: self.replay.run(self.clock, self.stop_event))):
            thread = threading.Thread(target=target, name=f"venue-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info("event VENUE_STARTED http_port=%d ws_port=%d tape=%s speed=%s epoch_tape_ms=%d epoch_wall_ms=%d",
                 self.http_port, self.ws_port, self.settings.frames_path(), self.clock.speed,
                 self.clock.epoch_tape_ms, self.clock.epoch_wall_ms)

    def stop(self) -> None:
        """Stop the replay, close every connection, shut both servers down, close the audit log."""
        self.stop_event.set()
        http_stop = threading.Thread(target=self.http.shutdown, name="venue-http-stop")
        http_stop.start()  # werkzeug polls every 0.5 s: overlap it with the WebSocket close handshakes
        self.market.drop_all()
        self.user.drop_all()
        self.ws.shutdown()  # waits for the handlers: at most close_timeout (1 s) for a silent client
        http_stop.join(2.0)
        self.market.stop()
        for thread in self._threads:
            thread.join(1.0)
        self.audit.close()
        log.info("event VENUE_STOPPED")

    def replay_state(self) -> dict[str, Any]:
        """Replay position, market time and clock for ``/_sim/ws/state``."""
        return {**asdict(self.replay.position), "next_due_ms": self.replay.next_due_ms(),
                "now_ms": self.clock.now_ms(), "speed": self.clock.speed,
                "epoch_tape_ms": self.clock.epoch_tape_ms, "epoch_wall_ms": self.clock.epoch_wall_ms}

    def heartbeat_detail(self) -> dict[str, object]:
        """Heartbeat fields: replay position and connection counts."""
        pos = self.replay.position
        return {"replay_frames": pos.frames_applied, "replay_last_recv_ms": pos.last_recv_ms,
                "replay_done": int(pos.done), "market_ms": self.clock.now_ms(),
                "market_conns": len(self.market.connections()), "user_conns": len(self.user.connections())}


def _only_ws_paths(conn: ServerConnection, request: Request) -> Response | None:
    if request.path.split("?")[0] not in WS_PATHS:
        return conn.respond(404, "Not Found\n")
    return None


def main() -> int:
    """Run the venue until SIGTERM/SIGINT; returns the exit status."""
    settings = runtime.boot(SERVICE, VenueSettings)
    if settings is None:
        return 2
    stop = threading.Event()
    install_stop_handlers(stop)
    conn = runtime.connect_redis(settings, SERVICE, stop)  # waits for Redis (one line per window)
    if conn is None:
        return 0
    r, gate = conn
    sys.setswitchinterval(SWITCH_INTERVAL_S)  # before the threads start: see SWITCH_INTERVAL_S
    try:
        venue = Venue(settings, r)
        venue.start()
    except TapeError as exc:
        log.error("event BAD_TAPE %s", exc)
        return 2
    except (OSError, RedisError) as exc:
        log.error("event VENUE_START_FAILED err=%s: %s", type(exc).__name__, exc)
        return 1
    instance = instance_name(SERVICE, settings.instance_id)
    beat = {"last": 0}

    def step() -> None:
        venue.engine.sweep()
        if venue.clock.wall_ms() - beat["last"] >= 2000:
            heartbeat(r, instance, SERVICE, venue.clock, venue.heartbeat_detail())  # never raises: an outage goes to the gate
            beat["last"] = venue.clock.wall_ms()
    try:
        run_loop(step, stop, venue.clock, 0.5, venue.journal, gate=gate,
                 on_recover=lambda: publish_replay_clock(r, venue.clock))  # a Redis restarted empty gets it back
    finally:
        venue.stop()
        venue.journal.record("SERVICE_STOPPED", instance=instance)  # stopped on purpose: not "down" (alerter)
    return 0


if __name__ == "__main__":
    sys.exit(main())
