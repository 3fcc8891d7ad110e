"""Issue 10, end to end on a real 3-master Redis Cluster (``redis+cluster://``, tests/cluster.py): the
venue and every service as processes, as in test_paper_pipeline.py. A leader BUY leads to a post-only
BUY, its fill and the take-profit SELL; the summary counts them, and ``signals`` equals the signals
published (the split sig_publish). Any CROSSSLOT in a script, a transaction or a multi-stream read
would stop a service here."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from libs.common import keys
from libs.common.redis_client import is_cluster
from services.ops.paper import DEMO_TAPE, PaperConfig, PaperRun
from tests.cluster import LocalCluster, cluster  # noqa: F401 - pytest fixture
from tests.e2e.helpers import eventually, paper_run, stream_seqs_increase
from tests.e2e.test_paper_pipeline import STOP_LOSS, TAKE_PROFIT, take_profit_chains

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PaperRun]:  # noqa: F811
    cfg = PaperConfig(tape=DEMO_TAPE, leaders=(REPO / "data/leaders/demo-synthetic.jsonl",), speed=40.0,
                      workers=2, log_dir=tmp_path_factory.mktemp("paper-cluster"), redis_url=cluster.url,
                      extra_env={"PB_TAKE_PROFIT": str(TAKE_PROFIT), "PB_STOP_LOSS": str(STOP_LOSS)})
    with paper_run(cfg) as pr:
        yield pr


@pytest.mark.timeout(180)
def test_pipeline_runs_on_a_cluster(run: PaperRun) -> None:
    r = run.r
    assert r is not None and is_cluster(r)
    eventually(lambda: take_profit_chains(run.audit()), 120, "BUY -> fill -> take-profit SELL on the cluster")
    s = eventually(lambda: (lambda x: x if x["fills"] and x["sells_posted"] else None)(run.summary()), 30,
                   "fills and sells in the summary")
    assert s["signals"] > 0 and s["tokens_activated"] > 0 and s["orders_posted"] > 0
    print("cluster run summary:", s)
    assert not {"STEP_FAILED", "PUBLISH_REFUSED"} & set(s["errors"]), s["errors"]  # no service failed a step
    eventually(lambda: int(r.hget(keys.SUMMARY, "signals") or 0) == r.xlen(keys.SIG_STREAM)
               == int(r.get(keys.SIG_PUBLISHED) or 0), 10, "signals counted exactly once")

    def spanned() -> set[str] | None:  # tokens on more than one node (their slots are fixed: same tape, same ranges)
        tokens = r.smembers(keys.MD_SUBS) | r.smembers(keys.TOKENS)
        return tokens if len({r.get_node_from_key(keys.tok(t)).name for t in tokens}) > 1 else None

    tokens = eventually(spanned, 90, "the run's tokens spanning more than one node")
    for token in tokens:
        stream_seqs_increase(r, token)
    assert not any("CROSSSLOT" in line or "RedisClusterException" in line
                   for log in run.cfg.log_dir.glob("*.log") for line in log.read_text(errors="replace").splitlines())
