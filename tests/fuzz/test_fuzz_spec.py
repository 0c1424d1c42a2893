"""Fuzz: a ProvisionSpec from any bytes or any JSON document is a spec or InvalidSpec.

A spec arrives from another process (the pipe) or from anyone who can write a seed
worker's stdin: whatever it holds, the reader answers with a valid spec or with
``InvalidSpec`` (the worker then exits with its bad-spec code), never another error.
"""

from __future__ import annotations

import json
import math
from typing import Any

from actors_runtime.errors import InvalidSpec
from actors_runtime.spec import Identity, Limits, ProvisionSpec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SETTINGS = settings(max_examples=300, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])

VALID = json.loads(ProvisionSpec(
    identity=Identity(child_id="worker-1", system_id="sys", project_key="proj-0123abcd", depth=1),
    actor_class="sample_actors:Counter", home="/h", durability="process", limits=Limits(idle_timeout=5.0),
).to_wire())

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                           st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                           max_leaves=20)


def _paths(doc: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for key, value in doc.items():
        out.append((*prefix, key))
        if isinstance(value, dict):
            out.extend(_paths(value, (*prefix, key)))
    return out


PATHS = _paths(VALID)


def _read(data: bytes | str) -> ProvisionSpec | None:
    """The spec, or None for InvalidSpec; any other exception fails the test."""
    try:
        return ProvisionSpec.from_wire(data).validate()
    except InvalidSpec:
        return None


@SETTINGS
@given(st.binary(max_size=300))
def test_any_bytes_are_a_spec_or_invalid(data: bytes) -> None:
    _read(data)


@SETTINGS
@given(json_values)
def test_any_json_document_is_a_spec_or_invalid(doc: Any) -> None:
    _read(json.dumps(doc))


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from(PATHS), json_values), min_size=1, max_size=4))
def test_a_valid_spec_with_fields_replaced_is_a_spec_or_invalid(changes: list[tuple[tuple[str, ...], Any]]) -> None:
    doc = json.loads(json.dumps(VALID))
    for path, value in changes:
        target = doc
        for key in path[:-1]:
            if not isinstance(target.get(key), dict):
                break
            target = target[key]
        else:
            target[path[-1]] = value
    spec = _read(json.dumps(doc))
    if spec is not None:  # what passed validation is safe to act on
        limits = spec.limits
        for number in (limits.lease, limits.sweep_interval, limits.idle_timeout, limits.handler_timeout):
            assert number is None or math.isfinite(number)
        assert spec.identity.child_id and spec.identity.system_id


@SETTINGS
@given(st.integers(min_value=1, max_value=200_000), st.sampled_from(["[", '{"a":']))
def test_nesting_of_any_depth_is_a_spec_or_invalid(depth: int, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    _read(opener * depth + "1" * (opener != "[") + closer * depth)
