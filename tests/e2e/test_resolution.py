"""Issue 7 item 5, end to end: a market resolves while polyband holds its token.

Redis, the paper venue and every service run as processes on the default real tape
(``btc5m-2026-02-18-am``: 8 five-minute markets; the venue resolves each at its end by its documented
rule and sends ``market_resolved``). The leader is the demo synthetic leader with its SELL legs
removed (still labelled synthetic), and the band's exits are switched off (no sell-only window, take
profit and stop loss at 99 %, no signal timeout or inactivity clean-up), so a filled entry is still
held when its market ends. The first token held while its market is open has that market resolved
EARLY, before its end time, with our token as the winner (``POST /_sim/resolve``: the venue's replay
journals it and sends ``market_resolved`` as at a market end), so one redeem pays real collateral.
Then, for every token held at resolution:

* every one of our orders on it is final (cancelled or filled) on the venue and in ``pb:orders``;
* its realized P&L in ``pb:tok`` equals, to the micro-dollar, sell proceeds + shares x payout - buy
  cost, from the venue's audit log (fills) and the venue's own resolution (``MARKET_RESOLVED``);
* it was redeemed: ``REDEEMED`` with payout_usd = shares x payout, the venue's ledger shows no shares
  of it left (``GET /_sim/state``);
* a new leader BUY of it is refused (``REENTRY_REFUSED_RESOLVED``) and no order is ever posted on it
  again.
"""
from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from libs.common import keys
from libs.common.tapes import load_markets
from services.ops.paper import DEMO_TAPE, PaperConfig, PaperRun
from tests.e2e.helpers import eventually, paper_run

REPO = Path(__file__).resolve().parents[2]
SPEED = 40.0
MICRO = Decimal("0.000001")
SETTLED_STATES = ("resolved", "failed")
START_USDC = Decimal(1000)  # PB_START_USDC: the paper run's one shared account


def D(x: object) -> Decimal:
    return Decimal(str(x))


def both_sides_leader(src: Path, dst: Path) -> Path:
    """The demo synthetic leader without its SELL legs, each BUY mirrored on the market's other outcome
    at 1 - price (a derived SYNTHETIC file, labelled so): we hold winners and losers at resolution."""
    markets = {t: m for m in load_markets(DEMO_TAPE / "markets.json") for t in m.token_ids}
    lines = src.read_text().splitlines()
    meta = json.loads(lines[0])["_meta"]
    meta["rule"] = f"{meta['rule']} (test_resolution: SELL legs removed, each BUY mirrored on the other outcome)"
    rows = []
    for row in (json.loads(ln) for ln in lines[1:]):
        if row["side"] != "BUY":
            continue
        m = markets[row["asset"]]
        i = 1 - m.token_ids.index(row["asset"])
        twin = {**row, "asset": m.token_ids[i], "outcome": m.outcomes[i], "outcomeIndex": i,
                "price": float(1 - D(row["price"])), "transactionHash": row["transactionHash"][:-4] + "beef"}
        rows += [row, twin]
    dst.write_text("\n".join(json.dumps(x) for x in [{"_meta": meta}] + rows) + "\n")
    return dst


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PaperRun]:
    tmp = tmp_path_factory.mktemp("resolution")
    leader = both_sides_leader(REPO / "data/leaders/demo-synthetic.jsonl", tmp / "leader-both-sides.jsonl")
    env = {"PB_SELL_ONLY_WINDOW_S": "0", "PB_TAKE_PROFIT": "0.99", "PB_STOP_LOSS": "0.99",
           "PB_SIGNAL_TIMEOUT_S": "1000000", "PB_INACTIVE_WARN_S": "1000000", "PB_INACTIVE_CLEANUP_S": "2000000"}
    cfg = PaperConfig(tape=DEMO_TAPE, leaders=(leader,), speed=SPEED, workers=1, log_dir=tmp, extra_env=env)
    with paper_run(cfg) as pr:
        yield pr


