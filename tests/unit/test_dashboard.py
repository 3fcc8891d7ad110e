"""The observability profile: every PromQL query of the Grafana dashboard names a metric family that
``libs/common/metrics.py`` defines (and ``tests/e2e/test_up_console.py`` checks that a run exposes it),
Prometheus scrapes every polyband service of docker-compose.yml, and the provisioning files point
where compose mounts them."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from libs.common import metrics

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy/grafana/dashboards/polyband.json"
PROMETHEUS = REPO / "deploy/prometheus/prometheus.yml"
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())

PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or",
                "unless", "le", "inf", "nan"}
SYNTHETIC = {"up"}  # series Prometheus itself writes for each target
IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def exprs(dashboard: dict) -> list[str]:
    """Every target ``expr`` of every panel (rows included)."""
    out = []
    for panel in dashboard["panels"]:
        for p in [panel, *panel.get("panels", [])]:
            out += [t["expr"] for t in p.get("targets", [])]
    return out


def metric_names(expr: str) -> set[str]:
    """Metric names of one PromQL expression: identifiers that are not functions (followed by ``(``),
    keywords, grouping labels, label matchers, strings, ranges or Grafana variables."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges, e.g. [5m], [$__rate_interval]
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)  # label lists
    text = re.sub(r"\$\w+", " ", text)
    names = set()
    for m in IDENT.finditer(text):
        rest = text[m.end():].lstrip()
        if rest.startswith("(") or m.group().lower() in PROMQL_WORDS:
            continue
        if m.start() > 0 and (text[m.start() - 1].isdigit() or text[m.start() - 1] == "."):
            continue  # the exponent or suffix of a number (1e9, 0.5)
        names.add(m.group())
    return names


def test_the_name_extraction_reads_promql() -> None:
    expr = ('histogram_quantile(0.99, sum by (le, job) (rate(pb_a_seconds_bucket{job=~"x|y"}[$__rate_interval])))'
            ' / on (job) group_left sum(pb_b_total offset 5m) * 1e3 + up')
    assert metric_names(expr) == {"pb_a_seconds_bucket", "pb_b_total", "up"}


def test_every_dashboard_query_names_a_defined_metric_family() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    known = metrics.all_sample_names()
    queries = exprs(dashboard)
    assert len(queries) >= 20
    used: set[str] = set()
    for expr in queries:
        names = metric_names(expr)
        assert names, f"no metric in {expr!r}"
        unknown = names - set(known) - SYNTHETIC
        assert not unknown, f"{expr!r} queries {unknown}: not a family of libs/common/metrics.py"
        used |= names
    families = {name for name, svc in known.items() if not name.endswith("_created")}
    services = {known[n] for n in used if n in known}
    assert services == set(metrics.FAMILIES) | {"*"}, "the dashboard should show every service"
    assert {"pb_events_total", "pb_gateway_publish_latency_seconds_bucket", "pb_worker_pnl_usd"} <= used & families


def test_dashboard_panels_use_the_provisioned_datasource() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    source = yaml.safe_load((REPO / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = source["datasources"][0]["uid"]
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert all(p["datasource"]["uid"] == uid for p in panels)
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


def test_prometheus_scrapes_every_service_of_compose() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    services = {name for name, svc in COMPOSE["services"].items()
                if name != "redis" and "observability" not in svc.get("profiles", [])}
    targets: dict[str, str] = {}
    for job in config["scrape_configs"]:
        for sc in job.get("static_configs", []):
            targets.update({t.split(":")[0]: t.split(":")[1] for t in sc["targets"]})
        for sd in job.get("dns_sd_configs", []):
            assert sd["type"] == "A"
            targets.update({name: str(sd["port"]) for name in sd["names"]})
    assert services <= set(targets), f"not scraped: {services - set(targets)}"
    assert all(port == "9100" for port in targets.values())
    assert any(sd["names"] == ["maker_worker"] for job in config["scrape_configs"]
               for sd in job.get("dns_sd_configs", [])), "maker_worker scales: discover it by DNS"
    for name in services:  # every scraped service serves on 9100
        env = COMPOSE["services"][name]["environment"]
        assert str(env.get("PB_METRICS_PORT")) == "9100", name


@pytest.mark.parametrize("name,port", [("prometheus", 9090), ("grafana", 3000)])
def test_observability_services_are_pinned_and_local(name: str, port: int) -> None:
    svc = COMPOSE["services"][name]
    assert svc["profiles"] == ["observability"]
    assert re.search(r":v?\d+\.\d+\.\d+$", svc["image"]), svc["image"]
    assert svc["ports"] == [f"127.0.0.1:{port}:{port}"]
    for volume in svc["volumes"]:
        host = volume.split(":")[0]
        if host.startswith("./"):
            assert (REPO / host).exists(), volume
