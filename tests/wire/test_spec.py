"""runtime.spec: the provisioning spec, its validation, and reading it from a stream."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Iterator

import pytest
from actors_runtime.control import EXIT_BAD_SPEC
from actors_runtime.errors import InvalidSpec
from actors_runtime.spec import (
    DEFAULT_MAX_DEPTH,
    MAX_SPEC_BYTES,
    SPEC_VERSION,
    Identity,
    Limits,
    ProvisionSpec,
    read_spec,
)

SECRET = "s3cr3t-value-never-logged"


def valid_spec() -> ProvisionSpec:
    return ProvisionSpec(
        identity=Identity(child_id="worker-1", parent_id="boss", system_id="sys", project_key="proj-0123abcd",
                          role="coder", labels=["py", "fast"], depth=2),
        actor_class="tests.sample_actors:Counter",
        home="/tmp/actors-home",
        project_dir="/tmp/project",
        durability="process",
        limits=Limits(idle_timeout=30.0, handler_timeout=5.0, max_attempts=4),
        restart="always",
        secrets={"api_key": SECRET, "nested": {"token": SECRET}},
    )


class Pipe:
    """Both ends of an ``os.pipe``; each end is closed exactly once."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        self._open = {self.read_fd, self.write_fd}

    def close_writer(self) -> None:
        """EOF for the reader."""
        self._open.discard(self.write_fd)
        os.close(self.write_fd)

    def close(self) -> None:
        while self._open:
            os.close(self._open.pop())


@pytest.fixture
def pipe() -> Iterator[Pipe]:
    ends = Pipe()
    yield ends
    ends.close()


# -- the document -----------------------------------------------------------------------

def test_a_valid_spec_validates_and_returns_itself() -> None:
    spec = valid_spec()
    assert spec.validate() is spec


def test_round_trip_through_the_wire() -> None:
    spec = valid_spec()
    wire = spec.to_wire()
    assert wire.endswith(b"\n") and wire.count(b"\n") == 1, "one line of JSON"
    copy = ProvisionSpec.from_wire(wire)
    assert copy == spec
    assert copy.secrets == spec.secrets, "the wire (pipe or stdin) carries the secrets"
    assert isinstance(copy.identity, Identity) and isinstance(copy.limits, Limits)


def test_unknown_fields_are_ignored_at_the_top_level_and_nested() -> None:
    doc = json.loads(valid_spec().to_wire())
    doc["from_the_future"] = {"x": 1}
    doc["identity"]["zone"] = "eu-west"
    doc["limits"]["max_memory"] = 10**9
    assert ProvisionSpec.from_wire(json.dumps(doc)) == valid_spec()


def test_a_minimal_spec_parses_with_defaults() -> None:
    spec = ProvisionSpec.from_wire("{}")
    assert spec == ProvisionSpec()
    assert spec.version == SPEC_VERSION
    assert spec.identity == Identity() and spec.identity.depth == 1 and spec.identity.labels == []
    assert spec.limits == Limits()
    assert (spec.limits.max_attempts, spec.limits.max_depth) == (3, DEFAULT_MAX_DEPTH)
    assert (spec.backend, spec.durability, spec.restart) == ("maildir", "machine", "on-failure")
    assert spec.on_poison == "dead-letter"
    assert spec.secrets == {}


def test_missing_nested_fields_are_defaulted() -> None:
    spec = ProvisionSpec.from_wire(json.dumps({"identity": {"child_id": "w"}, "limits": {"max_attempts": 7}}))
    assert spec.identity == Identity(child_id="w")
    assert spec.limits == Limits(max_attempts=7)


@pytest.mark.parametrize(
    "raw",
    ["not json", "[]", "null", "5", '"spec"', '{"identity": 5}', '{"limits": []}', '{"version": "one"}',
     '{"limits": {"idle_timeout": "soon"}}', '{"secrets": "flat"}', b"\xff\xfe"],
    ids=repr,
)
def test_from_wire_rejects_the_wrong_shape_with_invalid_spec(raw: str | bytes) -> None:
    with pytest.raises(InvalidSpec, match="invalid spec"):
        ProvisionSpec.from_wire(raw)


