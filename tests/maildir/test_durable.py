"""The maildir backend's durable files: atomic_write, the one durable-write primitive
(and the durability levels it honours)."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any, Callable

import pytest
from actors_runtime.backends.maildir import durable
from actors_runtime.backends.maildir.durable import atomic_write, read_bytes, temp_name, write_file
from actors_runtime.durability import DURABILITY_LEVELS, check_durability
from actors_runtime.errors import InvalidSpec, StoreError


class OsWith:
    """The ``os`` module with some functions replaced, to inject faults into one module."""

    def __init__(self, **overrides: Callable[..., Any]) -> None:
        self.__dict__.update(overrides)

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)


def dot_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("level", DURABILITY_LEVELS)
def test_atomic_write_creates_then_replaces_content(tmp_path: Path, level: str) -> None:
    target = tmp_path / "doc.json"
    atomic_write(str(target), b"first", level)  # type: ignore[arg-type]
    assert target.read_bytes() == b"first"
    atomic_write(str(target), b"second, longer than the first", level)  # type: ignore[arg-type]
    assert target.read_bytes() == b"second, longer than the first"
    atomic_write(str(target), b"", level)  # type: ignore[arg-type]
    assert target.read_bytes() == b""
    assert [p.name for p in tmp_path.iterdir()] == ["doc.json"]


@pytest.mark.parametrize("level, expected_fsyncs", [("machine", 2), ("process", 0)])
def test_atomic_write_fsyncs_file_and_directory_only_at_machine_level(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, level: str, expected_fsyncs: int
) -> None:
    synced: list[int] = []

    def counting_fsync(fd: int) -> None:
        synced.append(fd)
        os.fsync(fd)

    def counting_fdatasync(fd: int) -> None:  # the file's data (fdatasync), then the directory
        synced.append(fd)
        os.fdatasync(fd)

    monkeypatch.setattr(durable, "os", OsWith(fsync=counting_fsync, fdatasync=counting_fdatasync))
    atomic_write(str(tmp_path / "doc"), b"data", level)  # type: ignore[arg-type]
    assert len(synced) == expected_fsyncs
    assert (tmp_path / "doc").read_bytes() == b"data"


def test_atomic_write_writes_large_data_completely(tmp_path: Path) -> None:
    data = os.urandom(3 * 65536 + 17)
    atomic_write(str(tmp_path / "big"), data)
    assert read_bytes(str(tmp_path / "big")) == data


def test_atomic_write_into_a_missing_directory_raises_store_error(tmp_path: Path) -> None:
    target = tmp_path / "missing" / "doc.json"
    with pytest.raises(StoreError) as info:
        atomic_write(str(target), b"data")
    assert info.value.path == str(target)
    assert "write failed" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_over_a_directory_fails_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "adir"
    target.mkdir()
    (target / "inside").write_text("kept")
    with pytest.raises(StoreError):
        atomic_write(str(target), b"data")
    assert (target / "inside").read_text() == "kept"
    assert dot_files(tmp_path) == []


def test_atomic_write_removes_the_temp_when_the_rename_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "doc"
    target.write_bytes(b"old")

    def failing_replace(src: str, dst: str) -> None:
        assert os.path.exists(src), "the temp file should exist when the rename is attempted"
        raise OSError(errno.EIO, "injected rename failure")

    monkeypatch.setattr(durable, "os", OsWith(replace=failing_replace))
    with pytest.raises(StoreError, match="injected rename failure"):
        atomic_write(str(target), b"new")
    assert target.read_bytes() == b"old"
    assert dot_files(tmp_path) == []


def test_atomic_write_removes_the_temp_when_the_write_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "doc"
    target.write_bytes(b"old")
    calls = []

    def failing_write(fd: int, data: Any) -> int:
        calls.append(fd)
        if len(calls) == 1:
            return os.write(fd, bytes(data[:2]))  # a short write first, then the disk fills
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(durable, "os", OsWith(write=failing_write))
    with pytest.raises(StoreError, match="No space left"):
        atomic_write(str(target), b"new content")
    assert len(calls) == 2
    assert target.read_bytes() == b"old"
    assert dot_files(tmp_path) == []


def test_atomic_write_removes_the_temp_when_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "doc"
    target.write_bytes(b"old")

    def interrupted_replace(src: str, dst: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(durable, "os", OsWith(replace=interrupted_replace))
    with pytest.raises(KeyboardInterrupt):
        atomic_write(str(target), b"new")
    assert target.read_bytes() == b"old"
    assert dot_files(tmp_path) == []


def test_write_file_is_exclusive(tmp_path: Path) -> None:
    path = tmp_path / "once"
    write_file(str(path), b"one", "process")
    with pytest.raises(FileExistsError):
        write_file(str(path), b"two", "process")
    assert path.read_bytes() == b"one"


def test_temp_names_are_hidden_unique_and_in_the_directory(tmp_path: Path) -> None:
    names = {temp_name(str(tmp_path)) for _ in range(100)}
    assert len(names) == 100
    for name in names:
        assert os.path.dirname(name) == str(tmp_path)
        assert os.path.basename(name).startswith(".")


def test_a_forked_child_names_its_temp_files_with_its_own_pid_and_random_part(tmp_path: Path) -> None:
    # The prefix is renewed by a fork hook: a child must not reuse its parent's names
    # (the counter is inherited), and a sweep reads the pid from the name.
    ours = os.path.basename(temp_name(str(tmp_path)))
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its name, leave at once
        os.write(write_end, os.path.basename(temp_name(str(tmp_path))).encode())
        os._exit(0)
    os.close(write_end)
    try:
        theirs = os.read(read_end, 200).decode()
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    _, our_pid, our_random, _ = ours.split("-")
    _, their_pid, their_random, _ = theirs.split("-")
    assert (int(our_pid), int(their_pid)) == (os.getpid(), pid)
    assert their_random != our_random and len(their_random) == 8
    int(their_random, 16)  # hex digits


@pytest.mark.parametrize("level", DURABILITY_LEVELS)
def test_check_durability_accepts_both_levels(level: str) -> None:
    assert check_durability(level) == level


@pytest.mark.parametrize("value", ["disk", "", None, "MACHINE", 1], ids=repr)
def test_check_durability_refuses_anything_else(value: object) -> None:
    with pytest.raises(InvalidSpec, match="durability"):
        check_durability(value)


def test_read_bytes_of_a_missing_file_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_bytes(str(tmp_path / "nothing"))
