"""Settings of user_feed (env prefix ``PB_``): the user channel, the venue client that derives its API
credentials and answers the REST backfill, and the link's liveness rules (wall seconds)."""
from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from libs.common.settings import LIVE_URLS, VenueSettings, paper_urls_for


class UserFeedSettings(VenueSettings):
    """user_feed settings (wall seconds throughout; docs/contracts.md "Time").

    Attributes:
        ws_user_url: user channel WebSocket (``PB_WS_USER_URL``).
        clob_url, http_timeout_s: the venue client; with ``private_key, wallet_type, wallet``
            (``VenueSettings``) it must be the workers' account: the channel authenticates with that
            account's API key and carries only its orders.
        ping_interval_s: text PING period; pong_timeout_s: a PING unanswered this long kills the link.
        backoff_min_s, backoff_max_s: reconnect backoff bounds (equal jitter).
        connect_timeout_s: TCP + handshake deadline.
        stream_maxlen: approximate cap of each ``pb:user:{token}`` stream.
        status_interval_s: how often ``pb:user:feed`` and the heartbeat are written.
        backfill_overlap_s: the REST backfill re-reads trades this far before the newest match time
            seen (the venue filters ``after`` in whole seconds; duplicates are dropped by trade id).
    """

    ws_user_url: str = Field(LIVE_URLS["ws_user_url"], pattern=r"^wss?://")
    clob_url: str = Field(LIVE_URLS["clob_url"], pattern=r"^https?://")
    ping_interval_s: float = Field(10.0, gt=0)
    pong_timeout_s: float = Field(20.0, gt=0)
    backoff_min_s: float = Field(0.5, gt=0)
    backoff_max_s: float = Field(30.0, gt=0)
    connect_timeout_s: float = Field(10.0, gt=0)
    stream_maxlen: int = Field(1000, ge=10)
    status_interval_s: float = Field(1.0, gt=0, le=1.0)
    backfill_overlap_s: float = Field(2.0, ge=0)

    paper_defaults: ClassVar[dict[str, Any]] = {**VenueSettings.venue_paper_defaults,
                                                 **paper_urls_for("ws_user_url", "clob_url")}
