"""runtime.ids: the one id validator, and every path-building entry point that uses it."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from actors_runtime.address import Address
from actors_runtime.errors import InvalidSpec
from actors_runtime.fabric import AgentRecord, Fabric
from actors_runtime.ids import check_id, is_valid_id
from actors_runtime.store import ChildEntry, SessionStore

BAD_IDS = ["../x", "a/b", ".hidden", "", "x" * 200, "a\x00b", "-lead", "a b", "/abs", "..", "é"]
NON_STRINGS = [None, 5, 1.5, b"bytes", ["a"], {"a": 1}]
GOOD_IDS = ["worker-1", "A.b_c", "0", "x" * 128, "a..b", "z-", "Worker_9.v2"]


def files_under(root: Path) -> set[str]:
    """Every path under ``root`` except the store's index lock (not built from an id)."""
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.name != ".index.lock"}


@pytest.mark.parametrize("value", GOOD_IDS)
def test_check_id_accepts_safe_path_components(value: str) -> None:
    assert check_id(value) == value
    assert is_valid_id(value)


@pytest.mark.parametrize("value", BAD_IDS, ids=repr)
def test_check_id_rejects_unsafe_strings_with_a_message_naming_the_id(value: str) -> None:
    with pytest.raises(InvalidSpec) as info:
        check_id(value)
    assert isinstance(info.value, ValueError)
    assert not is_valid_id(value)
    text = str(info.value)
    assert text.startswith("invalid actor id:")
    if not value:
        assert "empty" in text
    elif len(value) > 128:
        assert repr(value[:20])[:-1] in text and str(len(value)) in text
    else:
        assert repr(value) in text


@pytest.mark.parametrize("value", NON_STRINGS, ids=repr)
def test_check_id_rejects_non_strings_naming_the_value_and_its_type(value: object) -> None:
    with pytest.raises(ValueError) as info:
        check_id(value)
    assert isinstance(info.value, InvalidSpec)
    assert repr(value) in str(info.value)
    assert type(value).__name__ in str(info.value)
    assert not is_valid_id(value)


def test_check_id_names_what_was_checked() -> None:
    with pytest.raises(InvalidSpec, match="invalid system id"):
        check_id("a/b", "system id")


def test_check_id_rejects_one_character_over_the_limit() -> None:
    check_id("a" * 128)
    with pytest.raises(InvalidSpec, match="129 characters"):
        check_id("a" * 129)


def test_check_id_rejects_a_trailing_newline() -> None:
    # re.match with "$" would accept "abc\n"; fullmatch must not.
    with pytest.raises(InvalidSpec):
        check_id("abc\n")


def test_invalid_spec_pickles_with_its_fields() -> None:
    with pytest.raises(InvalidSpec) as info:
        check_id("../x")
    copy = pickle.loads(pickle.dumps(info.value))
    assert isinstance(copy, InvalidSpec)
    assert (copy.what, copy.reason) == (info.value.what, info.value.reason)
    assert str(copy) == str(info.value)


# -- every path-building entry point refuses bad ids ---------------------------------------

@pytest.fixture
def store(tmp_path: Path) -> SessionStore:
    return SessionStore.for_project(tmp_path / "home", tmp_path)


@pytest.mark.parametrize("bad", ["../x", "a/b", ".hidden", ""], ids=repr)
def test_session_store_paths_refuse_bad_ids(store: SessionStore, tmp_path: Path, bad: str) -> None:
    before = files_under(tmp_path)
    with pytest.raises(InvalidSpec):
        store.child_dir("sys", bad)
    with pytest.raises(InvalidSpec):
        store.child_dir(bad, "worker")
    with pytest.raises(InvalidSpec):
        store.mailbox_dir(bad)
    with pytest.raises(InvalidSpec):
        store.mailbox_dir("sys", bad)
    with pytest.raises(InvalidSpec):
        store.session_path("sys", bad)
    with pytest.raises(InvalidSpec):
        store.save_session("sys", bad, {"state": {}})
    with pytest.raises(InvalidSpec):
        store.upsert_child("sys", ChildEntry(id=bad))
    with pytest.raises(InvalidSpec):
        store.upsert_child(bad, ChildEntry(id="worker"))
    with pytest.raises(InvalidSpec):
        store.resolve_child(bad)
    with pytest.raises(InvalidSpec):
        store.remove_child("sys", bad)
    assert files_under(tmp_path) == before


@pytest.mark.parametrize("bad", ["../x", "a/b", ".hidden", ""], ids=repr)
def test_session_store_refuses_a_bad_project_key(tmp_path: Path, bad: str) -> None:
    with pytest.raises(InvalidSpec, match="project key"):
        SessionStore(tmp_path, bad)


@pytest.mark.parametrize("bad", ["../x", "a/b", ".hidden", ""], ids=repr)
def test_fabric_refuses_bad_ids(tmp_path: Path, bad: str) -> None:
    fabric = Fabric(tmp_path / "fabric", clock=lambda: 1000.0)
    before = files_under(tmp_path)
    with pytest.raises(InvalidSpec):
        fabric.publish(AgentRecord(agent_id=bad))
    with pytest.raises(InvalidSpec):
        fabric.resolve(bad)
    with pytest.raises(InvalidSpec):
        fabric.read(bad)
    with pytest.raises(InvalidSpec):
        fabric.withdraw(bad)
    with pytest.raises(InvalidSpec):
        fabric.withdraw(bad, pid=os.getpid())
    assert files_under(tmp_path) == before


def test_fabric_withdraw_cannot_delete_a_file_outside_its_directory(tmp_path: Path) -> None:
    victim = tmp_path / "victim.json"
    victim.write_text("{}")
    fabric = Fabric(tmp_path / "fabric")
    with pytest.raises(InvalidSpec):
        fabric.withdraw("../victim")
    assert victim.exists()


GOOD_ADDRESS = {"home": "/h", "project": "proj-0123abcd", "system": "sys", "name": "worker-1"}


def test_address_from_dict_round_trips_a_good_address() -> None:
    address = Address.from_dict(GOOD_ADDRESS)
    assert address == Address("/h", "proj-0123abcd", "sys", "worker-1")
    assert Address.from_dict(address.to_dict()) == address
    system_inbox = Address.from_dict({**GOOD_ADDRESS, "name": None})
    assert system_inbox.agent_id is None and system_inbox.name == "sys"


@pytest.mark.parametrize("field", ["project", "system", "name"])
@pytest.mark.parametrize("bad", ["../x", "a/b", ".hidden", "", 7], ids=repr)
def test_address_from_dict_refuses_bad_components(field: str, bad: object) -> None:
    with pytest.raises(InvalidSpec):
        Address.from_dict({**GOOD_ADDRESS, field: bad})


@pytest.mark.parametrize(
    "doc",
    [None, [], "x", {"project": "p", "system": "s"}, {"home": "/h", "system": "s"},
     {"home": "", "project": "p", "system": "s"}, {"home": 5, "project": "p", "system": "s"}],
    ids=repr,
)
def test_address_from_dict_refuses_malformed_documents(doc: object) -> None:
    with pytest.raises(InvalidSpec, match="address"):
        Address.from_dict(doc)
