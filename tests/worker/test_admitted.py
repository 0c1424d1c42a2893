"""runtime.admitted: the bounded set of message ids already applied."""

from __future__ import annotations

import pytest
from actors_runtime.admitted import DEFAULT_CAPACITY, AdmittedSet


def test_insert_reports_duplicates() -> None:
    admitted = AdmittedSet()
    assert admitted.insert("a") is True
    assert admitted.insert("b") is True
    assert admitted.insert("a") is False
    assert len(admitted) == 2
    assert "a" in admitted and "b" in admitted and "c" not in admitted


def test_default_capacity_is_4096() -> None:
    assert AdmittedSet().capacity == DEFAULT_CAPACITY == 4096


def test_capacity_is_a_bound_with_oldest_first_eviction() -> None:
    admitted = AdmittedSet(capacity=3)
    for msg_id in ["a", "b", "c", "d"]:
        assert admitted.insert(msg_id)
    assert len(admitted) == 3
    assert admitted.to_list() == ["b", "c", "d"]
    assert "a" not in admitted
    # A forgotten id is admitted again, and evicts the next oldest.
    assert admitted.insert("a") is True
    assert admitted.to_list() == ["c", "d", "a"]


def test_a_duplicate_does_not_refresh_its_position() -> None:
    admitted = AdmittedSet(capacity=2)
    admitted.insert("a")
    admitted.insert("b")
    assert admitted.insert("a") is False
    admitted.insert("c")
    assert admitted.to_list() == ["b", "c"]


def test_stays_bounded_under_many_inserts() -> None:
    admitted = AdmittedSet(capacity=100)
    for number in range(10_000):
        admitted.insert(str(number))
    assert len(admitted) == 100
    assert admitted.to_list() == [str(n) for n in range(9_900, 10_000)]


def test_round_trips_through_to_list_and_from_list() -> None:
    admitted = AdmittedSet(capacity=5)
    for msg_id in ["m1", "m2", "m3", "m2", "m4"]:
        admitted.insert(msg_id)
    copy = AdmittedSet.from_list(admitted.to_list(), capacity=5)
    assert copy.to_list() == admitted.to_list() == ["m1", "m2", "m3", "m4"]
    assert copy.capacity == 5
    assert copy.insert("m1") is False
    assert copy.insert("m5") is True


def test_from_list_keeps_the_newest_ids_when_over_capacity() -> None:
    copy = AdmittedSet.from_list(["a", "b", "c", "d", "e"], capacity=2)
    assert copy.to_list() == ["d", "e"]


def test_from_list_drops_repeated_ids() -> None:
    assert AdmittedSet.from_list(["a", "b", "a"]).to_list() == ["a", "b"]


def test_discard_forgets_an_id() -> None:
    admitted = AdmittedSet()
    admitted.insert("a")
    admitted.discard("a")
    admitted.discard("never-there")
    assert "a" not in admitted
    assert admitted.insert("a") is True


@pytest.mark.parametrize("capacity", [0, -1])
def test_capacity_must_be_positive(capacity: int) -> None:
    with pytest.raises(ValueError, match="capacity"):
        AdmittedSet(capacity=capacity)
