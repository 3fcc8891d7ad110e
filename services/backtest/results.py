"""What a back-test leaves behind: counters, tokens by final state and exit reason, P&L per token,
per market, per leader and in total (``libs.common.pnl``, the one definition), the audit-log check,
and the run folder: ``summary.json``, ``fills.csv``, ``pnl_tokens.csv``, ``equity.csv``.

Everything here is read from the run's Redis and the venue's audit log after the run; nothing
depends on wall time, so two runs of the same inputs write byte-identical files.
"""
from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from redis import Redis

from libs.common import keys, pnl
from libs.common.pnl_audit import audit_pnl
from libs.common.pnl_redis import ledger_fills, system_pnl
from services.backtest.venue_side import tape_defaults
from services.ops.paper import SUMMARY_COUNTERS

if TYPE_CHECKING:
    from services.backtest.harness import Harness
    from services.backtest.run import BacktestConfig
    from services.backtest.venue_side import SimVenue


TOKEN_COLUMNS = ("token_id", "condition_id", "leader", "bought", "sold", "position", "avg_entry", "realized",
                 "unrealized", "settled", "fees", "rebates", "payout", "mark", "net")


MARKET_COLUMNS = ("condition_id", "tokens", "bought", "sold", "realized", "unrealized", "settled", "fees",
                  "rebates", "net")


def _counters(r: Redis) -> dict[str, Any]:
    raw = {k: int(v) for k, v in r.hgetall(keys.SUMMARY).items()}
    out: dict[str, Any] = {k: raw.get(k, 0) for k in SUMMARY_COUNTERS}
    out["errors"] = {k: int(v) for k, v in sorted(r.hgetall(keys.ERRORS).items()) if int(v)}
    return out


def token_states(r: Redis) -> tuple[dict[str, int], dict[str, int], int]:
    """(tokens by final state, exits by reason among tokens that traded, tokens settled at resolution)."""
    tokens = sorted(r.smembers(keys.TOKENS))
    pipe = r.pipeline(transaction=False)
    for t in tokens:
        pipe.hmget(keys.tok(t), "state", "reason", "position", "settled_pnl", "payout")
    states: Counter[str] = Counter()
    exits: Counter[str] = Counter()
    settled = 0
    for state, reason, _pos, settled_pnl, payout in pipe.execute():
        states[state or "unknown"] += 1
        if state in ("closed", "cooldown", "exiting", "resolved", "failed") and reason:
            exits[reason] += 1
        settled += bool(payout) and settled_pnl not in (None, "")
    return dict(sorted(states.items())), dict(sorted(exits.items())), settled


def collect(r: Redis, venue: "SimVenue", h: "Harness", cfg: "BacktestConfig") -> dict[str, Any]:
    """Everything the run folder and the console show (module doc)."""
    tokens, totals = system_pnl(r)
    audit_tokens, audit_totals = audit_pnl(cfg.out / "venue_audit.jsonl")
    states, exits, settled = token_states(r)
    summary: dict[str, Any] = {
        "tape": cfg.tape.name, "leaders": [p.name for p in cfg.leaders], "workers": cfg.workers, "seed": cfg.seed,
        "settings": dict(sorted({**tape_defaults(cfg.tape), **cfg.overrides}.items())),
        "tape_span_ms": [venue.first_ms, venue.end_ms], "ticks": h.stats.ticks, "venue_events": h.stats.venue_events,
        **_counters(r), "tokens": states, "exits": exits, "settled_at_resolution": settled,
        "pnl_usd": pnl.as_json(totals),
        "audit_check": _check(totals, audit_totals),
        "pnl_by_leader": {k: pnl.as_json(v) for k, v in pnl.aggregate(tokens, by="leader").items()},
    }
    rows = _fills(r)
    return {"summary": summary, "tokens": tokens, "fills": rows, "pnl_fills": _pnl_fills(r)}


def _pnl_fills(r: Redis) -> list[pnl.Fill]:
    """Every fill of the system's ledgers as ``pnl.Fill`` (the equity curve's input)."""
    out: list[pnl.Fill] = []
    for key in sorted(r.scan_iter(match=keys.fills_pattern(), count=1000)):
        out += ledger_fills(keys.token_of_fills(key), r.hgetall(key))
    return out


def _check(system: Any, audit: Any) -> dict[str, Any]:
    """The audit-log recomputation against the system's own total, field by field, to the micro-dollar."""
    a, b = pnl.as_json(system), pnl.as_json(audit)
    return {"match": a == b, "system": a, "audit": b}


def _fills(r: Redis) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for key in sorted(r.scan_iter(match=keys.fills_pattern(), count=1000)):
        token = keys.token_of_fills(key)
        for rec_key, text in sorted(r.hgetall(key).items()):
            rec = json.loads(text)
            rows.append({"token_id": token, "key": rec_key, **{k: str(v) for k, v in rec.items()}})
    rows.sort(key=lambda x: (x.get("ts_ms", ""), x["token_id"], x["key"]))
    return rows


def write_run(out: Path, result: dict[str, Any]) -> None:
    """``summary.json``, ``fills.csv``, ``pnl_tokens.csv``, ``pnl_markets.csv`` in ``out``."""
    (out / "summary.json").write_text(json.dumps(result["summary"], indent=1, sort_keys=True) + "\n")
    fills = result["fills"]
    cols = sorted({k for row in fills for k in row})
    with open(out / "fills.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        w.writerows(fills)
    with open(out / "pnl_tokens.csv", "w", newline="") as fh:
        w2 = csv.writer(fh)
        w2.writerow(TOKEN_COLUMNS)
        for t in sorted(result["tokens"], key=lambda x: x.token_id):
            w2.writerow(["" if getattr(t, c) is None else str(getattr(t, c)) for c in TOKEN_COLUMNS])
    with open(out / "pnl_markets.csv", "w", newline="") as fh:
        w3 = csv.writer(fh)
        w3.writerow(MARKET_COLUMNS)
        for key, tot in sorted(pnl.aggregate(result["tokens"], by="condition_id").items()):
            w3.writerow([key, tot.tokens, *(str(getattr(tot, c)) for c in MARKET_COLUMNS[2:])])
