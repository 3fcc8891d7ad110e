"""Pure invariant checks of a fault-injection run (``scripts/nemesis.py``; SPEC S2 invariants).

Every function takes plain data read from the venue's audit log and Redis after the run and returns
a :class:`Check` (``held`` plus the numbers that back the verdict); nothing here does I/O, so the
unit tests (``tests/unit/test_nemesis_checks.py``) feed them clean and violating inputs directly.

Inputs (shapes):
- ``audit``: the venue's audit lines, dicts with ``kind`` (order_accepted | fill | cancel | ...),
  ``order_id``, ``token_id``, ``wall_ms`` (int), ``size`` (accepted: order size; fill: fill size),
  ``size_matched`` (fill: the order's matched total after it).
- ``order_fences``: order id -> the fence its ``pb:orders:{token}`` record was written under.
- ``grants``: (token, fence, wall ms) of every lease grant (journal ``LEASE_ACQUIRED``).
- ``signals``: (stream id, signal_id) of every ``pb:sig:stream`` entry, in stream order.
- ``done``: ``pb:sig:done`` (signal_id -> value: the stream id, or ``claimed:<stream id>``).
"""
from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Iterable, Mapping

INF = float("inf")


@dataclass(frozen=True)
class Check:
    """One invariant's verdict: ``name``, ``held``, ``numbers`` (what was looked at) and up to a few
    ``examples`` of violations (human-readable strings)."""

    name: str
    held: bool
    numbers: dict[str, int] = field(default_factory=dict)
    examples: tuple[str, ...] = ()


def live_spans(audit: Iterable[Mapping[str, object]]) -> dict[str, tuple[str, int, float]]:
    """order id -> (token, accepted wall ms, wall ms it stopped being live: cancelled or fully filled;
    ``inf`` while still open). Orders never accepted are absent.

    Raises:
        KeyError, ValueError: an audit line lacks a field or has a bad number (names the line).
    """
    out: dict[str, tuple[str, int, float]] = {}
    sizes: dict[str, Decimal] = {}
    for a in audit:
        kind, oid = a.get("kind"), str(a.get("order_id", ""))
        try:
            if kind == "order_accepted":
                out[oid] = (str(a["token_id"]), int(a["wall_ms"]), INF)  # type: ignore[call-overload]
                sizes[oid] = Decimal(str(a["size"]))
            elif oid in out and out[oid][2] == INF and (
                    kind == "cancel" or (kind == "fill" and Decimal(str(a["size_matched"])) >= sizes[oid])):
                token, start, _ = out[oid]
                out[oid] = (token, start, int(a["wall_ms"]))  # type: ignore[call-overload]
        except (KeyError, ValueError, ArithmeticError) as exc:
            raise ValueError(f"audit line {dict(a)!r}: {type(exc).__name__}: {exc}") from None
    return out


def check_fences(audit: Iterable[Mapping[str, object]], order_fences: Mapping[str, int],
                 grants: Iterable[tuple[str, int, int]], grace_ms: int) -> Check:
    """No token ever traded under two fences at once: (a) no order of fence f is live on the venue
    while an order of another fence of the same token is; (b) no order under fence f is accepted more
    than ``grace_ms`` (the HTTP timeout: a post in flight when the lease expired) after a higher
    fence of its token was granted. Accepted orders with no fence record count as ``unknown``
    (a violation: an order Redis never knew under any fence)."""
    spans = live_spans(audit)
    by_token: dict[str, list[tuple[int, int, float, str]]] = defaultdict(list)
    unknown = [oid for oid in spans if oid not in order_fences]
    for oid, (token, start, end) in spans.items():
        if oid in order_fences:
            by_token[token].append((int(order_fences[oid]), start, end, oid))
    first_grant: dict[tuple[str, int], int] = {}
    for token, fence, wall in grants:
        first_grant[(token, int(fence))] = min(int(wall), first_grant.get((token, int(fence)), int(wall)))
    overlaps, late = [], []
    for token, rows in by_token.items():
        rows.sort(key=lambda x: x[1])
        for i, (f1, s1, e1, o1) in enumerate(rows):
            for f2, s2, e2, o2 in rows[i + 1:]:
                if s2 >= e1:
                    continue  # sorted by start: o2 began after o1 ended
                if f1 != f2:
                    overlaps.append(f"{token[:10]}: order {o1[:10]} fence {f1} live {s1}-{e1} overlaps "
                                    f"order {o2[:10]} fence {f2} live {s2}-{e2}")
            higher = [w for (t, f), w in first_grant.items() if t == token and f > f1]
            if higher and s1 > min(higher) + grace_ms:
                late.append(f"{token[:10]}: order {o1[:10]} fence {f1} accepted at {s1}, "
                            f"a higher fence was granted at {min(higher)}")
    bad = overlaps + late + [f"order {o[:10]} accepted with no fence record" for o in unknown]
    return Check("one fence at a time per token", not bad,
                 {"orders": len(spans), "tokens": len(by_token), "grants": len(first_grant),
                  "overlaps": len(overlaps), "late_orders": len(late), "unknown_orders": len(unknown)},
                 tuple(bad[:5]))