def fills_by_token(audit: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for a in audit:
        if a["kind"] == "fill":
            out.setdefault(str(a["token_id"]), []).append(a)
    return out


def held_at_end(fills: list[dict]) -> Decimal:
    return sum((D(f["size"]) * (1 if f["side"] == "BUY" else -1) for f in fills), Decimal(0))


def winners(r: object) -> dict[str, str]:
    """condition id -> winning token, from the venue's own MARKET_RESOLVED journal entries."""
    return {f["market"]: f.get("token_id", "") for _, f in r.xrange(keys.EVENTS)  # type: ignore[attr-defined]
            if f["reason"] == "MARKET_RESOLVED" and f.get("svc") == "venue_sim"}


def resolve_one_early_for_a_held_token(run: PaperRun, markets: dict) -> str:
    """The first token we hold while its market is still open: resolve that market NOW (before its
    end time, as Polymarket may) with our token as the winner, through the venue's control. Our
    entries fill when the price falls through our bid, so on this tape every position the replay
    resolves by its own rule loses; this one pays 1 per share, so the redeem pays real collateral."""
    def held_open() -> str | None:
        now = venue_state(run)["now_ms"]
        return next((t for t, f in fills_by_token(run.audit()).items()
                     if held_at_end(f) > 0 and markets[t].end_ms > now + 30_000), None)

    token = eventually(held_open, 120, "a token held while its market is open")
    resp = httpx.post(f"{run.clob_url}/_sim/resolve", json={"condition_id": markets[token].condition_id,
                                                            "winner": token}, timeout=5)
    assert resp.status_code == 202, resp.text
    return token


def venue_state(run: PaperRun) -> dict:
    return httpx.get(f"{run.clob_url}/_sim/state", timeout=5).json()


@pytest.mark.timeout(300)
def test_a_market_resolving_while_we_hold_it_is_settled_redeemed_and_never_refilled(run: PaperRun) -> None:
    r = run.r
    assert r is not None
    markets = {t: m for m in load_markets(DEMO_TAPE / "markets.json") for t in m.token_ids}
    last_end = max(m.end_ms for m in markets.values())
    early = resolve_one_early_for_a_held_token(run, markets)
    eventually(lambda: venue_state(run)["now_ms"] > last_end + 5_000, 150, "every market of the tape ended")

    def all_settled() -> dict[str, list[dict]] | None:
        held = {t: f for t, f in fills_by_token(run.audit()).items() if held_at_end(f) > 0}
        states = {t: r.hget(keys.tok(t), "state") for t in held}
        return held if held and all(s in SETTLED_STATES for s in states.values()) else None


    held = eventually(all_settled, 90, "every token held at a market's end settled")
    won = winners(r)
    audit = run.audit()
    report = {}
    for token, fills in held.items():
        tok = r.hgetall(keys.tok(token))
        cond = markets[token].condition_id
        assert cond in won, f"the venue journaled no MARKET_RESOLVED for {cond}"
        payout = Decimal(1) if won[cond] == token else Decimal(0)
        shares = held_at_end(fills)
        cost = sum((D(f["price"]) * D(f["size"]) for f in fills if f["side"] == "BUY"), Decimal(0))
        proceeds = sum((D(f["price"]) * D(f["size"]) for f in fills if f["side"] == "SELL"), Decimal(0))
        expected = proceeds + shares * payout - cost
        report[token[:12]] = {"shares": str(shares), "payout": str(payout), "cost": str(cost),
                              "realized_pnl": tok.get("realized_pnl"), "state": tok["state"], "reason": tok["reason"]}
        # orders: every order we placed on it is final on the venue and in our records
        accepted = {a["order_id"] for a in audit if a["kind"] == "order_accepted" and a["token_id"] == token}
        final = {a["order_id"] for a in audit if a["kind"] in ("cancel", "fill") and a["token_id"] == token}
        assert accepted <= final, f"orders left open on {token}: {accepted - final}"
        late = [a for a in audit if a["kind"] == "order_accepted" and a["token_id"] == token
                and int(a["ts_ms"]) >= markets[token].end_ms]
        assert late == [], f"orders posted on {token} after its market ended: {late}"
        assert not [o for o in venue_state(run)["open_orders"] if o.get("asset_id") == token]
        records = [json.loads(v) for v in r.hvals(keys.orders(token))]
        assert all(rec["status"] not in ("LIVE", "PENDING") for rec in records), records
        # settlement P&L, exact to the micro-dollar
        assert D(tok["position"]) == 0 and tok["payout"] == str(payout)
        assert D(tok["realized_pnl"]).quantize(MICRO) == expected.quantize(MICRO), (token, tok, expected)
        settled = [f for _, f in r.xrange(keys.EVENTS) if f["reason"] == "SETTLED" and f["token_id"] == token]
        assert len(settled) == 1 and D(settled[0]["shares"]) == shares
    print("resolution e2e:", json.dumps(report, indent=1))

    # never refilled: a new leader BUY of a resolved token is refused, and nothing is posted on it again
    token = next(iter(held))
    posted_before = sum(1 for a in run.audit() if a["kind"] == "order_accepted" and a["token_id"] == token)
    now_ms = venue_state(run)["now_ms"]
    r.xadd(keys.SIG_STREAM, {"signal_id": f"e2e-rebuy-{token[:8]}", "account": "0x" + "0" * 35 + "de111",
                             "side": "BUY", "token_id": token, "condition_id": markets[token].condition_id,
                             "size": "10", "price": "0.5", "ts_ms": str(now_ms), "tx_hash": "0x" + "cd" * 32,
                             "title": "t", "slug": "s", "outcome": "Up"})
    assert r.hget(keys.tok(token), "state") == "resolved"
    eventually(lambda: [f for _, f in r.xrange(keys.EVENTS) if f["reason"] == "REENTRY_REFUSED_RESOLVED"
                        and f["token_id"] == token], 20, "the new BUY refused")
    assert sum(1 for a in run.audit() if a["kind"] == "order_accepted" and a["token_id"] == token) == posted_before
    assert not r.exists(keys.lease(token)) or r.hget(keys.lease(token), "worker") == ""

    # the market resolved early for the token we held: it won, and was settled at 1 per share
    assert won[markets[early].condition_id] == early and report[early[:12]]["payout"] == "1"
    assert D(r.hget(keys.tok(early), "realized_pnl")) > 0

    # redeemed: the venue paid the collateral and the shares are gone from its ledger
    accounts = venue_state(run)["accounts"]
    paid: dict[str, Decimal] = {}  # condition -> pUSD the venue paid (one redeem pays every outcome held)
    owed: dict[str, Decimal] = {}  # condition -> shares x payout we settled
    for token, fills in held.items():
        tok = r.hgetall(keys.tok(token))
        assert (tok["state"], tok["reason"]) == ("resolved", "REDEEMED"), (token, tok, [
            f for _, f in r.xrange(keys.EVENTS) if f["reason"] == "REDEEM_FAILED" and f["token_id"] == token][-1:])
        ev = [f for _, f in r.xrange(keys.EVENTS) if f["reason"] == "REDEEMED" and f["token_id"] == token]
        assert len(ev) == 1
        cond = markets[token].condition_id
        paid[cond] = paid.get(cond, Decimal(0)) + D(ev[0]["payout_usd"] or 0)
        owed[cond] = owed.get(cond, Decimal(0)) + D(ev[0]["shares"]) * D(ev[0]["payout"])
        for acct in accounts:
            assert D(acct["tokens"].get(token, {}).get("shares", "0")) == 0, acct
    assert paid == owed, (paid, owed)
    assert paid[markets[early].condition_id] == held_at_end(held[early]) > 0  # 1 pUSD per winning share
    audit = run.audit()
    redeems = {str(a["market"]): a for a in audit if a["kind"] == "redeem"}  # the venue's own ledger lines
    for token in held:
        cond = markets[token].condition_id
        line = redeems[cond]
        assert D(line["shares"][token]) == held_at_end(held[token]) and line["winner"] == won[cond]
        assert D(line["payout"]) == paid[cond]
    fills = [a for a in audit if a["kind"] == "fill"]
    flow = sum((D(f["price"]) * D(f["size"]) * (-1 if f["side"] == "BUY" else 1) for f in fills), Decimal(0))
    assert [D(a["collateral"]) for a in accounts] == [START_USDC + flow + sum(paid.values())], accounts
    print("redeemed: paid", {c[:10]: str(v) for c, v in paid.items()}, "collateral", accounts[0]["collateral"])
    assert int(r.hget(keys.SUMMARY, "redeemed") or 0) == len(paid)
