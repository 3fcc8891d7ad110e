"""Per-token state of the gateway and the publish record the core hands to the shell (no I/O)."""
from __future__ import annotations

from dataclasses import dataclass, field

from services.md_gateway import schemas as s
from services.md_gateway.book import EMPTY_TOP, Book, TopOfBook
from services.md_gateway.units import fmt_micros

OK, RESYNC = "ok", "resync"


@dataclass(slots=True)
class Publish:
    """One change of a token's hash. ``fields`` is a flat ``[field, value, ...]`` list; when ``stream``
    its first six pairs are best_bid, best_ask, bid_size, ask_size, exch_ts_ms, recv_ts_ms (the stream
    entry's fields, see ``book_publish.lua``). ``recv_ns`` is a perf-counter stamp of frame receipt
    (latency measurement only)."""

    token_id: str
    stream: bool
    event: str
    fields: list[str]
    recv_ns: int = 0


@dataclass(slots=True)
class TokenState:
    """Everything the gateway knows about one subscribed token (prices in micros, times wall ms)."""

    token_id: str
    book: Book = field(default_factory=Book)
    status: str = RESYNC
    market: str = ""
    tick: int | None = None
    min_order_size: str = ""
    last_trade: str = ""
    top: TopOfBook = EMPTY_TOP  # last published top
    msgs: int = 0  # WS events applied to this token
    last_msg_ms: int = 0
    top_ms: int = 0  # wall ms the top of an ok book was last published (its recv_ts_ms)
    # level changes held while the book awaits a snapshot: the first one (from REST when the dump is
    # missing) and every resync; None while a WS book is being installed
    buffer: list[s.LevelChange] | None = field(default_factory=list)
    # level changes applied while a verify is in flight, replayed on its answer; None: no verify in
    # flight, or the verify is void (too many changes, or a WS book arrived meanwhile)
    inflight: list[s.LevelChange] | None = None
    snap_due_ms: int = 0  # request a REST snapshot at this time (0 = not scheduled)
    rest_why: str = ""  # the REST request in flight ("" = none)
    rest_msgs: int = 0  # msgs when that request was sent (a verify is void if it changed)
    live: bool = False  # subscribed on an open connection
    discard_next: bool = False  # the REST answer in flight predates lost changes: ask again
    bba: tuple[int | None, int | None, int] | None = None  # best_bid_ask awaiting its cross-check
    crossed: bool = False  # the book after the last level change is crossed (never published)


def price_str(v: int | None) -> str:
    """Micros -> decimal string; ``None`` (an empty side or an unknown tick) -> ""."""
    return "" if v is None else fmt_micros(v)


def top_fields(top: TopOfBook, exch_ms: int, recv_ms: int) -> list[str]:
    """The six stream fields of ``top`` as ``[field, value, ...]`` strings ("" for an empty side)."""
    return ["best_bid", price_str(top.bid), "best_ask", price_str(top.ask),
            "bid_size", fmt_micros(top.bid_size) if top.bid is not None else "",
            "ask_size", fmt_micros(top.ask_size) if top.ask is not None else "",
            "exch_ts_ms", str(exch_ms), "recv_ts_ms", str(recv_ms)]
