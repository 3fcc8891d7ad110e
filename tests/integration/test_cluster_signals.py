"""signal_ingest on a real 3-master Redis Cluster: the split publish (sig_publish.lua on the {sig}
slot, then sig_count.lua on pb:summary) stays exactly-once across a crash between its two steps."""
from __future__ import annotations

from typing import Iterator

import pytest
from redis import RedisCluster
from redis.crc import key_slot

from libs.common import keys
from services.signal_ingest.store import CursorStore
from tests.cluster import cluster, rc  # noqa: F401 - pytest fixtures
from tests.integration.test_signal_ingest import ACC, T0, Rig, row
from tests.signal_fakes import FakeDataApi


class Crash(Exception):
    """The process died here."""


class CrashAfterPublish(CursorStore):
    """Step 1 (sig_publish.lua) runs, then the process dies before step 2 (sig_count.lua)."""

    def commit(self, account, expected_gen, cursor, signals, dead):  # type: ignore[no-untyped-def]
        self.publish(account, expected_gen, cursor, signals, dead)
        raise Crash()


@pytest.fixture()
def fake() -> Iterator[FakeDataApi]:
    with FakeDataApi() as f:
        yield f


def _signals(r: RedisCluster) -> list[str]:
    return [f["tx_hash"] for _, f in r.xrange(keys.SIG_STREAM)]


def test_signal_keys_share_one_slot() -> None:
    ks = [keys.sig_cursor(ACC), keys.SIG_STREAM, keys.SIG_DEAD, keys.SIG_PUBLISHED]
    assert len({key_slot(k.encode()) for k in ks}) == 1


def test_crash_between_publish_and_count_loses_and_doubles_nothing(rc: RedisCluster, fake: FakeDataApi) -> None:  # noqa: F811
    fake.add(ACC, [row(T0 - 9, tx="0x1"), row(T0 - 8, tx="0x2"), row(T0 - 7, price=2, tx="0xbad"),
                   row(T0 - 6, tx="0x3")])
    first = Rig(rc, fake)
    first.svc.store = CrashAfterPublish(rc)
    with pytest.raises(Crash):
        first.poll()
    assert _signals(rc) == ["0x1", "0x2", "0x3"] and rc.xlen(keys.SIG_DEAD) == 1
    assert rc.get(keys.SIG_PUBLISHED) == "3" and rc.hget(keys.SUMMARY, "signals") is None  # step 2 never ran
    first.api.close()

    second = Rig(rc, fake)  # the restart: the store copies the published total at start
    assert rc.hget(keys.SUMMARY, "signals") == "3"
    second.poll()  # the same rows again: the cursor moved with the publish, nothing is repeated
    assert _signals(rc) == ["0x1", "0x2", "0x3"] and rc.xlen(keys.SIG_DEAD) == 1
    fake.add(ACC, [row(T0 - 5, tx="0x4"), row(T0 - 4, tx="0x5")])
    second.poll()
    assert _signals(rc) == ["0x1", "0x2", "0x3", "0x4", "0x5"]
    assert rc.hget(keys.SUMMARY, "signals") == "5"
    assert second.svc.store.sync_count(3) == 5 and second.svc.store.sync_count() == 5  # stale or repeated: no change
    assert rc.hget(keys.SUMMARY, "signals") == "5"
    second.api.close()


def test_a_stale_retry_of_step_one_is_refused(rc: RedisCluster, fake: FakeDataApi) -> None:  # noqa: F811
    fake.add(ACC, [row(T0 - 9, tx="0x1")])
    rig = Rig(rc, fake)
    rig.poll()
    stored = rig.svc.store.load(ACC)
    assert stored is not None and stored.gen == 1
    again = rig.svc.store.commit(ACC, 0, stored, [{"signal_id": "dup", "tx_hash": "0x1"}], [])
    assert not again.ok and again.gen == 1  # another instance (or a retry) with the old gen writes nothing
    assert _signals(rc) == ["0x1"] and rc.hget(keys.SUMMARY, "signals") == "1"
    rig.api.close()


def test_wrong_key_type_refuses_the_whole_publish_on_the_cluster(rc: RedisCluster, fake: FakeDataApi) -> None:  # noqa: F811
    fake.add(ACC, [row(T0 - 9, tx="0x1"), row(T0 - 8, price=2, tx="0xbad")])
    rc.set(keys.SIG_PUBLISHED, "not a number")
    rig = Rig(rc, fake)
    rig.poll()
    assert rc.xlen(keys.SIG_STREAM) == 0 and rc.xlen(keys.SIG_DEAD) == 0 and rig.cursor() == {}
    assert rc.hget(keys.ERRORS, "PUBLISH_REFUSED") == "1"
    rig.api.close()