def mutate(path: str, value: Any) -> Callable[[ProvisionSpec], None]:
    """Set ``spec.<path>`` (dotted) to ``value``."""
    def apply(spec: ProvisionSpec) -> None:
        *parents, name = path.split(".")
        target: Any = spec
        for parent in parents:
            target = getattr(target, parent)
        setattr(target, name, value)
    apply.__name__ = f"{path}={value!r}"
    return apply


BAD_FIELDS = [
    ("identity.child_id", "../x", "child_id"),
    ("identity.child_id", "", "child_id"),
    ("identity.child_id", None, "child_id"),
    ("identity.system_id", "a/b", "system_id"),
    ("identity.parent_id", ".hidden", "parent_id"),
    ("identity.project_key", "", "project_key"),
    ("identity.project_key", "../p", "project_key"),
    ("actor_class", "no_colon", "actor_class"),
    ("actor_class", ":Cls", "actor_class"),
    ("actor_class", "module:", "actor_class"),
    ("home", "", "home"),
    ("backend", "redis-cluster", "backend"),
    ("backend", "memory://", "backend"),
    ("backend", None, "backend"),
    ("durability", "disk", "durability"),
    ("durability", None, "durability"),
    ("restart", "sometimes", "restart"),
    ("on_poison", "retry", "on_poison"),
    ("on_poison", None, "on_poison"),
    ("identity.depth", 0, "depth"),
    ("identity.depth", DEFAULT_MAX_DEPTH + 1, "depth"),
    ("limits.idle_timeout", 0, "idle_timeout"),
    ("limits.idle_timeout", -1.0, "idle_timeout"),
    ("limits.idle_timeout", math.nan, "idle_timeout"),
    ("limits.handler_timeout", 0.0, "handler_timeout"),
    ("limits.handler_timeout", -5, "handler_timeout"),
    ("limits.idle_timeout", math.inf, "idle_timeout"),
    ("limits.handler_timeout", 1e12, "handler_timeout"),
    ("limits.max_attempts", 0, "max_attempts"),
    ("limits.max_attempts", 10**9, "max_attempts"),
    ("limits.retries", -1, "retries"),
    ("limits.max_pending", 0, "max_pending"),
    ("limits.lease", 0.0, "lease"),
    ("limits.lease", math.inf, "lease"),
    ("limits.lease", -math.inf, "lease"),
    ("limits.lease", math.nan, "lease"),
    ("limits.lease", 86_401, "lease"),
    ("limits.sweep_interval", -1.0, "sweep_interval"),
    ("limits.sweep_interval", math.inf, "sweep_interval"),
    ("limits.batch_size", 0, "batch_size"),
    ("limits.max_depth", 0, "max_depth"),
    ("limits.max_depth", 10**6, "max_depth"),
]


@pytest.mark.parametrize("path, value, named", BAD_FIELDS, ids=[f"{p}={v!r}" for p, v, _ in BAD_FIELDS])
def test_validate_names_the_bad_field(path: str, value: Any, named: str) -> None:
    spec = valid_spec()
    mutate(path, value)(spec)
    with pytest.raises(InvalidSpec) as info:
        spec.validate()
    assert info.value.what == named
    assert SECRET not in str(info.value)


@pytest.mark.parametrize("name", ["maildir", "memory", "memory://tests-spec"])
def test_validate_accepts_every_available_backend(name: str) -> None:
    spec = valid_spec()
    spec.backend = name
    assert spec.validate().backend == name
    assert ProvisionSpec.from_wire(spec.to_wire()).backend == name


