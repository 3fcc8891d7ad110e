"""Benchmark of md_gateway (a benchmark, not a test): ``python bench/md_gateway.py [--orders N] [--rounds R]``.

The tape (``md_tape.py``): 1,000 tokens with the capture's real opening books, then a random walk of
``price_change`` frames in the capture's exact wire format, played by a raw-socket server process.

Runs, all against a private ``redis-server`` this script starts on a free port:

A. in-process, as fast as the gateway takes it: frames are put on the service's inbound queue
   (where the socket threads put them) and ``GatewayService.step()`` runs them through the same
   parse -> book -> publish path as in production (one Lua call per top-of-book change, pipelined);
B. the same tape over a real loopback WebSocket from a server in another process, as fast as it goes,
   on each link in turn (``md_links.py``): the gateway's ``ws.Link`` (websockets' sans-I/O protocol on
   one reader thread per connection), ``WsClientLink`` on ``websocket-client`` (the design's named
   WebSocket library) and ``SyncClientLink`` on websockets' sync client (what the gateway used before:
   a second thread per connection hands each frame over), for ``--rounds`` rounds in alternating
   order; the medians are printed (this machine's speed drifts by 30% within minutes). Receipt->Redis
   here is mostly time queued inside the gateway (a slower reader leaves more of the backlog in the
   kernel, where it is not timed): compare entries/s and CPU, and take latency from run C;
C. a steady 2,000 price-change entries/s over the loopback WebSocket, for latency, on ``ws.Link`` and
   on ``WsClientLink``.

Latency, receipt -> Redis: the socket thread stamps ``perf_counter_ns`` on each frame on receipt;
the publisher stamps the moment Redis acknowledged the pipeline holding the frame's Lua calls. Redis
has executed a script before it answers, so the entry was visible to readers no later than the ack
(the ack adds one loopback read, tens of microseconds). Run C also measures sender -> reader: a
separate reader process doing blocking XREAD on 50 of the streams records when each entry arrived,
compared (wall clock, same machine) with when the server process sent the frame.

Baselines, measured in the same run: redis-py's own pipelined HSET (``Pipeline.hset`` of the same
eight fields, same batch size) on the same Redis for run A; the gateway's ``ws.Link`` for runs B, C
(every other link is printed as a ratio to it).

websocket-client against ws.Link (2026-12-01, three invocations, other processes busy on this 2-core
machine, load 3 to 3.7): flat out 0.63x, 0.68x, 0.58x the entries/s (14.5k to 15.6k against 22.9k to
26.7k) at 1.47x, 1.41x, 1.76x the CPU per entry (52 to 73 us against 37 to 45 us); at a steady 2,000
entries/s receipt->Redis p50 0.91x, 1.03x, 0.90x (342 to 719 us), p99 10.5x, 0.99x, 1.72x, CPU per
entry 1.08x to 1.17x, sender->reader p50 0.94x to 1.35x. So the gateway keeps ``ws.Link``: the
websocket-client link is slower flat out well beyond the noise and no faster at a steady rate, and is
kept here only. (websockets' sync client in the same runs: 0.82x, 0.87x, 0.98x; CPU 1.18x to 1.36x.)
"""
from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from redis import Redis  # noqa: E402

from benchlib import RedisProc, free_port, pct  # noqa: E402
from libs.common import keys  # noqa: E402
from libs.common.clock import SystemClock  # noqa: E402
from libs.common.journal import Journal  # noqa: E402
from md_links import InProcessLink, SyncClientLink, WsClientLink  # noqa: E402
from md_tape import TS0, Market, Tape, serve_tape, synth_tape, tape_token  # noqa: E402
from services.md_gateway.config import GatewaySettings  # noqa: E402
from services.md_gateway.service import STEP_PAUSE_S, SWITCH_INTERVAL_S, GatewayService  # noqa: E402
from services.md_gateway.ws import Link  # noqa: E402

LINKS = {"ws.Link": Link, "websocket-client": WsClientLink, "websockets-sync": SyncClientLink}
CURRENT = "ws.Link"  # the gateway's link: every ratio is against it
STEADY_LINKS = (CURRENT, "websocket-client")  # run C


