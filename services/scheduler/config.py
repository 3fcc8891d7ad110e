"""Settings of the scheduler (SPEC S3.3): capacity, lifecycle windows, health thresholds, URLs.

Environment (prefix ``PB_``): ``PB_GAMMA_URL``, ``PB_CLOB_URL``, ``PB_MAX_ACTIVE_TOKENS``,
``PB_SELL_ONLY_WINDOW_S``, ``PB_INACTIVE_WARN_S``, ``PB_INACTIVE_CLEANUP_S``,
``PB_REENTRY_COOLDOWN_S``, ``PB_LEASE_TTL_MS``, ``PB_STEP_INTERVAL_S``, ``PB_HEARTBEAT_INTERVAL_S``,
``PB_GATEWAY_STALE_MS``, ``PB_GAMMA_TIMEOUT_S``, ``PB_GAMMA_MAX_ATTEMPTS``, ``PB_FEED_GRACE_S``,
``PB_SIGNAL_BATCH``, ``PB_CLAIM_IDLE_MS``, retention (``services/scheduler/retention.py``):
``PB_RETENTION_INTERVAL_S``, ``PB_RETENTION_SIGNALS_S``, ``PB_RETENTION_TOKENS_S``,
``PB_RETENTION_SERVICES_S``, ``PB_RETENTION_RISK_DAYS``, ``PB_RETENTION_BATCH``, ``PB_LOOKBACK_S``;
live mode also ``PB_PRIVATE_KEY`` (secret),
``PB_WALLET_TYPE``, ``PB_WALLET`` for the exchange heartbeat (``VenueSettings``).
"""
from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, model_validator

from libs.common.settings import LIVE_URLS, VenueSettings, paper_urls_for


class SchedulerSettings(VenueSettings):
    """scheduler settings. Seconds are wall or market seconds as noted; ``*_ms`` are milliseconds.

    Attributes:
        gamma_url: Gamma base URL (``GET {gamma_url}/markets?clob_token_ids=``).
        clob_url: CLOB REST base URL (live exchange heartbeat ``POST /v1/heartbeats``).
        max_active_tokens: tokens active/exiting/exit_only at once (default 10; SPEC S3.3).
        sell_only_window_s: market seconds before a market's end in which no token is entered
            (3600; paper 60, for the tape's five-minute markets).
        inactive_warn_s: market seconds without market activity before HEALTH_INACTIVE_WARN
            (1800 = the legacy 30-min warning; paper 60).
        inactive_cleanup_s: market seconds without activity before the token is cleaned up
            (3600 = the legacy 60-min clean-up; paper 120). Must exceed ``inactive_warn_s``.
        reentry_cooldown_s: market seconds a token stays in cooldown before a BUY may refill it
            (600; paper 30).
        lease_ttl_ms: the workers' lease TTL (wall ms); an offer nobody claims for 3 TTLs is
            journaled OFFER_UNCLAIMED. Checked as the workers check it (``SHARED_RULES`` in
            ``libs.common.settings``: >= 1000, >= 2 step intervals, above ``http_timeout_s``).
        step_interval_s: wall seconds between two steps.
        heartbeat_interval_s: wall seconds between two exchange heartbeats (live mode only).
        gateway_stale_ms: ``pb:md:gateway.updated_ms`` older than this (wall) means the feed is down.
        gamma_timeout_s: timeout of one Gamma request (wall seconds).
        gamma_max_attempts: Gamma failures in a row before a candidate goes to cooldown
            (METADATA_UNAVAILABLE).
        feed_grace_s: wall seconds a per-token feed problem must last before it is journaled
            (a just-activated token has no book until the gateway subscribed).
        signal_batch: signals read per XREADGROUP.
        claim_idle_ms: signals idle this long (wall ms) in a dead consumer are XAUTOCLAIMed.
        retention_interval_s: wall seconds between two retention passes (300; 0 = retention off).
        retention_signals_s: ``pb:sig:stream`` entries (by stream id, wall) and ``pb:sig:done``
            entries (by signal ts, market) older than this may go (604800 = 7 days); never a pending
            or undelivered entry, never a done entry whose signal could be published again.
        retention_tokens_s: market seconds a finished token (closed/cooldown/failed/resolved, no lease,
            no open order, no shares) is kept after its last activity before its records go (604800 =
            7 days); never while the journal ``pb:events`` (what ``polyband report`` reads) is older.
        retention_services_s: wall seconds after its last heartbeat before a service instance leaves
            ``pb:svc`` and a worker ``pb:workers`` (86400 = 1 day).
        retention_risk_days: days of ``pb:risk:daily_pnl`` kept before today (30).
        retention_batch: items each part of one retention pass handles at most (1000).
        lookback_s: signal_ingest's first-run lookback (the same ``PB_LOOKBACK_S``): a done entry is
            kept at least this long, since a lost cursor republishes the rows of the lookback.
        private_key, wallet_type, wallet: live only: the trading account, as for the workers
            (``VenueSettings``; heartbeats are per API key, so per account).
    """

    gamma_url: str = Field(LIVE_URLS["gamma_url"], pattern=r"^https?://")
    clob_url: str = Field(LIVE_URLS["clob_url"], pattern=r"^https?://")
    max_active_tokens: int = Field(10, ge=1)
    sell_only_window_s: float = Field(3600.0, ge=0)
    inactive_warn_s: float = Field(1800.0, gt=0)
    inactive_cleanup_s: float = Field(3600.0, gt=0)
    reentry_cooldown_s: float = Field(600.0, ge=0)
    lease_ttl_ms: int = Field(10_000, gt=0)
    step_interval_s: float = Field(0.5, gt=0)
    heartbeat_interval_s: float = Field(5.0, gt=0)
    gateway_stale_ms: int = Field(5000, gt=0)
    gamma_timeout_s: float = Field(5.0, gt=0)
    gamma_max_attempts: int = Field(5, ge=1)
    feed_grace_s: float = Field(10.0, ge=0)
    signal_batch: int = Field(100, ge=1, le=10_000)
    claim_idle_ms: int = Field(30_000, gt=0)
    retention_interval_s: float = Field(300.0, ge=0)
    retention_signals_s: float = Field(7 * 86400.0, gt=0)
    retention_tokens_s: float = Field(7 * 86400.0, gt=0)
    retention_services_s: float = Field(86400.0, gt=0)
    retention_risk_days: int = Field(30, ge=1)
    retention_batch: int = Field(1000, ge=1, le=100_000)
    lookback_s: int = Field(0, ge=0)

    paper_defaults: ClassVar[dict[str, Any]] = {
        **VenueSettings.venue_paper_defaults,
        **paper_urls_for("gamma_url", "clob_url"),
        "sell_only_window_s": 60.0,
        # market s; the tape's five-minute markets are quiet for minutes at a time (18 price moves
        # in 33 min), so a cleanup at 120 s would end most entries before the market moves at all
        "inactive_warn_s": 90.0,
        "inactive_cleanup_s": 180.0,
        "reentry_cooldown_s": 30.0,
        "lookback_s": 120,  # as signal_ingest's paper default
    }

    @model_validator(mode="after")
    def _check(self) -> "SchedulerSettings":
        if self.inactive_cleanup_s <= self.inactive_warn_s:
            raise ValueError(f"inactive_cleanup_s={self.inactive_cleanup_s} must be greater than "
                             f"inactive_warn_s={self.inactive_warn_s}")
        return self
