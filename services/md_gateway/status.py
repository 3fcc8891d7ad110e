"""What ``pb:md:gateway`` reports (and, at the same moment, the ``pb_gateway_*`` Prometheus metrics),
and the rate gate that keeps a flood of bad frames out of the journal.

``pb:md:gateway`` fields (all strings; ``*_ms`` wall): ``state`` (connected|connecting|down),
``connections`` (open links), ``shards`` (links wanted), ``wanted`` (tokens in ``pb:md:subs``),
``subscribed`` (tokens subscribed on open links), ``with_book`` (tokens whose book is ``ok``),
``msgs`` (data frames received), ``msg_rate`` (frames/s since the last write), ``reconnects``,
``parse_errors``, ``rejects`` (parse errors + crossed books), ``reject:<CODE>`` per code,
``last_msg_ms``, ``last_pong_ms``, ``updated_ms``; coverage: ``missing_subscription`` (wanted, not
subscribed on an open link) and ``missing_book`` (subscribed, book not ``ok``) with up to five example
ids each (``*_ex``, comma-separated); ``published`` (Lua publishes written), ``pending`` (queued while
Redis is unreachable), ``pongs``, ``stale_frames``, ``ignored_events`` (``new_market``), and the
core's counters: ``entries`` (price-change entries), ``unwanted`` (events for tokens not subscribed
on that connection), ``xcheck``/``xcheck_mismatch`` (best_bid/best_ask reported vs ours),
``crossed``, ``resyncs``, ``snapshots``, ``buffered``, ``verified``, ``verify_busy``, ``drift``,
``rest_ok``, ``rest_failed``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from libs.common import metrics
from services.md_gateway import schemas
from services.md_gateway.state import OK, TokenState

if TYPE_CHECKING:
    from services.md_gateway.service import GatewayService

EXAMPLES = 5
PARSE_CODES = (schemas.BAD_JSON, schemas.UNKNOWN_EVENT, schemas.MISSING_FIELD, schemas.BAD_VALUE, schemas.TOO_LARGE,
               schemas.INTERNAL)


class RateGate:
    """At most ``per_s`` allowed events per wall second; the rest are counted in ``suppressed``."""

    def __init__(self, per_s: int) -> None:
        self.per_s, self.window_s, self.used, self.suppressed = per_s, -1, 0, 0

    def allow(self, now_ms: int) -> bool:
        """True if one more event may be journaled in the second of ``now_ms``."""
        sec = now_ms // 1000
        if sec != self.window_s:
            self.window_s, self.used = sec, 0
        if self.used < self.per_s:
            self.used += 1
            return True
        self.suppressed += 1
        return False


def gateway_fields(svc: "GatewayService", now_ms: int, msg_rate: float) -> dict[str, str]:
    """The ``pb:md:gateway`` hash of ``svc`` at ``now_ms``."""
    subscribed = svc.shards.subscribed()
    tokens = svc.core.tokens
    missing_sub = sorted(svc.wanted - subscribed)
    missing_book = sorted(t for t in subscribed if t in tokens and tokens[t].status != OK)
    n_open = sum(1 for c in svc.shards.conns.values() if c.status == "open")
    fields: dict[str, object] = {
        "state": "down" if svc.stopped else svc.shards.state(), "connections": n_open, "shards": len(svc.shards.conns),
        "wanted": len(svc.wanted), "subscribed": len(subscribed),
        "with_book": sum(1 for st in tokens.values() if st.status == OK),
        "msg_rate": f"{msg_rate:.1f}", "reconnects": svc.shards.reconnects, "last_msg_ms": svc.last_msg_ms,
        "last_pong_ms": svc.shards.last_pong_ms, "updated_ms": now_ms,
        "missing_subscription": len(missing_sub), "missing_subscription_ex": ",".join(missing_sub[:EXAMPLES]),
        "missing_book": len(missing_book), "missing_book_ex": ",".join(missing_book[:EXAMPLES]),
        "published": svc.publisher.published, "pending": len(svc.publisher.pending),
    }
    fields.update(svc.counts)
    fields.update(svc.core.counts)
    return {k: str(v) for k, v in fields.items()}


def oldest_book_age_ms(tokens: Iterable[TokenState], now_ms: int) -> int:
    """Wall ms since the last WebSocket message of the stalest ``ok`` book (0 when there is none;
    a book never updated over the WebSocket, REST only, is left out)."""
    return max((now_ms - st.last_msg_ms for st in tokens if st.status == OK and st.last_msg_ms), default=0)


def export_metrics(svc: "GatewayService", mirror: metrics.Mirror, now_ms: int) -> None:
    """Bring the gateway's Prometheus metrics up to its own counters (called at each status write)."""
    counts, m = svc.counts, metrics
    mirror.add(m.GATEWAY_FRAMES.labels("data"), counts["msgs"])
    mirror.add(m.GATEWAY_FRAMES.labels("pong"), counts["pongs"])
    mirror.add(m.GATEWAY_FRAMES.labels("stale"), counts["stale_frames"])
    mirror.add(m.GATEWAY_ENTRIES, svc.core.counts["entries"])
    mirror.add(m.GATEWAY_RECONNECTS, svc.shards.reconnects)
    for key, n in counts.items():
        if key.startswith("reject:") and key[7:] in PARSE_CODES:
            mirror.add(m.GATEWAY_PARSE_ERRORS.labels(key[7:]), n)
    tokens = svc.core.tokens.values()
    m.GATEWAY_BOOK_AGE.set(oldest_book_age_ms(tokens, now_ms) / 1000)
    m.GATEWAY_BOOKS_OK.set(sum(1 for st in tokens if st.status == OK))
