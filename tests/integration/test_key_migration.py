"""A rolling upgrade across the {sig} key rename keeps the signal stream (with its consumer group and
pending entries), the dead letters and every leader's cursor; nothing is overwritten; run twice is a no-op."""
from __future__ import annotations

from redis import Redis

from libs.common import keys
from libs.common.key_migration import migrate


def test_legacy_signal_keys_are_renamed_with_their_group_and_pending_list(r: Redis) -> None:
    r.xadd(keys.LEGACY_SIG_STREAM, {"signal_id": "a"}, id="1-0")
    r.xadd(keys.LEGACY_SIG_STREAM, {"signal_id": "b"}, id="2-0")
    r.xgroup_create(keys.LEGACY_SIG_STREAM, keys.SIG_GROUP, id="0")
    r.xreadgroup(keys.SIG_GROUP, "c1", {keys.LEGACY_SIG_STREAM: ">"}, count=1)  # "a" delivered, not acked
    r.xadd(keys.LEGACY_SIG_DEAD, {"reason": "x"})
    r.hset("pb:sig:cursor:0xabc", mapping={"ts": "5", "gen": "3"})
    m = migrate(r)
    assert sorted(m.renamed) == sorted([(keys.LEGACY_SIG_STREAM, keys.SIG_STREAM), (keys.LEGACY_SIG_DEAD, keys.SIG_DEAD),
                                        ("pb:sig:cursor:0xabc", keys.sig_cursor("0xabc"))]) and not m.conflicts
    assert [f["signal_id"] for _, f in r.xrange(keys.SIG_STREAM)] == ["a", "b"]
    assert r.xpending(keys.SIG_STREAM, keys.SIG_GROUP)["pending"] == 1
    assert r.hgetall(keys.sig_cursor("0xabc")) == {"ts": "5", "gen": "3"}
    assert not r.exists(keys.LEGACY_SIG_STREAM, keys.LEGACY_SIG_DEAD, "pb:sig:cursor:0xabc")
    assert migrate(r).renamed == ()


def test_a_key_under_both_names_is_a_conflict_and_nothing_is_overwritten(r: Redis) -> None:
    r.xadd(keys.LEGACY_SIG_STREAM, {"signal_id": "old"})
    r.xadd(keys.SIG_STREAM, {"signal_id": "new"})
    m = migrate(r)
    assert m.conflicts == ((keys.LEGACY_SIG_STREAM, keys.SIG_STREAM),) and m.renamed == ()
    assert [f["signal_id"] for _, f in r.xrange(keys.SIG_STREAM)] == ["new"]
    assert [f["signal_id"] for _, f in r.xrange(keys.LEGACY_SIG_STREAM)] == ["old"]