def stream_id_key(stream_id: str) -> tuple[int, int]:
    """``"<ms>-<seq>"`` as a sortable pair.

    Raises:
        ValueError: not a stream id (names it)."""
    ms, _, seq = stream_id.partition("-")
    try:
        return int(ms), int(seq or 0)
    except ValueError:
        raise ValueError(f"not a stream id: {stream_id!r}") from None


def check_signals(signals: Iterable[tuple[str, str]], done: Mapping[str, str], dead: Iterable[str],
                  pending: int, last_delivered: str | None = None) -> Check:
    """No signal lost or applied twice: every signal of the stream has exactly one final
    ``pb:sig:done`` value, the stream id of its first entry (a re-published id points at that first
    entry; ``claimed:`` means the effect never completed), or is a dead letter; nothing is left
    pending in the consumer group (``pending``: XPENDING count). With ``last_delivered`` (the group's
    last-delivered-id), entries after it -- published after the consumer stopped reading -- are
    counted as ``undelivered``, not as lost."""
    first: dict[str, str] = {}
    entries = undelivered = 0
    bound = stream_id_key(last_delivered) if last_delivered is not None else None
    for stream_id, signal_id in signals:
        if bound is not None and stream_id_key(stream_id) > bound:
            undelivered += 1
            continue
        entries += 1
        first.setdefault(signal_id, stream_id)
    dead_ids = set(dead)
    missing, unfinished, wrong = [], [], []
    for signal_id, stream_id in first.items():
        value = done.get(signal_id)
        if value is None:
            if signal_id not in dead_ids:
                missing.append(signal_id)
        elif value.startswith("claimed:"):
            unfinished.append(signal_id)
        elif value != stream_id:
            wrong.append(f"{signal_id[:40]}: done={value} first entry={stream_id}")
    bad = ([f"signal {s[:40]} has no pb:sig:done entry" for s in missing]
           + [f"signal {s[:40]} only claimed, never finished" for s in unfinished] + wrong)
    if pending:
        bad.append(f"{pending} entries still pending in the consumer group")
    return Check("every signal applied exactly once", not bad,
                 {"entries": entries, "signals": len(first), "done": sum(1 for s in first if s in done),
                  "dead": len(dead_ids & set(first)), "missing": len(missing), "unfinished": len(unfinished),
                  "mismatched": len(wrong), "pending": pending, "undelivered": undelivered}, tuple(bad[:5]))


def check_activations(activations: Iterable[tuple[str, str]], counter: int) -> Check:
    """No double activation: each (token, signal_id) of the journal's ``ACTIVATED`` records appears
    once, and the ``tokens_activated`` counter equals the number of records (``counter``: its delta
    over the run)."""
    seen: dict[tuple[str, str], int] = defaultdict(int)
    total = 0
    for token, signal_id in activations:
        seen[(token, signal_id)] += 1
        total += 1
    twice = [f"{t[:10]} activated {n} times for signal {s[:40]}" for (t, s), n in seen.items() if n > 1]
    bad = twice + ([f"tokens_activated={counter} but {total} ACTIVATED records"] if counter != total else [])
    return Check("no double activation", not bad,
                 {"activated": total, "counter": counter, "doubled": len(twice)}, tuple(bad[:5]))