@pytest.mark.parametrize(
    "path, value",
    [("actor_class", None), ("identity.depth", None), ("identity", None), ("limits", None),
     ("limits.max_attempts", None), ("limits.idle_timeout", "soon"), ("limits.lease", None)],
    ids=["actor_class=None", "depth=None", "identity=None", "limits=None", "max_attempts=None",
         "idle_timeout='soon'", "lease=None"],
)
def test_validate_turns_a_mistyped_field_into_invalid_spec(path: str, value: Any) -> None:
    # What dataclasses-json lets through from the wire: it does not check types.
    spec = valid_spec()
    mutate(path, value)(spec)
    with pytest.raises(InvalidSpec):
        spec.validate()


def test_depth_at_the_maximum_and_timeouts_of_none_are_fine() -> None:
    spec = valid_spec()
    spec.identity.depth = spec.limits.max_depth
    spec.limits.idle_timeout = None
    spec.limits.handler_timeout = None
    spec.identity.parent_id = None
    assert spec.validate() is spec


def test_secrets_never_appear_in_public_dict_or_repr() -> None:
    spec = valid_spec()
    public = spec.public_dict()
    assert "secrets" not in public
    assert SECRET not in json.dumps(public)
    assert SECRET not in repr(spec) and SECRET not in str(spec)
    assert "secrets" not in repr(spec)
    assert public["identity"]["child_id"] == "worker-1"
    assert public["limits"]["max_attempts"] == 4
    assert spec.secrets["api_key"] == SECRET, "public_dict does not strip the spec itself"


# -- read_spec ----------------------------------------------------------------------------

def test_read_spec_reads_one_line_from_a_pipe(pipe: Pipe) -> None:
    read_fd, write_fd = pipe.read_fd, pipe.write_fd
    os.write(write_fd, valid_spec().to_wire() + b'{"after": "the first line is ignored"}\n')
    assert read_spec(read_fd, timeout=10.0) == valid_spec()


def test_read_spec_reads_a_line_that_arrives_in_pieces(pipe: Pipe) -> None:
    read_fd, write_fd = pipe.read_fd, pipe.write_fd
    wire = valid_spec().to_wire()
    pieces = [wire[:10], wire[10:200], wire[200:]]
    sent = threading.Event()

    def trickle() -> None:
        for piece in pieces:
            os.write(write_fd, piece)
        sent.set()

    writer = threading.Thread(target=trickle)
    writer.start()
    try:
        assert read_spec(read_fd, timeout=10.0) == valid_spec()
    finally:
        writer.join(10)
    assert sent.is_set()


def test_read_spec_accepts_everything_up_to_eof_without_a_newline(pipe: Pipe) -> None:
    read_fd, write_fd = pipe.read_fd, pipe.write_fd
    os.write(write_fd, valid_spec().to_wire().rstrip(b"\n"))
    pipe.close_writer()
    assert read_spec(read_fd, timeout=10.0) == valid_spec()


def test_read_spec_reads_a_binary_file_object(pipe: Pipe) -> None:
    read_fd, write_fd = pipe.read_fd, pipe.write_fd
    os.write(write_fd, valid_spec().to_wire())
    stream = os.fdopen(os.dup(read_fd), "rb")
    with stream:
        assert read_spec(stream, timeout=10.0) == valid_spec()


def test_read_spec_refuses_more_than_cap_bytes(pipe: Pipe) -> None:
    read_fd, write_fd = pipe.read_fd, pipe.write_fd
    wire = valid_spec().to_wire()
    line_length = len(wire) - 1
    os.write(write_fd, wire)
    with pytest.raises(InvalidSpec, match=f"larger than {line_length - 1} bytes"):
        read_spec(read_fd, cap=line_length - 1, timeout=10.0)


def test_read_spec_accepts_a_line_of_exactly_cap_bytes(pipe: Pipe) -> None:
    read_fd, write_fd = pipe.read_fd, pipe.write_fd
    wire = valid_spec().to_wire()
    os.write(write_fd, wire)
    assert read_spec(read_fd, cap=len(wire) - 1, timeout=10.0) == valid_spec()


