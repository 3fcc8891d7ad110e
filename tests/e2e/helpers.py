"""Shared helpers for end-to-end tests: deadlines, seq monitoring, audit log queries."""
from __future__ import annotations

import json
import random
import socket
import threading
import time
from contextlib import contextmanager
from decimal import ROUND_CEILING, Decimal
from typing import Callable, Iterator, TypeVar

from redis import Redis
from redis.exceptions import RedisError

from libs.common import keys
from services.ops.paper import PaperConfig, PaperRun

T = TypeVar("T")


def eventually(fn: Callable[[], T | None], timeout_s: float, what: str, interval_s: float = 0.2) -> T:
    """Poll ``fn`` until it returns something truthy; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what} (last: {last!r})")


@contextmanager
def paper_run(cfg: PaperConfig) -> Iterator[PaperRun]:
    """A started PaperRun (Redis, venue, every service) that is stopped in order on exit."""
    pr = PaperRun(cfg)
    try:
        pr.start()
        yield pr
    finally:
        pr.stop()


class SeqMonitor(threading.Thread):
    """Samples every book's seq while the system runs and records any value that went backwards."""

    def __init__(self, r: Redis, interval_s: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.r, self.interval_s = r, interval_s
        self.last: dict[str, int] = {}
        self.backwards: list[tuple[str, int, int]] = []
        self.samples = 0
        self.errors = 0  # samples that failed because Redis did not answer
        self.stop_flag = threading.Event()

    def run(self) -> None:
        while not self.stop_flag.is_set():
            try:
                self.sample()
            except RedisError:  # Redis killed or restarting under a fault test: sample again later
                self.errors += 1
            self.stop_flag.wait(self.interval_s)

    def sample(self) -> None:
        """Read every book's seq once and record any that went below the highest seen.

        Raises:
            RedisError: Redis did not answer."""
        tokens = list(self.r.smembers(keys.TOKENS) | self.r.smembers(keys.MD_SUBS))
        pipe = self.r.pipeline(transaction=False)
        for t in tokens:
            pipe.hget(keys.md_book(t), "seq")
        for t, seq in zip(tokens, pipe.execute()):
            if seq is None:
                continue
            if int(seq) < self.last.get(t, 0):
                self.backwards.append((t, self.last[t], int(seq)))
            self.last[t] = max(self.last.get(t, 0), int(seq))
            self.samples += 1


def stream_seqs_increase(r: Redis, token: str) -> list[int]:
    """The seqs in a token's md stream, asserting they strictly increase."""
    seqs = [int(f["seq"]) for _, f in r.xrange(keys.md_stream(token))]
    assert all(a < b for a, b in zip(seqs, seqs[1:])), f"seq not increasing in stream of {token}: {seqs[:50]}"
    return seqs


def round_up(price: Decimal, tick: Decimal) -> Decimal:
    """``price`` rounded up to a multiple of ``tick``."""
    return (price / tick).to_integral_value(rounding=ROUND_CEILING) * tick


def free_block(n: int) -> int:
    """A base port N such that N..N+n-1 are all free now (``PaperRun`` gives process i port N+i)."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20_000, 60_000 - n)
        socks = []
        try:
            for port in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no block of {n} free ports")


def live_buy(r: Redis, worker: str) -> tuple[str, str, dict] | None:
    """(token, order id, record) of a LIVE BUY ``worker`` placed under its current fence, if any."""
    for token in r.smembers(keys.TOKENS):
        lease = r.hgetall(keys.lease(token))
        if lease.get("worker") != worker:
            continue
        for oid, raw in r.hgetall(keys.orders(token)).items():
            rec = json.loads(raw) if raw.startswith("{") else {}
            if rec.get("status") == "LIVE" and rec.get("side") == "BUY" and str(rec.get("fence")) == lease["fence"]:
                return token, oid, rec
    return None