def check_seq(backwards: Iterable[tuple[str, int, int]], samples: int) -> Check:
    """Book seq never went backwards (``backwards``: (token, highest seen, lower value read) from
    SeqMonitor; ``samples``: how many reads it made)."""
    rows = list(backwards)
    return Check("book seq never backwards", not rows, {"samples": samples, "backwards": len(rows)},
                 tuple(f"{t[:10]}: {hi} -> {lo}" for t, hi, lo in rows[:5]))


def check_orphans(open_orders: Iterable[tuple[str, str]], holders: Mapping[str, str]) -> Check:
    """No order left live on a token nobody holds: ``open_orders`` (order id, token) open on the venue
    at the end; ``holders`` token -> worker holding an unexpired lease ("" or absent: nobody)."""
    rows = list(open_orders)
    orphans = [(o, t) for o, t in rows if not holders.get(t)]
    return Check("no live order on an unheld token", not orphans,
                 {"open_orders": len(rows), "held_tokens": sum(1 for w in holders.values() if w),
                  "orphans": len(orphans)}, tuple(f"order {o[:10]} on {t[:10]}" for o, t in orphans[:5]))


def check_fills(audit: Iterable[Mapping[str, object]], booked: Mapping[str, Decimal]) -> Check:
    """No fill lost or doubled: the venue's fill sizes per order equal our journal's ``FILL`` sizes
    per order (``booked``: order id -> total size booked)."""
    venue: dict[str, Decimal] = defaultdict(Decimal)
    n = 0
    for a in audit:
        if a.get("kind") == "fill":
            venue[str(a["order_id"])] += Decimal(str(a["size"]))
            n += 1
    diff = sorted(o for o in set(venue) | set(booked) if venue.get(o, Decimal(0)) != booked.get(o, Decimal(0)))
    return Check("every venue fill booked once", not diff,
                 {"venue_fills": n, "orders_filled": len(venue), "differing_orders": len(diff)},
                 tuple(f"order {o[:10]}: venue {venue.get(o, 0)} booked {booked.get(o, 0)}" for o in diff[:5]))


# ---- the fault plan (pure: a seeded RNG in, a schedule out) ----
@dataclass(frozen=True)
class Fault:
    """One fault: at ``at_s`` (seconds after the first fault slot) ``kind`` (kill | pause) hits
    ``target`` (a process name, or ``redis``) for ``hold_s`` seconds (pause: stopped that long; kill:
    down that long before the restart)."""

    at_s: float
    target: str
    kind: str
    hold_s: float


def plan_faults(rng: random.Random, n: int, duration_s: float, targets: list[str], max_pause_s: float,
                max_down_s: float = 3.0) -> list[Fault]:
    """``n`` faults at sorted random moments in [0, ``duration_s``), each on a random target (workers
    weigh as much as all other services together, Redis as much as one service), a pause lasting up to
    ``max_pause_s`` or a kill down up to ``max_down_s``.

    Raises:
        ValueError: ``n`` < 0, ``duration_s`` <= 0 or no targets (the message names the value)."""
    if n < 0 or duration_s <= 0 or not targets:
        raise ValueError(f"plan_faults: n={n}, duration_s={duration_s}, targets={targets!r}")
    workers = [t for t in targets if t.startswith("maker_worker")]
    others = [t for t in targets if t not in workers]
    weights = [1.0] * len(others) + [max(1, len(others)) / max(1, len(workers))] * len(workers)
    pool = others + workers
    moments = sorted(rng.uniform(0, duration_s) for _ in range(n))
    out = []
    for at in moments:
        target = rng.choices(pool, weights)[0]
        kind = rng.choice(("kill", "pause"))
        hold = rng.uniform(0.2, max_down_s) if kind == "kill" else rng.uniform(0.5, max_pause_s)
        out.append(Fault(round(at, 2), target, kind, round(hold, 2)))
    return out
