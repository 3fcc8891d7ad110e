"""Every Prometheus metric family of polyband, in one place (the one accepted home of module-level
metric objects).

Names follow the Prometheus conventions: ``pb_`` prefix, base units in the name (``_seconds``,
``_shares``, ``_usd``), counters end in ``_total``. Families are created unregistered and grouped by
the service that owns them (``FAMILIES``); ``register(service)`` (called by ``runtime.boot``) puts
the common families and that service's families into a registry, so each process exposes only what
it can move. Observing an unregistered family is harmless (the back-test and unit tests do it).

Label cardinality is bounded: reasons and outcomes are reason codes, ``token_id`` series exist only
while a worker holds the token (``forget_token`` removes them on release).

Per service (units):

* every process: ``pb_events_total{service,reason,level}`` (journaled events, ``libs.common.journal``).
* md_gateway: frames received by kind, level-change entries applied, rejected frames/events by
  reason code, WebSocket reconnects, frame receipt -> Redis ack latency (s), age of the oldest
  published book (s), books ``ok``.
* maker_worker: orders by side/outcome/reason, position (shares) and P&L (USD of pUSD) per held
  token, book-change receipt -> order acknowledged (s), book age when the strategy decides (s),
  leases held, lease takeovers, step time (s).
* scheduler: tracked tokens by state, leases offered/held, lease handovers by reason, step time (s).
* signal_ingest: signals published by side, leader trade -> signal publish lag (market s), dead letters.
* venue_sim: fills by role, orders by outcome/reason, cancels by reason, HTTP 429 answers, HTTP
  requests by method and route.
* user_feed: frames received by kind, disconnects, entries published, unparsable events.
"""
from __future__ import annotations

from decimal import Decimal

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

# Frame receipt -> Redis ack: tens of microseconds on a quiet box, up to ~100 ms under load.
FAST_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
# Book change -> order acknowledged / data age: an HTTP round trip and more (paper or live venue).
ORDER_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Leader trade -> signal publish, in market time: the poll interval plus the data-api delay.
LAG_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
# One scheduler/worker step (wall s): a few ms for a handful of tokens, up to seconds with hundreds.
STEP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


# ---- every service ----
EVENTS_TOTAL = Counter("pb_events_total", "Journaled events by service, reason code and level",
                       ["service", "reason", "level"], registry=None)

# ---- md_gateway ----
GATEWAY_FRAMES = Counter("pb_gateway_frames_total", "WebSocket frames received (kind: data, pong, stale)",
                         ["kind"], registry=None)
GATEWAY_ENTRIES = Counter("pb_gateway_book_entries_total", "Price-change entries applied to the books",
                          registry=None)
GATEWAY_PARSE_ERRORS = Counter("pb_gateway_parse_errors_total", "Rejected frames or events by reason code",
                               ["reason"], registry=None)
GATEWAY_RECONNECTS = Counter("pb_gateway_reconnects_total", "Market-channel WebSocket reconnect attempts",
                             registry=None)
GATEWAY_LATENCY = Histogram("pb_gateway_publish_latency_seconds",
                            "Frame receipt (socket thread) -> Redis acknowledged the book publish, seconds",
                            buckets=FAST_BUCKETS, registry=None)
GATEWAY_BOOK_AGE = Gauge("pb_gateway_book_age_seconds",
                         "Age of the oldest ok book since its last WebSocket message (wall seconds)", registry=None)
GATEWAY_BOOKS_OK = Gauge("pb_gateway_books_ok", "Subscribed tokens whose book is ok", registry=None)

# ---- maker_worker ----
WORKER_ORDERS = Counter("pb_worker_orders_total", "Our orders by side and outcome (posted, rejected, canceled, "
                        "filled = a fill event) and reason (purpose, reject code or cancel reason)",
                        ["side", "outcome", "reason"], registry=None)
WORKER_POSITION = Gauge("pb_worker_position_shares", "Position of a held token, shares", ["token_id"], registry=None)
WORKER_PNL = Gauge("pb_worker_pnl_usd", "P&L of a held token in USD of pUSD before fees (kind: realized at "
                   "average cost, unrealized marked at the best bid)", ["token_id", "kind"], registry=None)
