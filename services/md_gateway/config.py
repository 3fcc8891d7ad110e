"""md_gateway settings (env prefix ``PB_``; see docs/contracts.md "Settings")."""
from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from libs.common.settings import LIVE_URLS, BaseServiceSettings, paper_urls_for


class GatewaySettings(BaseServiceSettings):
    """Settings of the market-data gateway.

    Attributes:
        ws_market_url: market channel WebSocket (``ws://`` or ``wss://``).
        clob_url: CLOB REST base, for ``GET /book`` snapshots and verifies.
        max_assets_per_connection: tokens per WebSocket before another connection is opened (200, as
            nautilus_trader; Polymarket documents no cap).
        ping_interval_s: text ``PING`` period (Polymarket: 10 s).
        pong_timeout_s: a PING unanswered this long marks the connection dead (half-open).
        verify_interval_s: period of the REST check of quiet tokens (default 120 s, paper 20 s).
        stream_maxlen: approximate cap of each ``pb:md:stream:{token}``.
        backoff_min_s, backoff_max_s: reconnect backoff bounds (exponential, equal jitter).
        max_frame_bytes: frames above this are rejected unparsed (``FRAME_TOO_LARGE``). 4 MiB holds a
            200-book dump of ~20 KB books (about 250 levels a side); the tape's books are 1-3 KB. A
            rejected dump is not fatal: the tokens in it get REST snapshots after ``snapshot_grace_s``.
        snapshot_grace_s: wait for a WS snapshot this long before asking REST.
        rest_timeout_s, rest_retry_s, rest_threads: REST request timeout, retry delay, concurrency.
        connect_timeout_s: WebSocket connect + handshake timeout.
        subs_poll_s: how often ``pb:md:subs`` is read.
        status_interval_s: how often ``pb:md:gateway`` and the heartbeat are written (<= 1 s).
        max_batch_frames: frames drained from the sockets per Redis round trip.
        resync_buffer_max: level changes held per token while its book awaits a snapshot.
        journal_rejects_per_s: rejected frames journaled per second (the rest are counted only).
    """

    ws_market_url: str = Field(LIVE_URLS["ws_market_url"], pattern=r"^wss?://")
    clob_url: str = Field(LIVE_URLS["clob_url"], pattern=r"^https?://")
    max_assets_per_connection: int = Field(200, ge=1, le=1000)
    ping_interval_s: float = Field(10.0, gt=0)
    pong_timeout_s: float = Field(20.0, gt=0)
    verify_interval_s: float = Field(120.0, gt=0)
    stream_maxlen: int = Field(1000, ge=10)
    backoff_min_s: float = Field(0.5, gt=0)
    backoff_max_s: float = Field(30.0, gt=0)
    max_frame_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    snapshot_grace_s: float = Field(5.0, gt=0)
    rest_timeout_s: float = Field(5.0, gt=0)
    rest_retry_s: float = Field(2.0, gt=0)
    rest_threads: int = Field(2, ge=1, le=16)
    connect_timeout_s: float = Field(10.0, gt=0)
    subs_poll_s: float = Field(0.5, gt=0)
    status_interval_s: float = Field(1.0, gt=0, le=1.0)
    max_batch_frames: int = Field(256, ge=1)
    resync_buffer_max: int = Field(10_000, ge=10)
    journal_rejects_per_s: int = Field(20, ge=1)

    paper_defaults: ClassVar[dict[str, Any]] = {**paper_urls_for("ws_market_url", "clob_url"),
                                                 "verify_interval_s": 20.0, "snapshot_grace_s": 2.0}
