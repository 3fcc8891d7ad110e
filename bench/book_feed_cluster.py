"""Benchmark of the workers' book feed on one Redis against a 3-master Redis Cluster (a benchmark,
not a test): ``python bench/book_feed_cluster.py [--changes N] [--tokens K]``.

A ``BookFeed`` watches ``--tokens`` md streams and waits (``wait``, as a worker's ``idle`` does); a
writer thread appends one change to a random token's stream at random moments. Measured: wall time
from just before the XADD (so it includes the XADD's round trip) to ``wait`` returning that token. On one Redis the feed blocks in
one ``XREAD`` over every stream; on the cluster it keeps one ``XREAD BLOCK`` outstanding per slot and
wakes on the first reply (services/maker_worker/book_feed_cluster.py). Both runs
use the same changes; the ratio is cluster / one Redis, measured in the same run.
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from redis import Redis  # noqa: E402

from benchlib import RedisProc, pct  # noqa: E402
from libs.common import keys  # noqa: E402
from libs.common.redis_client import redis_for_url  # noqa: E402
from services.maker_worker.book_feed import BookFeed  # noqa: E402
from tests.cluster import LocalCluster  # noqa: E402


def run(r: Redis, tokens: list[str], changes: int, seed: int) -> list[float]:
    """Reaction times in ms (XADD sent -> ``wait`` returned the token)."""
    feed = BookFeed(r)
    for t in tokens:
        feed.track(t)
    rng, acked, out = random.Random(seed), {}, []
    done = threading.Event()

    def writer() -> None:
        for _ in range(changes):
            time.sleep(rng.uniform(0.005, 0.105))
            t = rng.choice(tokens)
            acked.setdefault(t, time.perf_counter_ns())
            r.xadd(keys.md_stream(t), {"seq": "1", "event": "bench"})
        done.set()

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    while not done.is_set() or acked:
        for t in feed.wait(200):  # a token changed twice before one wait: measured from its first change
            if t in acked:
                out.append((time.perf_counter_ns() - acked.pop(t)) / 1e6)
    thread.join()
    return out


def main() -> int:
    """Start a private Redis and a private 3-master cluster, run the same changes on both, print."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--changes", type=int, default=400)
    ap.add_argument("--tokens", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    tokens = [str(10**76 + i) for i in range(args.tokens)]
    rp, cl = RedisProc(), LocalCluster(Path(tempfile.mkdtemp(prefix="feed-bench-")))
    try:
        cl.start()
        single = run(Redis.from_url(rp.url, decode_responses=True), tokens, args.changes, args.seed)
        cluster = run(redis_for_url(cl.url), tokens, args.changes, args.seed)
    finally:
        rp.stop()
        cl.stop()
    print(f"{args.tokens} tokens watched, {args.changes} changes")
    for name, xs in (("one Redis (one XREAD BLOCK)", single), ("3-master cluster (per slot)", cluster)):
        print(f"  {name:30s} XADD -> wait returned: p50 {pct(xs, 50):6.2f} ms   p99 {pct(xs, 99):6.2f} ms"
              f"   max {max(xs):6.2f} ms   (n={len(xs)})")
    print(f"  ratio cluster / one Redis: p50 {pct(cluster, 50) / pct(single, 50):.1f}x, "
          f"p99 {pct(cluster, 99) / pct(single, 99):.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
