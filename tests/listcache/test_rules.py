"""Pure parts of the cache: the answer rule, the value encoding, keys, and the circuit breaker."""

from __future__ import annotations

import json

import numpy as np
import orjson
import pytest

from listcache import (
    CircuitBreaker,
    DecodeError,
    answer_from_cached,
    decode_list,
    encode_list,
    list_key,
    ready_key,
)

# A stored list: item indices 100..119, best first (index 100 + j at position j).
ITEMS = np.arange(100, 120, dtype=np.int32)
SCORES = np.linspace(1.0, 0.81, 20, dtype=np.float32)
N_ITEMS = 200


def answer(k: int, excluded: list[int] | None = None, allowed: np.ndarray | None = None) -> list[int] | None:
    got = answer_from_cached(
        ITEMS, SCORES, k, None if excluded is None else np.array(excluded, np.int64), allowed
    )
    if got is None:
        return None
    items, scores = got
    np.testing.assert_array_equal(scores, SCORES[items - 100])  # scores travel with their items
    return items.tolist()


def mask(allowed: list[int]) -> np.ndarray:
    m = np.zeros(N_ITEMS, bool)
    m[allowed] = True
    return m


# -- answer_from_cached -------------------------------------------------------------------------
def test_plain_request_takes_the_first_k() -> None:
    assert answer(5) == list(range(100, 105))
    assert answer(20) == list(range(100, 120))


def test_k_larger_than_the_list_needs_a_computation() -> None:
    assert answer(21) is None
    assert answer_from_cached(np.zeros(0, np.int32), np.zeros(0, np.float32), 1) is None


def test_exclusions_are_post_filtered_when_enough_remain() -> None:
    assert answer(5, excluded=[100, 102, 199]) == [101, 103, 104, 105, 106]


def test_exclusions_that_leave_too_few_need_a_computation() -> None:
    excluded = list(range(100, 116))
    assert answer(4, excluded=excluded) == [116, 117, 118, 119]
    assert answer(5, excluded=excluded) is None


def test_long_exclusion_lists_take_the_sorted_path_with_the_same_answer() -> None:
    excluded = [*range(100, 110), *range(300, 400)]  # > 64 entries
    assert answer(10, excluded=excluded) == list(range(110, 120))


def test_filters_are_post_filtered_in_list_order() -> None:
    even = mask(list(range(0, N_ITEMS, 2)))
    assert answer(10, allowed=even) == list(range(100, 120, 2))
    assert answer(11, allowed=even) is None


def test_filter_and_exclusion_combine() -> None:
    assert answer(3, excluded=[100], allowed=~mask([101])) == [102, 103, 104]


def test_the_stored_arrays_are_not_modified() -> None:
    before = ITEMS.copy()
    answer(3, excluded=[100, 101])
    np.testing.assert_array_equal(ITEMS, before)


def test_k_must_be_positive() -> None:
    with pytest.raises(ValueError, match="k must be >= 1"):
        answer_from_cached(ITEMS, SCORES, 0)


# -- encoding -------------------------------------------------------------------------------------
def test_encoding_round_trips_exactly() -> None:
    rng = np.random.default_rng(0)
    items = rng.integers(0, 10_000, 100)
    scores = rng.normal(size=100).astype(np.float32)
    got_items, got_scores = decode_list(encode_list(items, scores), n_items=10_000)
    np.testing.assert_array_equal(got_items, items)
    np.testing.assert_array_equal(got_scores, scores)  # float32 in, the same float32 out
    assert decode_list(encode_list(np.array([], np.int64), np.array([], np.float32)))[0].size == 0


def test_encoding_is_8_bytes_per_item_and_much_smaller_than_json() -> None:
    items = np.arange(100)
    scores = np.linspace(3, 1, 100, dtype=np.float32)
    blob = encode_list(items, scores)
    assert len(blob) == 8 + 8 * 100
    as_json = orjson.dumps(
        [{"item_id": f"i{i}", "score": float(s)} for i, s in zip(items, scores, strict=True)]
    )
    assert len(as_json) > 3 * len(blob)


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"\x01\x00", "shorter than the header"),
        (b"\x02\x00\x00\x00\x01\x00\x00\x00" + b"\x00" * 8, "unknown list format 2"),
        (b"\x01\x00\x00\x00\x02\x00\x00\x00" + b"\x00" * 8, "does not hold 2 items"),
        (json.dumps([{"item_id": "i1", "score": 0.5}]).encode(), "unknown list format 91"),
    ],
)
def test_foreign_or_truncated_values_are_rejected(blob: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode_list(blob)


def test_indices_outside_the_catalogue_are_rejected() -> None:
    blob = encode_list(np.array([3, 50]), np.array([1.0, 0.5], np.float32))
    assert decode_list(blob, n_items=51)[0].tolist() == [3, 50]
    with pytest.raises(DecodeError, match="outside"):
        decode_list(blob, n_items=50)


def test_mismatched_lengths_cannot_be_encoded() -> None:
    with pytest.raises(ValueError, match="equally long"):
        encode_list(np.arange(3), np.zeros(2, np.float32))


def test_keys_carry_prefix_version_and_kind() -> None:
    assert list_key("p", "v1", "rec", "u7") == "p:v1:rec:u7"
    assert list_key("p", "v1", "sim", "i7") == "p:v1:sim:i7"
    assert list_key("p", "v2", "rec", "u7") != list_key("p", "v1", "rec", "u7")
    assert ready_key("p", "v1") == "p:v1:ready"
    with pytest.raises(ValueError, match="kind"):
        list_key("p", "v1", "other", "x")


# -- circuit breaker ------------------------------------------------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_consecutive_failures_and_blocks_calls() -> None:
    clock = FakeClock()
    b = CircuitBreaker(failure_threshold=3, reset_after_s=5.0, clock=clock)
    for _ in range(2):
        assert b.allow()
        b.record_failure()
    assert b.state == "closed"
    assert b.allow()
    b.record_failure()
    assert b.state == "open"
    assert not b.allow()
    clock.now += 4.9
    assert not b.allow()


def test_a_success_resets_the_failure_count() -> None:
    b = CircuitBreaker(failure_threshold=2, clock=FakeClock())
    b.record_failure()
    b.record_success()
    b.record_failure()
    assert b.state == "closed"


def test_half_open_lets_one_trial_through_and_closes_on_success() -> None:
    clock = FakeClock()
    b = CircuitBreaker(failure_threshold=1, reset_after_s=5.0, clock=clock)
    b.record_failure()
    clock.now += 5.0
    assert b.state == "half-open"
    assert b.allow()
    assert not b.allow()  # only one trial while it is in flight
    b.record_success()
    assert b.state == "closed"
    assert b.allow() and b.allow()


def test_a_failed_trial_reopens_for_a_full_period() -> None:
    clock = FakeClock()
    b = CircuitBreaker(failure_threshold=3, reset_after_s=5.0, clock=clock)
    for _ in range(3):
        b.record_failure()
    clock.now += 5.0
    assert b.allow()
    b.record_failure()  # one failed trial is enough, whatever the threshold
    assert b.state == "open"
    clock.now += 4.0
    assert not b.allow()
    clock.now += 1.0
    assert b.allow()


def test_breaker_rejects_a_zero_threshold() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker(failure_threshold=0)