# ---------------------------------------------------------------- the gateway
def gateway(r: Redis, ws_url: str, tokens: list[str], link_factory: object = None) -> GatewayService:
    """A started GatewayService on a flushed private Redis with ``tokens`` in ``pb:md:subs`` (no REST:
    the verify and snapshot timers are pushed out of the run)."""
    settings = GatewaySettings(_env_file=None, mode="live", live_confirm=True, ws_market_url=ws_url,
                               clob_url="http://127.0.0.1:9", verify_interval_s=1e6, snapshot_grace_s=1e6,
                               ping_interval_s=5)
    clock = SystemClock()
    kwargs = {"link_factory": link_factory} if link_factory else {}
    svc = GatewayService(settings, r, clock, Journal(r, "md_gateway", clock), "md_gateway-bench", **kwargs)
    r.flushdb()
    r.sadd(keys.MD_SUBS, *tokens)
    svc.start()
    return svc


def run_until(svc: GatewayService, done: object, timeout: float) -> None:
    """Step the gateway as ``python -m services.md_gateway`` does (``run_loop``: step, pause) until done."""
    deadline, pause = time.monotonic() + timeout, threading.Event()
    while not done():  # type: ignore[operator]
        svc.step()
        pause.wait(STEP_PAUSE_S)
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")


def run_inprocess(redis_url: str, tape: Tape) -> float:
    """Run A: the dumps, then every frame queued at once as the socket threads would; entries/s from
    the first step to the last acknowledged publish. Checks every final top against the tape."""
    r = Redis.from_url(redis_url, decode_responses=True)
    books, frames, entries = tape.opening, tape.frames, tape.entries
    svc = gateway(r, "ws://in-process", sorted(books), InProcessLink)
    run_until(svc, lambda: svc.shards.state() == "connected" and svc.shards.conns, 10)
    where = {}
    for c in svc.shards.conns.values():
        dump = json.dumps([books[t] for t in sorted(c.subscribed)], separators=(",", ":")).encode() + b"\n"
        svc.inbound.put(("frame", c.conn_id, c.gen, dump, int(time.time() * 1000), 0))
        where.update({t: (c.conn_id, c.gen) for t in c.subscribed})
    run_until(svc, lambda: not svc.core.unbooked and svc.inbound.empty(), 30)
    start_entries = svc.core.counts["entries"]
    now = int(time.time() * 1000)
    for f in frames:
        cid, gen = where[tape_token(f)]
        svc.inbound.put(("frame", cid, gen, f, now, 0))
    t0 = time.perf_counter()
    run_until(svc, lambda: svc.inbound.empty() and not svc.publisher.pending, 600)
    dt = time.perf_counter() - t0
    done = svc.core.counts["entries"] - start_entries
    assert done == entries, (done, entries)
    check_final(r, tape.markets)
    svc.stop()
    return entries / dt


def check_final(r: Redis, markets: list[Market]) -> None:
    """The last published top of every token equals the tape's final top (the run was exact)."""
    pipe = r.pipeline(transaction=False)
    for m in markets:
        pipe.hmget(keys.md_book(m.yes), "best_bid", "best_ask")
        pipe.hmget(keys.md_book(m.no), "best_bid", "best_ask")
    got = pipe.execute()
    want = [list(t) for m in markets for t in m.tops()]
    want = [[b if b != "0" else "", a if a != "1" else ""] for b, a in want]
    bad = sum(1 for g, w in zip(got, want) if g != w)
    if bad:
        raise AssertionError(f"{bad} books differ from the tape's final top")


def baseline_hset(redis_url: str, n: int, batch: int = 256) -> float:
    """redis-py pipelined HSET of the same eight fields over 1,000 keys: commands/s."""
    r = Redis.from_url(redis_url, decode_responses=True)
    fields = {"best_bid": "0.62", "best_ask": "0.66", "bid_size": "65.75", "ask_size": "100",
              "exch_ts_ms": "1790267379253", "recv_ts_ms": "1790267379300", "source": "ws", "status": "ok"}
    t0 = time.perf_counter()
    for b in range(0, n, batch):
        pipe = r.pipeline(transaction=False)
        for i in range(b, min(n, b + batch)):
            pipe.hset(f"bench:{i % 1000}", mapping=fields)
        pipe.execute()
    return n / (time.perf_counter() - t0)



