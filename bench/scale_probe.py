"""What bench/scale.py measures on a running PaperRun: memory, Prometheus histograms, REST calls,
book-change-to-order latency and Redis growth. Read-only on the run (never writes to its Redis).
"""
from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis

from libs.common import keys


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MB (``VmRSS`` of /proc/<pid>/status); 0.0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Samples of every metric served on ``127.0.0.1:<port>/metrics``: name -> [(labels, value)]."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, []).append((dict(s.labels), s.value))
    return out


def merge_buckets(scrapes: list[dict], name: str) -> list[tuple[float, float]]:
    """Cumulative (le, count) of histogram ``name`` summed over several processes' scrapes."""
    total: Counter[float] = Counter()
    for sc in scrapes:
        for labels, v in sc.get(f"{name}_bucket", []):
            total[float(labels["le"])] += v
    return sorted(total.items())


def hist_quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """The ``q`` (0..1) quantile of a cumulative histogram, linear within a bucket (Prometheus'
    ``histogram_quantile``); NaN when empty; the last finite bound when it falls in +Inf."""
    if not buckets or buckets[-1][1] == 0:
        return math.nan
    rank, prev_le, prev_c = q * buckets[-1][1], 0.0, 0.0
    for le, c in buckets:
        if c >= rank:
            if math.isinf(le):
                return prev_le
            return prev_le + (le - prev_le) * ((rank - prev_c) / (c - prev_c) if c > prev_c else 0)
        prev_le, prev_c = le, c
    return prev_le


@dataclass
class RedisSampler:
    """``(wall s, used_memory bytes, dbsize)`` sampled during a phase; ``slope`` fits a line."""

    r: Redis
    samples: list[tuple[float, int, int]] = field(default_factory=list)

    def sample(self) -> None:
        """Take one sample (INFO memory and DBSIZE)."""
        self.samples.append((time.monotonic(), int(self.r.info("memory")["used_memory"]), int(self.r.dbsize())))

    def slope(self, idx: int) -> float:
        """Least-squares growth per wall second of field ``idx`` (1 memory, 2 keys); 0 with < 3 samples."""
        pts = [(s[0], s[idx]) for s in self.samples]
        if len(pts) < 3:
            return 0.0
        mx, my = sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts)
        den = sum((p[0] - mx) ** 2 for p in pts)
        return sum((p[0] - mx) * (p[1] - my) for p in pts) / den if den else 0.0


class EventTail:
    """ORDER_POSTED events of ``pb:events`` carrying ``book_seq`` (read incrementally, so the capped
    journal never drops one before it is read): token -> [(order_id, seq)]."""

    def __init__(self, r: Redis) -> None:
        self.r, self.last = r, "0-0"
        self.posted: list[tuple[str, str, int, int]] = []  # (token, order_id, book seq, data_age_ms)

    def poll(self) -> None:
        """Read new journal entries."""
        while True:
            got = self.r.xrange(keys.EVENTS, f"({self.last}", "+", count=5000) if self.last != "0-0" else \
                self.r.xrange(keys.EVENTS, "-", "+", count=5000)
            if not got:
                return
            self.last = got[-1][0]
            for _, f in got:
                if f.get("reason") == "ORDER_POSTED" and f.get("book_seq"):
                    age = f.get("data_age_ms") or "0"
                    self.posted.append((f["token_id"], f["order_id"], int(f["book_seq"]), int(age)))


def change_stamps(r: Redis, tokens: list[str]) -> dict[tuple[str, int], tuple[int, int]]:
    """(token, seq) -> (Redis publish wall ms = the md stream entry id's ms, gateway receipt ``recv_ts_ms``)."""
    pipe = r.pipeline(transaction=False)
    for t in tokens:
        pipe.xrange(keys.md_stream(t))
    out: dict[tuple[str, int], tuple[int, int]] = {}
    for t, entries in zip(tokens, pipe.execute()):
        for eid, f in entries:
            if f.get("seq"):
                out[(t, int(f["seq"]))] = (int(eid.split("-")[0]), int(f.get("recv_ts_ms") or 0))
    return out


def venue_accepts(audit: Path) -> dict[str, int]:
    """order id -> the venue's wall ms of ``order_accepted`` (its audit log)."""
    out: dict[str, int] = {}
    if audit.exists():
        for line in audit.read_bytes().splitlines():
            if b'"order_accepted"' in line:
                rec = orjson.loads(line)
                out.setdefault(rec["order_id"], int(rec["wall_ms"]))
    return out


@dataclass
class Latency:
    """Reactive orders of a window, in ms: ``total`` (Redis publish -> venue accept), ``from_recv``
    (gateway frame receipt -> venue accept), and its stages ``gateway`` (receipt -> Redis publish),
    ``wake`` (publish -> the worker's decision, = receipt + the journaled ``data_age_ms`` - publish)
    and ``order`` (decision -> venue accept: cancel of the old order, risk, signing, post)."""

    total: list[float] = field(default_factory=list)
    from_recv: list[float] = field(default_factory=list)
    gateway: list[float] = field(default_factory=list)
    wake: list[float] = field(default_factory=list)
    order: list[float] = field(default_factory=list)


def latencies(posted: list[tuple[str, str, int, int]], stamps: dict[tuple[str, int], tuple[int, int]],
              accepted: dict[str, int], since_ms: int, dump: Path | None = None) -> Latency:
    """Per reactive order whose book change was published at or after ``since_ms`` (wall): see
    ``Latency``; with ``dump``, one JSON line per order there."""
    out, rows = Latency(), []
    for token, oid, seq, age in posted:
        st, acc = stamps.get((token, seq)), accepted.get(oid)
        if st is None or acc is None or st[0] < since_ms:
            continue
        pub, recv = st
        out.total.append(float(acc - pub))
        if recv:
            decided = recv + age
            out.from_recv.append(float(acc - recv))
            out.gateway.append(float(pub - recv))
            out.wake.append(float(decided - pub))
            out.order.append(float(acc - decided))
        rows.append(orjson.dumps({"token": token, "seq": seq, "order_id": oid, "publish_ms": pub,
                                  "recv_ms": recv, "data_age_ms": age, "accept_ms": acc}))
    if dump is not None:
        dump.write_bytes(b"\n".join(rows) + b"\n")
    return out
