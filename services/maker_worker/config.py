"""Settings of maker_worker (env prefix ``PB_``; paper-mode defaults suit the tape's 5-minute markets)."""
from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar

from pydantic import Field, SecretStr, ValidationInfo, field_validator

from libs.common.settings import BaseServiceSettings
from libs.common.venue import PAPER_TEST_PRIVATE_KEY
from services.maker_worker.models import Params


class WorkerSettings(BaseServiceSettings):
    """maker_worker settings. Seconds of *market* time for trading rules; ms of *wall* time for leases
    and book freshness (docs/contracts.md "Time").

    Attributes:
        clob_url: CLOB REST base URL.
        private_key: signer key (SecretStr, never logged). Paper default: a published throwaway test key
            holding nothing (``libs.common.venue.PAPER_TEST_PRIVATE_KEY``); live mode requires it.
        chain_id, signature_type, funder: venue client signing options (see ``VenueClient``).
        worker_id: lease holder id; empty = ``maker_worker-<host>-<pid>``.
        max_leases: tokens one worker trades at once.
        lease_ttl_ms: lease lifetime (wall ms), renewed every step.
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
        max_position: shares per token; max_exposure_usd: USD across this worker's tokens;
        daily_loss_limit_usd: realized loss per UTC day (all workers) that halts trading.
    """

    clob_url: str = Field("http://127.0.0.1:8080", pattern=r"^https?://")
    private_key: SecretStr | None = None
    chain_id: int = 137
    signature_type: int = Field(0, ge=0, le=3)
    funder: str | None = None
    worker_id: str = ""
    max_leases: int = Field(10, ge=1, le=1000)
    lease_ttl_ms: int = Field(10_000, ge=1_000)
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
    http_timeout_s: float = Field(5.0, gt=0)
    max_balance_failures: int = Field(3, ge=1)
    balance_backoff_s: float = Field(2.0, ge=0)
    max_position: Decimal = Field(Decimal(100), gt=0)
    max_exposure_usd: Decimal = Field(Decimal(500), gt=0)
    daily_loss_limit_usd: Decimal = Field(Decimal(100), gt=0)

    paper_defaults: ClassVar[dict[str, Any]] = {
        "aggressive_step_after_s": 5.0,
        "sell_only_window_s": 60.0,
        "signal_timeout_s": 180.0,  # market s: a leader BUY at +45 s stays followed until the sell-only window
        "book_max_age_ms": 20_000,
    }

    @field_validator("private_key")
    @classmethod
    def _key_for_mode(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr:
        if value is not None:
            return value
        if info.data.get("mode") == "live":
            raise ValueError("live mode needs PB_PRIVATE_KEY (its value is never logged)")
        return SecretStr(PAPER_TEST_PRIVATE_KEY)

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