WORKER_TICK_TO_ORDER = Histogram("pb_worker_tick_to_order_seconds",
                                 "Gateway receipt of a new book -> the venue acknowledged the order it caused "
                                 "(wall seconds)", buckets=ORDER_BUCKETS, registry=None)
WORKER_DATA_AGE = Histogram("pb_worker_data_age_seconds",
                            "Age of the Redis book when the strategy decides on it (wall seconds)",
                            buckets=ORDER_BUCKETS, registry=None)
WORKER_LEASES = Gauge("pb_worker_leases_held", "Token leases held by this worker", registry=None)
WORKER_TAKEOVERS = Counter("pb_worker_lease_takeovers_total", "Leases acquired from another (expired) holder",
                           registry=None)
WORKER_STEP = Histogram("pb_worker_step_seconds", "One full worker step over every held token (wall seconds)",
                        buckets=STEP_BUCKETS, registry=None)

# ---- scheduler ----
SCHED_TOKENS = Gauge("pb_scheduler_tokens", "Tracked tokens by lifecycle state", ["state"], registry=None)
SCHED_LEASES = Gauge("pb_scheduler_leases", "Token leases by state (offered: waiting for a worker; held: live)",
                     ["state"], registry=None)
SCHED_HANDOVERS = Counter("pb_scheduler_handovers_total", "Leases offered again by reason (expired, missing)",
                          ["reason"], registry=None)
SCHED_STEP = Histogram("pb_scheduler_step_seconds", "One scheduler step (wall seconds)", buckets=STEP_BUCKETS,
                       registry=None)

# ---- signal_ingest ----
INGEST_SIGNALS = Counter("pb_ingest_signals_total", "Signals published by side", ["side"], registry=None)
INGEST_LAG = Histogram("pb_ingest_lag_seconds", "Leader trade timestamp -> signal published (market seconds)",
                       buckets=LAG_BUCKETS, registry=None)
INGEST_DEAD = Counter("pb_ingest_dead_letters_total", "Leader rows dead-lettered by reason code", ["reason"],
                      registry=None)

# ---- venue_sim ----
VENUE_FILLS = Counter("pb_venue_fills_total", "Fills of our orders by role (MAKER, TAKER)", ["role"], registry=None)
VENUE_ORDERS = Counter("pb_venue_orders_total", "Order placements by outcome (accepted, rejected) and reason",
                       ["outcome", "reason"], registry=None)
VENUE_CANCELS = Counter("pb_venue_cancels_total", "Orders cancelled by reason", ["reason"], registry=None)
VENUE_RATE_LIMITED = Counter("pb_venue_rate_limited_total", "Requests answered HTTP 429", registry=None)
VENUE_HTTP = Counter("pb_venue_http_requests_total", "HTTP requests by method and route (the Flask rule, e.g. "
                     "/order; unmatched paths as 'unmatched')", ["method", "route"], registry=None)

# ---- user_feed ----
USER_FEED_FRAMES = Counter("pb_user_feed_frames_total", "User-channel frames received (kind: data, pong)",
                           ["kind"], registry=None)
USER_FEED_DISCONNECTS = Counter("pb_user_feed_disconnects_total", "User-channel links ended", registry=None)
USER_FEED_PUBLISHED = Counter("pb_user_feed_published_total", "Entries published to pb:user:{token} streams",
                              registry=None)
USER_FEED_PARSE_ERRORS = Counter("pb_user_feed_parse_errors_total", "Unusable user-channel events", registry=None)