# ---------------------------------------------------------------- loopback WebSocket runs
def read_streams(redis_url: str, tokens: list[str], out_path: str, stop_path: str) -> None:
    """Reader process: blocking XREAD on the tokens' streams; records (exch_ts_ms, wall ns) of every
    price_change entry the moment it is read."""
    r = Redis.from_url(redis_url, decode_responses=True)
    ids = {keys.md_stream(t): "$" for t in tokens}
    seen: list[tuple[int, int]] = []
    while not os.path.exists(stop_path):
        for stream, entries in r.xread(ids, block=200) or []:
            now = time.time_ns()
            for entry_id, f in entries:
                ids[stream] = entry_id
                if f["event"] == "price_change":
                    seen.append((int(f["exch_ts_ms"]), now))
    Path(out_path).write_text(json.dumps(seen))


class Latency:
    """Collects frame receipt -> Redis ack of price_change publishes (the publisher's ``on_flushed``)."""

    def __init__(self) -> None:
        self.us: list[float] = []
        self.first_ns = self.last_ns = 0

    def __call__(self, batch: list, ack_ns: int) -> None:
        for p in batch:
            if p.event == "price_change" and p.recv_ns:
                self.us.append((ack_ns - p.recv_ns) / 1000)
                self.first_ns = self.first_ns or p.recv_ns
                self.last_ns = ack_ns


