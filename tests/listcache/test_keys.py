"""The key scheme on a Redis Cluster: one version's keys spread over the hash slots.

A hash tag (``{version}``) would put every key of a version in one slot, so on one primary: its
memory and its traffic. The version is plain text in the key, so CRC16 of the whole key picks the
slot, and a version's lists land everywhere (``test_redis_cluster.py`` checks the resulting
keys per primary on a real cluster)."""

from __future__ import annotations

from collections import Counter

from redis.crc import REDIS_CLUSTER_HASH_SLOTS as SLOTS
from redis.crc import key_slot

from listcache import ready_key
from listcache.keys import list_key


def test_a_versions_keys_are_not_hash_tagged_and_spread_over_the_slots() -> None:
    version = "20261202T002545510776Z-57ae"
    keys = [list_key("recserve", version, "rec", f"u{u}") for u in range(20_000)]
    keys += [list_key("recserve", version, "sim", str(i)) for i in range(10_000)]
    keys.append(ready_key("recserve", version))
    assert not any("{" in k for k in keys)
    tagged = list_key("recserve", "{" + version + "}", "rec", "u1")
    assert key_slot(tagged.encode()) == key_slot(version.encode())  # what a tag would do
    slots = [key_slot(k.encode()) for k in keys]  # redis-py's own slot function
    # 30,001 keys over 16,384 slots: about 13,300 distinct slots are expected at random
    assert len(set(slots)) > 12_000
    # thirds of the slot range stand for three primaries: each gets its third, within 3%
    thirds = Counter(s * 3 // SLOTS for s in slots)
    assert all(abs(n - len(keys) / 3) < 0.03 * len(keys) / 3 for n in thirds.values()), thirds
