"""Benchmark of maker_worker's reaction to a book change (a benchmark, not a test):
``python bench/worker_push.py [--moves N] [--tokens K]``.

A worker holds ``--tokens`` tokens, each with its entry BUY resting one tick above a 0.40 bid (ask
0.45). A mover publishes book changes through md_gateway's own Publisher (book_publish.lua: seq,
hash and stream entry, as in production), one token at a time at random moments, alternating the
bid between 0.40 and 0.42, so every change makes the strategy re-price the entry (cancel, then a
post-only BUY at the new bid + tick). Measured: wall time from the publish being acknowledged by
Redis to the re-priced order reaching the venue (``post_signed``).

Two runs in the same process, same Redis, same moves:

* push: the worker as ``python -m services.maker_worker`` runs it (``run_loop`` with ``idle``):
  between steps it blocks on the held tokens' md streams and re-quotes a changed token at once;
* poll (baseline): the same worker with ``idle`` off, so it sees a change only at its next step
  (every ``step_interval_s`` = 0.25 s), which is how workers read books before.

The venue is the in-memory FakeVenue of the tests (no HTTP), so what is measured is the worker's
own path from Redis to its order decision.
"""
from __future__ import annotations

import argparse
import logging
import random
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from redis import Redis  # noqa: E402

from libs.common import keys, runtime  # noqa: E402
from libs.common.clock import SystemClock  # noqa: E402
from libs.common.journal import Journal  # noqa: E402
from libs.common.leases import Leases  # noqa: E402
from benchlib import RedisProc, pct  # noqa: E402
from services.maker_worker.config import WorkerSettings  # noqa: E402
from services.maker_worker.service import Worker  # noqa: E402
from tests.worker_fakes import FakeVenue, gateway_publish  # noqa: E402

STEP_S = 0.25


class TimedVenue(FakeVenue):
    """FakeVenue that stamps when each BUY at a given (token, price) reached it."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived: dict[tuple[str, Decimal], int] = {}

    def post_signed(self, order, post_only):  # type: ignore[no-untyped-def]
        self.arrived.setdefault((order.token_id, order.price), time.perf_counter_ns())
        return super().post_signed(order, post_only)


def publish(r: Redis, venue: FakeVenue, token: str, bid: str) -> int:
    """Move ``token``'s book to ``bid``/0.45 as md_gateway would; returns perf ns of Redis's ack."""
    gateway_publish(r, venue, token, bid, "0.45", int(time.time() * 1000))
    return time.perf_counter_ns()


def setup(r: Redis, tokens: list[str]) -> tuple[Worker, TimedVenue]:
    """A flushed Redis, the gateway hash, the tokens offered, and a worker with its entries resting."""
    r.flushdb()
    clock, venue = SystemClock(), TimedVenue()
    settings = WorkerSettings(_env_file=None, mode="paper", step_interval_s=STEP_S, max_leases=len(tokens),
                              sell_only_window_s=60.0, signal_timeout_s=3600.0,
                              book_max_age_ms=3_600_000)  # no gateway verify round here to stamp quiet books
    now = clock.now_ms()
    for t in tokens:
        r.hset(keys.tok(t), mapping={"state": "active", "reason": "ACTIVATED", "end_ms": now + 3_600_000,
                                     "tick_size": "0.01", "min_order_size": "5", "neg_risk": "false",
                                     "leader_price": "0.45", "signal_ts_ms": now, "position": "0"})
        Leases(r).offer(t, "maker", clock.wall_ms())
        r.zadd(keys.SCHED_OFFERS, {t: clock.wall_ms()})
        publish(r, venue, t, "0.40")
    worker = Worker(r, venue, settings, clock, Journal(r, "maker_worker", clock), "bench-worker")
    return worker, venue


def gateway_alive(r: Redis, stop: threading.Event) -> None:
    """Keep ``pb:md:gateway`` connected and fresh, as md_gateway does (else books count as stale)."""
    while not stop.is_set():
        r.hset(keys.MD_GATEWAY, mapping={"state": "connected", "updated_ms": int(time.time() * 1000)})
        stop.wait(0.5)


def run(redis_url: str, tokens: list[str], moves: int, push: bool, seed: int) -> list[float]:
    """One run; returns the reaction times in ms (publish ack -> re-priced order at the venue).

    Raises:
        RuntimeError: the worker read a book from REST (the run would not measure the Redis path).
    """
    r = Redis.from_url(redis_url, decode_responses=True)
    worker, venue = setup(r, tokens)
    stop = threading.Event()
    threading.Thread(target=gateway_alive, args=(r, stop), daemon=True).start()
    idle = (lambda s: worker.idle(s, stop)) if push else None
    loop = threading.Thread(target=runtime.run_loop, args=(worker.step, stop, SystemClock(), STEP_S),
                            kwargs={"idle": idle}, daemon=True)
    loop.start()
    deadline = time.monotonic() + 10
    while not all((t, Decimal("0.41")) in venue.arrived for t in tokens):
        if time.monotonic() > deadline:
            raise RuntimeError("the worker did not post its entries")
        time.sleep(0.01)
    rng, bids, out = random.Random(seed), dict.fromkeys(tokens, "0.40"), []
    for _ in range(moves):
        time.sleep(rng.uniform(0.02, 0.52))  # over two steps: the phase of a move against the steps is ~uniform
        t = rng.choice(tokens)
        bids[t] = "0.42" if bids[t] == "0.40" else "0.40"
        want = (t, Decimal(bids[t]) + Decimal("0.01"))
        venue.arrived.pop(want, None)
        acked = publish(r, venue, t, bids[t])
        end = time.monotonic() + 2
        while want not in venue.arrived and time.monotonic() < end:
            time.sleep(0.0002)
        if want not in venue.arrived:
            raise RuntimeError(f"no re-quote of {t} to {want[1]} within 2 s")
        out.append((venue.arrived[want] - acked) / 1e6)
    stop.set()
    loop.join(5)
    if r.hget(keys.COUNTS, "BOOK_REST_FALLBACK"):
        raise RuntimeError("the worker fell back to REST: not a measurement of the Redis path")
    return out


def main() -> int:
    """Start a private Redis, run push and poll on the same moves, print both and their ratio."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--moves", type=int, default=150)
    ap.add_argument("--tokens", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    tokens = [str(10**76 + i) for i in range(args.tokens)]
    rp = RedisProc()
    try:
        push = run(rp.url, tokens, args.moves, True, args.seed)
        poll = run(rp.url, tokens, args.moves, False, args.seed)
    finally:
        rp.stop()
    print(f"{args.tokens} tokens held, {args.moves} book changes, step interval {STEP_S} s; private Redis {rp.url}")
    for name, xs in (("push (XREAD on md streams)", push), ("poll (baseline, next step)", poll)):
        print(f"  {name:28s} publish -> re-priced order: p50 {pct(xs, 50):7.2f} ms   p99 {pct(xs, 99):7.2f} ms"
              f"   max {max(xs):7.2f} ms")
    print(f"  ratio poll/push: p50 {pct(poll, 50) / pct(push, 50):.0f}x, p99 {pct(poll, 99) / pct(push, 99):.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
