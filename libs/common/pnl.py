"""The one definition of polyband's P&L. Pure, Decimal only, no Redis; readers of the system's state
(``pnl_redis``) and of the venue's audit log (``pnl_audit``) both compute with it.

Units: prices and payouts are pUSD per share in [0, 1]; sizes are shares; money is pUSD; times are
market ms.

Rules:

- Cost method: AVERAGE COST, identical to the worker (``maker_worker.strategy.on_fill``, ``exits.settle``).
  A BUY of ``s`` at ``p`` moves ``avg_entry`` to ``(position x avg_entry + s x p) / (position + s)``;
  a SELL realizes ``(p - avg_entry) x sold`` with ``sold = min(s, position)`` (a sell beyond the
  position realizes nothing on the excess, as the worker) and leaves ``avg_entry`` unchanged.
- Order: fills are applied in ``(ts_ms, trade_id, order_id)`` order, whatever order they are given in,
  so every reader gets the same answer.
- Open market: ``unrealized = position x (best bid - avg_entry)`` (0 when there is no bid, ``mark`` None).
- Resolved market (``payout`` given): ``settled = position x (payout - avg_entry)``; then ``unrealized``
  is 0 and the position is 0 (settled into pUSD).
- ``fees`` (pUSD we paid as taker) and ``rebates`` (maker-rebate estimate, pUSD) are summed per fill.
- Arithmetic runs exact-ish in a fixed context (28 digits, ROUND_HALF_EVEN), independent of the caller's.
  Each money field is quantised ONCE, at the output, by :func:`micro` (6 decimals = 1 micro-pUSD,
  ROUND_HALF_EVEN). ``net = realized + unrealized + settled - fees + rebates`` of the quantised parts,
  so net and every aggregate are exact sums of what is printed.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from decimal import InvalidOperation, ROUND_HALF_EVEN, Context, Decimal, localcontext
from typing import Iterable, Mapping

__all__ = ["Fill", "TokenPnl", "PnlTotals", "micro", "token_pnl", "aggregate", "equity_curve", "as_json",
           "MICRO", "ZERO"]

ZERO = Decimal(0)
MICRO = Decimal("0.000001")  # 1 micro-pUSD: the unit of pUSD and of conditional tokens
CTX = Context(prec=28, rounding=ROUND_HALF_EVEN)  # the one arithmetic context of every P&L computation
MONEY = ("realized", "unrealized", "settled", "fees", "rebates", "net")


def stored_decimal(raw: object) -> Decimal:
    """A stored decimal string as Decimal (Redis field, audit value); ""/None/garbage/non-finite -> 0."""
    try:
        out = Decimal(str(raw)) if raw not in (None, "") else ZERO
    except InvalidOperation:
        return ZERO
    return out if out.is_finite() else ZERO


def stored_price(raw: object) -> Decimal | None:
    """A stored price or payout in [0, 1]; None when empty or unusable."""
    try:
        out = Decimal(str(raw)) if raw not in (None, "") else None
    except InvalidOperation:
        return None
    return out if out is not None and out.is_finite() and 0 <= out <= 1 else None


def micro(x: Decimal) -> Decimal:
    """``x`` (pUSD) quantised to 6 decimals, ROUND_HALF_EVEN: the only rounding of P&L money."""
    return x.quantize(MICRO, rounding=ROUND_HALF_EVEN, context=CTX)


@dataclass(frozen=True)
class Fill:
    """One fill of our order: ``side`` BUY/SELL, ``price`` pUSD/share in [0, 1], ``size`` shares,
    ``fee`` pUSD paid (taker), ``rebate`` pUSD maker-rebate estimate, ``role`` MAKER/TAKER/""."""

    ts_ms: int
    token_id: str
    side: str
    price: Decimal
    size: Decimal
    fee: Decimal = ZERO
    rebate: Decimal = ZERO
    role: str = ""
    trade_id: str = ""
    order_id: str = ""

    def sort_key(self) -> tuple[int, str, str]:
        """The processing order (module doc)."""
        return self.ts_ms, self.trade_id, self.order_id


@dataclass(frozen=True)
class TokenPnl:
    """P&L of one token. Shares: ``bought``, ``sold``, ``position`` (after settlement: 0). Price:
    ``avg_entry``, ``mark`` (best bid used, None if none/resolved), ``payout`` (None = open). Money
    (pUSD, micro): ``realized``, ``unrealized``, ``settled``, ``fees``, ``rebates``, ``net``."""

    token_id: str
    condition_id: str = ""
    leader: str = ""
    bought: Decimal = ZERO
    sold: Decimal = ZERO
    position: Decimal = ZERO
    avg_entry: Decimal = ZERO
    realized: Decimal = ZERO
    unrealized: Decimal = ZERO
    settled: Decimal = ZERO
    fees: Decimal = ZERO
    rebates: Decimal = ZERO
    payout: Decimal | None = None
    mark: Decimal | None = None
    net: Decimal = ZERO


@dataclass(frozen=True)
class PnlTotals:
    """Sums over ``tokens`` TokenPnl of one group ``key``: shares ``bought``, ``sold``, ``position``;
    money (pUSD, micro) ``realized``, ``unrealized``, ``settled``, ``fees``, ``rebates``, ``net``."""

    key: str = "total"
    tokens: int = 0
    bought: Decimal = ZERO
    sold: Decimal = ZERO
    position: Decimal = ZERO
    realized: Decimal = ZERO
    unrealized: Decimal = ZERO
    settled: Decimal = ZERO
    fees: Decimal = ZERO
    rebates: Decimal = ZERO
    net: Decimal = ZERO


@dataclass
class _Acc:
    """Running average-cost state of one token (exact, CTX); ``add`` one fill at a time, in order."""

    bought: Decimal = ZERO
    sold: Decimal = ZERO
    position: Decimal = ZERO
    avg_entry: Decimal = ZERO
    realized: Decimal = ZERO
    fees: Decimal = ZERO
    rebates: Decimal = ZERO

    def add(self, f: Fill) -> None:
        """Apply one fill (module doc, cost method). Raises ValueError on a side not BUY/SELL."""
        with localcontext(CTX):
            self.fees += f.fee
            self.rebates += f.rebate
            if f.side == "BUY":
                pos = self.position + f.size
                self.avg_entry = (self.position * self.avg_entry + f.size * f.price) / pos if pos > 0 else ZERO
                self.position, self.bought = pos, self.bought + f.size
            elif f.side == "SELL":
                done = min(f.size, self.position)
                self.realized += (f.price - self.avg_entry) * done
                self.position, self.sold = self.position - done, self.sold + f.size
            else:
                raise ValueError(f"fill {f.trade_id}:{f.order_id}: side={f.side!r} is not BUY or SELL")

    def value(self, mark: Decimal | None, payout: Decimal | None) -> tuple[Decimal, Decimal, Decimal]:
        """Exact ``(unrealized, settled, position after)`` at best bid ``mark`` or resolution ``payout``."""
        with localcontext(CTX):
            if payout is not None:
                return ZERO, self.position * (payout - self.avg_entry), ZERO
            if mark is None or self.position == 0:
                return ZERO, ZERO, self.position
            return self.position * (mark - self.avg_entry), ZERO, self.position


def _result(acc: _Acc, mark: Decimal | None, payout: Decimal | None, token_id: str, condition_id: str,
            leader: str) -> TokenPnl:
    unrealized, settled, position = acc.value(mark, payout)
    money = {"realized": micro(acc.realized), "unrealized": micro(unrealized), "settled": micro(settled),
             "fees": micro(acc.fees), "rebates": micro(acc.rebates)}
    net = money["realized"] + money["unrealized"] + money["settled"] - money["fees"] + money["rebates"]
    return TokenPnl(token_id, condition_id, leader, acc.bought, acc.sold, position, acc.avg_entry, **money,
                    payout=payout, mark=None if payout is not None else mark, net=net)


def token_pnl(fills: Iterable[Fill], mark_bid: Decimal | None, payout: Decimal | None, token_id: str = "",
              condition_id: str = "", leader: str = "") -> TokenPnl:
    """P&L of one token from its fills (any order; module doc for every rule). ``mark_bid``: best
    bid (pUSD/share) while open, None if unknown; ``payout``: pUSD/share once resolved, else None.

    Raises:
        ValueError: a fill of another token than ``token_id``, or a side not BUY/SELL.
    """
    ordered = sorted(fills, key=Fill.sort_key)
    token_id = token_id or (ordered[0].token_id if ordered else "")
    acc = _Acc()
    for f in ordered:
        if f.token_id != token_id:
            raise ValueError(f"token_pnl({token_id}): fill {f.trade_id}:{f.order_id} is of token {f.token_id}")
        acc.add(f)
    return _result(acc, mark_bid, payout, token_id, condition_id, leader)


def _group(t: TokenPnl, by: str) -> str:
    if by == "total":
        return "total"
    if by in ("condition_id", "leader"):
        return str(getattr(t, by))
    raise ValueError(f"aggregate: by={by!r} is not total, condition_id or leader")


def aggregate(tokens: Iterable[TokenPnl], by: str = "total") -> dict[str, PnlTotals]:
    """Sums of ``tokens`` grouped ``by`` "total" (one key "total"), "condition_id" or "leader" (key ""
    for tokens without one). Exact: the parts are already micro-quantised.

    Raises:
        ValueError: ``by`` is none of the three.
    """
    out: dict[str, PnlTotals] = {}
    summed = [f.name for f in fields(PnlTotals) if f.name not in ("key", "tokens")]
    for t in tokens:
        key = _group(t, by)
        cur = out.get(key, PnlTotals(key))
        out[key] = replace(cur, tokens=cur.tokens + 1, **{n: getattr(cur, n) + getattr(t, n) for n in summed})
    if by == "total" and not out:
        out["total"] = PnlTotals()
    return out


def as_json(totals: PnlTotals | TokenPnl) -> dict[str, str]:
    """The ``pnl_usd`` object of ``up``/``backtest``: money fields as decimal strings (pUSD, 6 decimals)."""
    return {name: format(micro(getattr(totals, name)), "f") for name in MONEY}


@dataclass
class _Curve:
    """State of :func:`equity_curve` between samples."""

    accs: dict[str, _Acc] = field(default_factory=dict)
    marks: dict[str, Decimal] = field(default_factory=dict)

    def sample(self, t_ms: int, payouts: Mapping[str, tuple[int, Decimal]]) -> tuple[int, Decimal, Decimal, Decimal]:
        booked = unrealized = ZERO
        for token, acc in self.accs.items():
            res = payouts.get(token)
            payout = res[1] if res is not None and res[0] <= t_ms else None
            p = _result(acc, self.marks.get(token), payout, token, "", "")
            booked += p.realized + p.settled - p.fees + p.rebates
            unrealized += p.unrealized
        return t_ms, booked, unrealized, booked + unrealized


def equity_curve(fills: Iterable[Fill], marks: Iterable[tuple[int, str, Decimal]],
                 payouts: Mapping[str, tuple[int, Decimal]], start_ms: int, end_ms: int,
                 step_ms: int) -> list[tuple[int, Decimal, Decimal, Decimal]]:
    """Equity sampled at ``start_ms, start_ms + step_ms, ... <= end_ms`` (market ms): per sample
    ``(ts_ms, realized + settled - fees + rebates, unrealized, equity)`` in pUSD (micro), counting
    the fills and marks with ``ts_ms <= sample``. ``marks``: time-ordered ``(ts_ms, token_id, best
    bid)``; ``payouts``: token -> ``(resolved ts_ms, payout pUSD/share)``.

    Raises:
        ValueError: ``step_ms`` <= 0, or a fill side not BUY/SELL.
    """
    if step_ms <= 0:
        raise ValueError(f"equity_curve: step_ms={step_ms} must be > 0")
    ordered, mark_it = sorted(fills, key=Fill.sort_key), iter(marks)
    state, nxt, i, out = _Curve(), next(mark_it, None), 0, []
    for t in range(start_ms, end_ms + 1, step_ms):
        while i < len(ordered) and ordered[i].ts_ms <= t:
            state.accs.setdefault(ordered[i].token_id, _Acc()).add(ordered[i])
            i += 1
        while nxt is not None and nxt[0] <= t:
            state.marks[nxt[1]] = nxt[2]
            nxt = next(mark_it, None)
        out.append(state.sample(t, payouts))
    return out