def test_read_spec_stops_reading_a_stream_that_never_ends_a_line(pipe: Pipe) -> None:
    read_fd, write_fd = pipe.read_fd, pipe.write_fd
    os.write(write_fd, b"x" * 5000)  # and the writer stays open, as a hostile sender would
    with pytest.raises(InvalidSpec, match="larger than 1000 bytes"):
        read_spec(read_fd, cap=1000, timeout=10.0)


def test_the_default_cap_is_eight_mebibytes() -> None:
    assert MAX_SPEC_BYTES == 8 * 1024 * 1024


def test_read_spec_times_out_with_invalid_spec(pipe: Pipe) -> None:
    read_fd, write_fd = pipe.read_fd, pipe.write_fd
    os.write(write_fd, b'{"identity": ')  # a partial line, then silence
    started = time.monotonic()
    with pytest.raises(InvalidSpec, match="within 0.2 s"):
        read_spec(read_fd, timeout=0.2)
    elapsed = time.monotonic() - started
    assert 0.2 <= elapsed < 5.0


@pytest.mark.parametrize("payload", [b"", b"\n", b"   \n", b"\n" + b'{"a": 1}\n'], ids=repr)
def test_read_spec_of_empty_input_is_invalid(pipe: Pipe, payload: bytes) -> None:
    read_fd, write_fd = pipe.read_fd, pipe.write_fd
    os.write(write_fd, payload)
    pipe.close_writer()
    with pytest.raises(InvalidSpec, match="empty input"):
        read_spec(read_fd, timeout=10.0)


def test_read_spec_validates_what_it_read(pipe: Pipe) -> None:
    read_fd, write_fd = pipe.read_fd, pipe.write_fd
    os.write(write_fd, b"{}\n")
    with pytest.raises(InvalidSpec, match="child_id"):
        read_spec(read_fd, timeout=10.0)


def test_read_spec_takes_a_null_field_as_its_default(pipe: Pipe) -> None:
    # Another writer's "no value": the field's default, as for a missing field.
    read_fd, write_fd = pipe.read_fd, pipe.write_fd
    doc = json.loads(valid_spec().to_wire())
    doc["identity"]["depth"] = None
    doc["identity"]["labels"] = None
    os.write(write_fd, json.dumps(doc).encode() + b"\n")
    spec = read_spec(read_fd, timeout=10.0)
    assert spec.identity.depth == 1 and spec.identity.labels == []


def test_read_spec_of_garbage_is_invalid(pipe: Pipe) -> None:
    read_fd, write_fd = pipe.read_fd, pipe.write_fd
    os.write(write_fd, b"GET / HTTP/1.1\n")
    with pytest.raises(InvalidSpec, match="not JSON"):
        read_spec(read_fd, timeout=10.0)


# -- hostile specs ------------------------------------------------------------------------------------


def test_a_spec_nested_100_000_deep_is_invalid_not_a_recursion_error() -> None:
    with pytest.raises(InvalidSpec, match="nested too deeply"):
        ProvisionSpec.from_wire(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(InvalidSpec, match="nested too deeply"):
        ProvisionSpec.from_wire(b'{"identity":' + b'{"a":' * 100_000 + b"1" + b"}" * 100_001)


@pytest.mark.parametrize("literal", ["Infinity", "-Infinity", "NaN", "1e400"])
def test_a_non_finite_number_on_the_wire_is_refused(literal: str) -> None:
    doc = json.loads(valid_spec().to_wire())
    doc["limits"]["lease"] = "HERE"
    wire = json.dumps(doc).replace('"HERE"', literal)
    with pytest.raises(InvalidSpec) as info:
        ProvisionSpec.from_wire(wire).validate()
    assert info.value.what == "lease"


def test_a_worker_given_a_deep_spec_exits_with_the_bad_spec_code() -> None:
    # The real entry point, in a process of its own (its stack, its recursion limit).
    deep = b"[" * 100_000 + b"]" * 100_000 + b"\n"
    done = subprocess.run([sys.executable, "-m", "actors_runtime.worker"], input=deep, capture_output=True,
                          timeout=60)
    assert done.returncode == EXIT_BAD_SPEC, done.stderr
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "nested too deeply" in lines[0], lines
