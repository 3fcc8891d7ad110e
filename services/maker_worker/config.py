"""Settings of maker_worker (env prefix ``PB_``; paper-mode defaults suit the tape's 5-minute markets)."""
from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar

from pydantic import Field

from libs.common.settings import LIVE_URLS, VenueSettings, paper_urls_for
from services.maker_worker.models import Params


class WorkerSettings(VenueSettings):
    """maker_worker settings. Seconds of *market* time for trading rules; ms of *wall* time for leases
    and book freshness (docs/contracts.md "Time").

    Attributes:
        clob_url: CLOB REST base URL.
        private_key, wallet_type, wallet: the trading account (``VenueSettings``; live mode requires
            the key, paper mode uses a published throwaway test key and an EOA wallet).
        worker_id: lease holder id; empty = ``maker_worker-<host>-<pid>``.
        max_leases: tokens one worker trades at once (default 100; was 10). Measured with
            ``python bench/scale.py`` (200 active tokens, 1,000 subscribed, 2 workers, 2-core box): a
            worker's RSS is ~75 MB whatever it holds (the interpreter and the venue SDK), so the budget
            of 2 MB per active token needs >= ~40 tokens per worker (at 10, 200 tokens take 20
            workers, ~7.5 MB per token); a step's Redis round trips no longer grow with the tokens
            held (leases renewed and user streams read in one pipeline) and a long step yields to
            pushed book changes every 2 ms, so 100 held tokens cost ~20 ms per step on a quiet box.
            A worker takes offers up to this cap, so to spread N tokens evenly over W workers set it
            to ceil(N / W) (bench/scale.py does).
        lease_ttl_ms: lease lifetime (wall ms), renewed every step; >= 1000, >= 2 step intervals and
            above ``http_timeout_s`` (``SHARED_RULES`` in ``libs.common.settings``, as every service checks).
        step_interval_s: wall seconds between steps.
        order_size: entry size in shares (raised to the market minimum when smaller).
        take_profit, stop_loss, max_loss, max_entry_premium: fractions of a price.
        floor_price: lowest price an exit ever asks.
        aggressive_step_after_s, aggressive_step_ticks: the exit ladder (market seconds, ticks).
        sell_only_window_s: no buys this close to the market end (market seconds).
        signal_timeout_s: no signal and no fill for this long ends the trade (market seconds).
        book_max_age_ms: the Redis book is fresh when received or verified this recently (wall ms).
        gateway_stale_ms: the gateway hash must be updated this recently (wall ms).
        http_timeout_s: venue HTTP timeout; also the takeover grace after the old lease expired.
        max_balance_failures: rejects in a row before the token is marked failed.
        balance_backoff_s: pause after a reject, times the number of rejects so far (market seconds).
        max_position: shares per token, position + open BUY remainder (enforced with the reservation);
        max_exposure_usd: USD committed by the whole account (all workers together: shares held x avg
        entry + open BUY remainder x price), reserved atomically before each entry BUY;
        daily_loss_limit_usd: loss per UTC day (all workers), realized + marked to market at the best
        bid, that halts trading.
        reconcile_interval_s: wall seconds between two reconciliations of a held token's orders and
        position with the venue (one is also made at every lease acquisition).
    """

    clob_url: str = Field(LIVE_URLS["clob_url"], pattern=r"^https?://")
    worker_id: str = ""
    max_leases: int = Field(100, ge=1, le=1000)
    lease_ttl_ms: int = Field(10_000, gt=0)  # >= 1000 and more: libs.common.settings.SHARED_RULES
    step_interval_s: float = Field(0.25, gt=0)
    order_size: Decimal = Field(Decimal(10), gt=0)
    take_profit: Decimal = Field(Decimal("0.02"), gt=0, lt=1)
    stop_loss: Decimal = Field(Decimal("0.10"), gt=0, lt=1)
    max_loss: Decimal = Field(Decimal("0.20"), gt=0, lt=1)
    floor_price: Decimal = Field(Decimal("0.01"), gt=0, lt=1)
    aggressive_step_after_s: float = Field(30.0, gt=0)
    aggressive_step_ticks: int = Field(1, ge=1)
    max_entry_premium: Decimal = Field(Decimal("0.05"), ge=0)
    sell_only_window_s: float = Field(3600.0, ge=0)
    signal_timeout_s: float = Field(3600.0, gt=0)
    book_max_age_ms: int = Field(150_000, gt=0)
    gateway_stale_ms: int = Field(5_000, gt=0)
    max_balance_failures: int = Field(3, ge=1)
    balance_backoff_s: float = Field(2.0, ge=0)
    max_position: Decimal = Field(Decimal(100), gt=0)
    max_exposure_usd: Decimal = Field(Decimal(500), gt=0)
    daily_loss_limit_usd: Decimal = Field(Decimal(100), gt=0)
    reconcile_interval_s: float = Field(60.0, gt=0)

    paper_defaults: ClassVar[dict[str, Any]] = {
        **VenueSettings.venue_paper_defaults,
        **paper_urls_for("clob_url"),
        "aggressive_step_after_s": 5.0,
        "sell_only_window_s": 60.0,
        "signal_timeout_s": 180.0,  # market s: a leader BUY at +45 s stays followed until the sell-only window
        "book_max_age_ms": 20_000,
        "reconcile_interval_s": 10.0,
    }

    def params(self) -> Params:
        """Strategy parameters in Decimal and market ms."""
        return Params(
            order_size=self.order_size, take_profit=self.take_profit, stop_loss=self.stop_loss,
            max_loss=self.max_loss, floor_price=self.floor_price,
            aggressive_step_after_ms=int(self.aggressive_step_after_s * 1000),
            aggressive_step_ticks=self.aggressive_step_ticks, max_entry_premium=self.max_entry_premium,
            sell_only_window_ms=int(self.sell_only_window_s * 1000),
            signal_timeout_ms=int(self.signal_timeout_s * 1000),
            max_balance_failures=self.max_balance_failures, max_position=self.max_position,
            balance_backoff_ms=int(self.balance_backoff_s * 1000))