COMMON = (EVENTS_TOTAL,)
FAMILIES: dict[str, tuple] = {
    "md_gateway": (GATEWAY_FRAMES, GATEWAY_ENTRIES, GATEWAY_PARSE_ERRORS, GATEWAY_RECONNECTS, GATEWAY_LATENCY,
                   GATEWAY_BOOK_AGE, GATEWAY_BOOKS_OK),
    "maker_worker": (WORKER_ORDERS, WORKER_POSITION, WORKER_PNL, WORKER_TICK_TO_ORDER, WORKER_DATA_AGE,
                     WORKER_LEASES, WORKER_TAKEOVERS, WORKER_STEP),
    "scheduler": (SCHED_TOKENS, SCHED_LEASES, SCHED_HANDOVERS, SCHED_STEP),
    "signal_ingest": (INGEST_SIGNALS, INGEST_LAG, INGEST_DEAD),
    "venue_sim": (VENUE_FILLS, VENUE_ORDERS, VENUE_CANCELS, VENUE_RATE_LIMITED, VENUE_HTTP),
    "user_feed": (USER_FEED_FRAMES, USER_FEED_DISCONNECTS, USER_FEED_PUBLISHED, USER_FEED_PARSE_ERRORS),
}


def register(service: str, registry: CollectorRegistry = REGISTRY) -> None:
    """Register the common families and ``service``'s (none for a service not in ``FAMILIES``) in
    ``registry``; registering twice is a no-op (the back-test runs every service in one process)."""
    for family in COMMON + FAMILIES.get(service, ()):
        try:
            registry.register(family)
        except ValueError:  # already registered
            pass


def sample_names(family: object) -> set[str]:
    """The sample names a family exposes (``x_total`` for counter ``x``; ``_bucket``/``_sum``/``_count``
    of a histogram), i.e. the names a PromQL query may use."""
    name, kind = family._name, family._type  # type: ignore[attr-defined]
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
                "gauge": ("",)}[kind]
    return {name + s for s in suffixes}


def all_sample_names() -> dict[str, str]:
    """Every sample name of every polyband family -> the service that exposes it ("*" = every one)."""
    out = {n: "*" for f in COMMON for n in sample_names(f)}
    for service, families in FAMILIES.items():
        out.update({n: service for f in families for n in sample_names(f)})
    return out


def forget_token(token_id: str) -> None:
    """Drop a token's position and P&L series (the worker released it)."""
    for family, labels in ((WORKER_POSITION, (token_id,)), (WORKER_PNL, (token_id, "realized")),
                           (WORKER_PNL, (token_id, "unrealized"))):
        try:
            family.remove(*labels)
        except KeyError:  # never set
            pass


def observe_venue_audit(kind: str, fields: dict[str, object]) -> None:
    """Count one venue audit line (``order_accepted``, ``order_rejected``, ``fill``, ``cancel``)."""
    if kind == "fill":
        VENUE_FILLS.labels(str(fields.get("role", ""))).inc()
    elif kind == "order_accepted":
        VENUE_ORDERS.labels("accepted", "OK").inc()
    elif kind == "order_rejected":
        VENUE_ORDERS.labels("rejected", str(fields.get("reason", ""))).inc()
    elif kind == "cancel":
        VENUE_CANCELS.labels(str(fields.get("reason", ""))).inc()


class Mirror:
    """Mirrors running totals a service already keeps (its ``counts`` dicts) into counters:
    ``add(counter_child, total)`` increments the child by what ``total`` grew since the last call
    (a total that went down, e.g. after a reset, adds nothing)."""

    def __init__(self) -> None:
        self._last: dict[int, int] = {}

    def add(self, child: Counter, total: int) -> None:
        """Bring ``child`` (a Counter or one of its ``labels(...)`` children) up to ``total``."""
        last = self._last.get(id(child), 0)
        if total > last:
            child.inc(total - last)
        self._last[id(child)] = total


def set_token(token_id: str, position: Decimal, realized_usd: Decimal, unrealized_usd: Decimal) -> None:
    """A held token's gauges: ``position`` in shares, P&L in USD of pUSD (computed in Decimal by the
    caller; converted to float only here, for export)."""
    WORKER_POSITION.labels(token_id).set(float(position))
    WORKER_PNL.labels(token_id, "realized").set(float(realized_usd))
    WORKER_PNL.labels(token_id, "unrealized").set(float(unrealized_usd))
