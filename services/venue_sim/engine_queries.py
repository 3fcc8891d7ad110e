"""Read-only queries of the paper venue's engine (REST, the WS book overlay, ``/_sim``), as a mixin
of ``engine.Engine``: every read runs under the engine's lock after its sweep (``Engine._run``), so
expiries and due settlement steps are applied before anything is read."""
from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any, Callable

from services.venue_sim import accounts as acc
from services.venue_sim.orders import Order


class EngineQueries:
    """Queries over the state ``engine.Engine`` keeps (``_open``, ``orders``, ``ledger``, ``wallets``)."""

    _lock: Any
    _open: dict[str, dict[str, Order]]
    orders: dict[str, Order]
    ledger: acc.Ledger
    wallets: Any
    rejected: int
    _ended: set[str]
    _heartbeats: dict[str, int]

    def _run(self, fn: Callable[[Any], Any]) -> Any:  # implemented by Engine
        raise NotImplementedError

    def _open_of(self, address: str, by_maker: bool = False) -> list[Order]:  # implemented by Engine
        raise NotImplementedError

    def resting_levels(self, token_id: str) -> tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]:
        """Our open size by price: (BUY sizes, SELL sizes) of ``token_id``, for the book overlay."""
        buys: dict[Decimal, Decimal] = {}
        sells: dict[Decimal, Decimal] = {}
        with self._lock:
            for o in self._open.get(token_id, {}).values():
                side = buys if o.side == "BUY" else sells
                side[o.price] = side.get(o.price, Decimal(0)) + o.remaining
        return buys, sells

    def _read(self, fn: Callable[[], Any]) -> Any:
        return self._run(lambda events: fn())

    def last_trade(self, token_id: str) -> tuple[Decimal, str] | None:
        """(price, taker side) of the last fill of our orders in ``token_id``, or None."""
        return self._read(lambda: self.ledger.last_trade.get(token_id))

    def balance(self, address: str, token_id: str = "", signature_type: int = 0) -> dict[str, Any]:
        """``GET /balance-allowance`` answer for an API key of ``address``: the balance of its wallet
        for ``signature_type`` (wallets.WalletBook.wallet_for; accounts.Ledger.balance)."""
        wallet = self.wallets.wallet_for(address, signature_type)
        return self._read(lambda: self.ledger.balance(wallet, token_id))

    def trades_of(self, address: str, filters: dict[str, str]) -> list[dict[str, Any]]:
        """``address``'s trades, newest first (accounts.Ledger.trades_of)."""
        return self._read(lambda: self.ledger.trades_of(address, filters))

    def holdings(self, address: str) -> list[tuple[str, acc.Holding]]:
        """Copies of ``address``'s holdings (accounts.Ledger.holdings)."""
        return self._read(lambda: self.ledger.holdings(address))

    def orders_of(self, address: str | None = None, live_only: bool = False) -> list[Order]:
        """Copies of the orders of ``address`` (all addresses when None), oldest first."""
        def pick() -> list[Order]:
            key = address.lower() if address else None
            return [replace(o, associate_trades=list(o.associate_trades))
                    for o in sorted(self.orders.values(), key=lambda o: o.seq)
                    if (key is None or o.api_address.lower() == key) and (not live_only or o.status == "LIVE")]
        return self._read(pick)

    def accounts_view(self) -> list[dict[str, Any]]:
        """Balances and reservations of every account (for ``GET /_sim/state``)."""
        return self._read(lambda: [acc.account_view(a, self._open_of(a.address, by_maker=True))
                                   for a in self.ledger.accounts.values()])

    def counts(self) -> dict[str, Any]:
        """Order counts by status, rejections, fills, ended markets and heartbeats (``/_sim/state``)."""
        def count() -> dict[str, Any]:
            statuses = [o.status for o in self.orders.values()]
            return {"orders": len(statuses), "live": statuses.count("LIVE"), "matched": statuses.count("MATCHED"),
                    "canceled": sum(s.startswith("CANCELED") for s in statuses), "rejected": self.rejected,
                    "trades": len(self.ledger.trades), "ended_markets": sorted(self._ended),
                    "heartbeats": dict(self._heartbeats)}
        return self._read(count)

    # ---- redemption (services/venue_sim/redeem.py) ----
    def redeem(self, address: str, condition_id: str) -> Any:
        """Redeem ``address``'s shares of resolved ``condition_id``: pays shares x payout (1 winner,
        0 losers) pUSD and removes the shares, under the lock (redeem.py ``redeem_locked``); audited
        ``redeem``/``redeem_rejected``. Returns redeem.RedeemOutcome; raises redeem.RedeemRefused."""
        from services.venue_sim import redeem as rd  # noqa: PLC0415 - local: the import block is the engine owner's
        return self._run(lambda events: rd.redeem_locked(self, address, condition_id))
