"""Prometheus metrics end to end (``check_metrics``, called by tests/e2e/test_up_console.py on a
``PB_METRICS_PORT=N polyband up`` run, where each process gets its own port): every process's
``/metrics`` is scraped and parsed.

Each service exposes its own families (``libs.common.metrics.FAMILIES``), the counters that must move
in a run with fills did move, and every metric the Grafana dashboard queries is exposed by some
process of the run: the dashboard's queries name real metrics."""
from __future__ import annotations

import json

import httpx
from prometheus_client.parser import text_string_to_metric_families

from libs.common import metrics
from tests.e2e.helpers import eventually
from tests.unit.test_dashboard import DASHBOARD, SYNTHETIC, exprs, metric_names

Scrape = dict[str, dict[str, object]]  # family name -> parsed family
# (process, family, sample, labels) that a run with fills must move above 0
MUST_MOVE: list[tuple[str, str, str, dict[str, str]]] = [
    ("venue_sim", "pb_venue_fills", "pb_venue_fills_total", {}),
    ("venue_sim", "pb_venue_orders", "pb_venue_orders_total", {"outcome": "accepted"}),
    ("maker_worker-1", "pb_worker_orders", "pb_worker_orders_total", {"outcome": "posted"}),
    ("maker_worker-1", "pb_worker_orders", "pb_worker_orders_total", {"outcome": "filled"}),
    ("maker_worker-1", "pb_worker_data_age_seconds", "pb_worker_data_age_seconds_count", {}),
    ("maker_worker-1", "pb_events", "pb_events_total", {"service": "maker_worker", "reason": "FILL"}),
    ("md_gateway", "pb_gateway_frames", "pb_gateway_frames_total", {"kind": "data"}),
    ("md_gateway", "pb_gateway_publish_latency_seconds", "pb_gateway_publish_latency_seconds_count", {}),
    ("signal_ingest", "pb_ingest_signals", "pb_ingest_signals_total", {}),
    ("signal_ingest", "pb_ingest_lag_seconds", "pb_ingest_lag_seconds_count", {}),
    ("scheduler", "pb_scheduler_tokens", "pb_scheduler_tokens", {}),
    ("user_feed", "pb_user_feed_frames", "pb_user_feed_frames_total", {}),
]


def scrape(port: int) -> Scrape:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(fams: Scrape, family: str, sample: str, **labels: str) -> float:
    """Sum of ``sample`` values of ``family`` whose labels include ``labels``."""
    fam = fams.get(family)
    if fam is None:
        return 0.0
    return sum(s.value for s in fam.samples  # type: ignore[attr-defined]
               if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()))


def exposed_names(fams: Scrape) -> set[str]:
    """Every sample name the families of one scrape can carry (a labelled family with no series yet
    still announces itself with HELP/TYPE)."""
    out: set[str] = set()
    for fam in fams.values():
        kind = fam.type  # type: ignore[attr-defined]
        suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created")}
        out |= {fam.name + s for s in suffixes.get(kind, ("",))}  # type: ignore[attr-defined]
    return out


def service_of(process: str) -> str:
    return "maker_worker" if process.startswith("maker_worker") else process


def check_metrics(ports: dict[str, int]) -> None:
    """Every process of a paper run with fills (process name -> its metrics port) exposes its own
    families and no other service's, the samples of ``MUST_MOVE`` move above 0, and every metric
    the Grafana dashboard queries is exposed by some process."""
    assert {"md_gateway", "user_feed", "scheduler", "signal_ingest", "maker_worker-1", "venue_sim"} <= set(ports)
    assert len(set(ports.values())) == len(ports), f"two processes on one port: {ports}"

    def unmoved() -> list[str]:
        """The samples of ``MUST_MOVE`` still at 0 (a worker may trade on the REST book before the
        gateway's first frame, so every one is waited for, not only the fills)."""
        scrapes = {name: scrape(ports[name]) for name in {m[0] for m in MUST_MOVE}}
        return [f"{p} {sample}{labels}" for p, family, sample, labels in MUST_MOVE
                if value(scrapes[p], family, sample, **labels) <= 0]

    try:
        eventually(lambda: not unmoved(), 40, "every sample of MUST_MOVE above 0", interval_s=0.5)
    except AssertionError:
        raise AssertionError(f"still at 0 after 40 s: {unmoved()}") from None
    scrapes = {name: scrape(port) for name, port in ports.items()}
    for name, fams in scrapes.items():
        wanted = {f._name for f in metrics.COMMON + metrics.FAMILIES.get(service_of(name), ())}
        assert wanted <= set(fams), f"{name} does not expose {wanted - set(fams)}"
        others = {f._name for svc, fs in metrics.FAMILIES.items() if svc != service_of(name) for f in fs}
        assert not others & set(fams), f"{name} exposes families of other services: {others & set(fams)}"

    exposed = set().union(*(exposed_names(f) for f in scrapes.values())) | SYNTHETIC
    dashboard = json.loads(DASHBOARD.read_text())
    queried = set().union(*(metric_names(e) for e in exprs(dashboard)))
    assert queried <= exposed, f"the dashboard queries metrics no process exposes: {queried - exposed}"