def start_tape_server(tape: Tape, rate: float, work: Path) -> tuple[mp.process.BaseProcess, int, str]:
    """The tape server in its own process: (process, port, path where it writes its send times)."""
    import pickle

    data, sends = str(work / "tape.pkl"), str(work / "sends.json")
    Path(data).write_bytes(pickle.dumps((tape.opening, tape.frames)))
    port, n_conns = free_port(), -(-len(tape.opening) // 200)
    server = mp.get_context("spawn").Process(target=serve_tape, args=(port, data, rate, n_conns, sends), daemon=True)
    server.start()
    time.sleep(0.5)
    return server, port, sends


def sender_to_reader(sends_path: str, seen_path: str) -> list[float]:
    """Microseconds from the server's send to the reader's XREAD, per price_change entry read."""
    sent = json.loads(Path(sends_path).read_text())
    return [(ns - sent[ts - TS0 - 1]) / 1000 for ts, ns in json.loads(Path(seen_path).read_text())]


def run_websocket(redis_url: str, tape: Tape, rate: float, work: Path, reader: bool,
                  link_factory: object = None) -> dict[str, float]:
    """One loopback WebSocket run (the gateway's own link unless ``link_factory``); returns entries/s,
    gateway CPU per entry, receipt->ack p50/p99/max and, with ``reader``, sender->reader p50/p99."""
    server, port, sends = start_tape_server(tape, rate, work)
    r = Redis.from_url(redis_url, decode_responses=True)
    tokens = sorted(tape.opening)
    svc = gateway(r, f"ws://127.0.0.1:{port}/ws/market", tokens, link_factory)
    lat = svc.publisher.on_flushed = Latency()
    run_until(svc, lambda: not svc.core.unbooked, 30)
    seen, stop = str(work / "seen.json"), work / "stop"
    stop.unlink(missing_ok=True)
    rd = mp.get_context("spawn").Process(target=read_streams, daemon=True,
                                          args=(redis_url, tokens[:: max(1, len(tokens) // 50)], seen, str(stop)))
    if reader:
        rd.start()
    start, cpu0 = svc.core.counts["entries"], time.process_time()
    run_until(svc, lambda: svc.core.counts["entries"] - start >= tape.entries and not svc.publisher.pending, 900)
    cpu = time.process_time() - cpu0  # every thread of this process: the gateway's socket threads and main loop
    out = {"entries_per_s": tape.entries / ((lat.last_ns - lat.first_ns) / 1e9), "cpu_us": cpu / tape.entries * 1e6,
           "p50_us": pct(lat.us, 50), "p99_us": pct(lat.us, 99), "max_us": max(lat.us)}
    check_final(r, tape.markets)
    svc.stop()
    if reader:
        stop.touch()
        rd.join(10)
        e2e = sender_to_reader(sends, seen)
        out.update({"e2e_p50_us": pct(e2e, 50), "e2e_p99_us": pct(e2e, 99), "e2e_n": len(e2e)})
    server.kill()
    return out


def median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    """The run with the median entries/s."""
    return sorted(runs, key=lambda x: x["entries_per_s"])[len(runs) // 2]


def report(a: float, base: float, b: dict[str, dict[str, float]], c: dict[str, dict[str, float]],
           rate: float, rounds: int) -> None:
    """Print run A against its HSET baseline, and runs B and C per link with ratios against ``CURRENT``."""
    print(f"A  in-process, flat out:      {a:9,.0f} entries/s     redis-py pipelined HSET: {base:9,.0f}/s"
          f"  (ratio {a / base:.2f})")
    print(f"B  loopback WebSocket, flat out (median of {rounds} alternating rounds); ratios against {CURRENT}:")
    b0 = b[CURRENT]
    for name, x in b.items():
        print(f"   {name:17s} {x['entries_per_s']:9,.0f} entries/s (x{x['entries_per_s'] / b0['entries_per_s']:.2f})"
              f"  CPU {x['cpu_us']:5.1f} us/entry (x{x['cpu_us'] / b0['cpu_us']:.2f})"
              f"  receipt->Redis p50 {x['p50_us']:8,.0f} us (x{x['p50_us'] / b0['p50_us']:.2f})"
              f"  p99 {x['p99_us']:8,.0f} us (x{x['p99_us'] / b0['p99_us']:.2f})")
    print(f"C  loopback WebSocket, steady {rate:,.0f} entries/s; ratios against {CURRENT}:")
    c0 = c[CURRENT]
    for name, x in c.items():
        print(f"   {name:17s} receipt->Redis p50 {x['p50_us']:6,.0f} us (x{x['p50_us'] / c0['p50_us']:.2f})"
              f"  p99 {x['p99_us']:6,.0f} us (x{x['p99_us'] / c0['p99_us']:.2f})  max {x['max_us']:7,.0f} us"
              f"  CPU {x['cpu_us']:5.1f} us/entry (x{x['cpu_us'] / c0['cpu_us']:.2f})")
        print(f"   {'':17s} sender->reader (XREAD in another process, {x['e2e_n']} entries on 50 streams):"
              f" p50 {x['e2e_p50_us']:6,.0f} us (x{x['e2e_p50_us'] / c0['e2e_p50_us']:.2f})"
              f"  p99 {x['e2e_p99_us']:6,.0f} us (x{x['e2e_p99_us'] / c0['e2e_p99_us']:.2f})")


def main() -> int:
    """Build the tapes, start a private Redis, run A and its baseline, B and C on every link, print the results."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokens", type=int, default=1000)
    ap.add_argument("--orders", type=int, default=30_000, help="price_change frames (2 entries each) of runs A, B")
    ap.add_argument("--steady-rate", type=float, default=2000, help="price-change entries/s of run C")
    ap.add_argument("--steady-seconds", type=float, default=15)
    ap.add_argument("--no-bba", action="store_true", help="leave out the best_bid_ask frames")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3, help="run B rounds (each link once per round)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    sys.setswitchinterval(SWITCH_INTERVAL_S)  # as the gateway's __main__ does
    if not shutil.which("redis-server"):
        print("redis-server is not installed", file=sys.stderr)
        return 2
    bba = not args.no_bba
    tape = synth_tape(args.tokens, args.orders, args.seed, bba)
    steady = synth_tape(args.tokens, int(args.steady_rate * args.steady_seconds / 2), args.seed + 1, bba)
    rp, work = RedisProc(), Path(tempfile.mkdtemp(prefix="md-bench-"))
    print(f"tape: {args.tokens} tokens, {len(tape.frames)} frames, {tape.entries} price-change entries"
          f" ({'with' if bba else 'without'} best_bid_ask frames); private Redis {rp.url}; {os.cpu_count()} CPUs")
    try:
        a = run_inprocess(rp.url, tape)
        base = baseline_hset(rp.url, 100_000)
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in LINKS}
        for i in range(args.rounds):
            order = list(LINKS) if i % 2 == 0 else list(LINKS)[::-1]  # no link always runs first
            for name in order:
                runs[name].append(run_websocket(rp.url, tape, 0, work, reader=False, link_factory=LINKS[name]))
        b = {name: median_run(runs[name]) for name in LINKS}
        c = {name: run_websocket(rp.url, steady, args.steady_rate, work, reader=True, link_factory=LINKS[name])
             for name in STEADY_LINKS}
        report(a, base, b, c, args.steady_rate, args.rounds)
    finally:
        rp.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
