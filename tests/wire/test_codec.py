"""actors._codec.encode: a flat payload's short way gives what the whole way gives."""

from __future__ import annotations

import math
from enum import IntEnum
from typing import Any

import pytest
from actors_runtime.errors import InvalidSpec
from hypothesis import given, settings
from hypothesis import strategies as st

from actors._codec import _encode, encode


class Level(IntEnum):
    LOW = 1


class Name(str):
    pass


scalars = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5)
           | st.just(Level.LOW) | st.just(Name("n")))
keys = st.text(max_size=5) | st.just(Name("k")) | st.integers() | st.none() | st.booleans()


def _outcome(function: Any, value: Any) -> Any:
    try:
        return "result", function(value)
    except InvalidSpec as exc:
        return "refused", str(exc)


@settings(max_examples=300, deadline=None, database=None)
@given(st.dictionaries(keys, scalars | st.lists(scalars, max_size=2), max_size=5))
def test_a_dict_payload_encodes_as_the_whole_way_encodes_it(payload: dict[Any, Any]) -> None:
    assert _outcome(encode, payload) == _outcome(lambda value: _encode(value, 0), payload)


def test_a_flat_payload_is_a_copy_with_the_same_types() -> None:
    payload = {"n": 1, "s": "x", "f": 1.5, "b": True, "z": None}
    encoded = encode(payload)
    assert encoded == payload and encoded is not payload
    assert [type(v) for v in encoded.values()] == [type(v) for v in payload.values()]
    payload["n"] = 2
    assert encoded["n"] == 1  # held for later (a tell inside a turn leaves at its commit): not the sender's dict


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_flat_payload_with_a_non_finite_float_is_refused(bad: float) -> None:
    with pytest.raises(InvalidSpec, match="not a JSON number"):
        encode({"n": 1, "x": bad})


def test_a_flat_payload_with_a_subclassed_value_or_key_is_encoded_the_whole_way() -> None:
    encoded = encode({Name("k"): Level.LOW, "b": False})
    assert encoded == {"k": 1, "b": False}
