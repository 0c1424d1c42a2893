"""runtime.ids: the one id validator, and every entry point that builds a path (or an
address) from an id: the maildir layout, fabric and store, each backend's addresses,
fabric and store, Address.from_dict, and ActorSystem.spawn/ref."""

from __future__ import annotations

import inspect
import os
import pickle
from pathlib import Path
from typing import Callable, Iterator

import pytest
import sample_actors
from actors_runtime.address import Address, project_key
from actors_runtime.backends import open_backend
from actors_runtime.backends.base import Backend
from actors_runtime.backends.maildir import MaildirBackend
from actors_runtime.backends.maildir.fabric import MaildirFabric
from actors_runtime.backends.maildir.layout import ProjectLayout
from actors_runtime.backends.maildir.store import MaildirStore
from actors_runtime.backends.memory import forget_all
from actors_runtime.errors import InvalidSpec
from actors_runtime.ids import check_id, is_valid_id
from actors_runtime.messages import AgentRef, InboxMessage
from actors_runtime.records import AgentRecord, ChildEntry

from actors import ActorSystem

BAD_IDS = ["../x", "a/b", ".hidden", "", "x" * 200, "a\x00b", "-lead", "a b", "/abs", "..", "é"]
NON_STRINGS = [None, 5, 1.5, b"bytes", ["a"], {"a": 1}]
GOOD_IDS = ["worker-1", "A.b_c", "0", "x" * 128, "a..b", "z-", "Worker_9.v2"]


def accepted(*calls: Callable[[], object]) -> list[str]:
    """The calls among ``calls`` that did not raise InvalidSpec, as source text (want: none)."""
    return [inspect.getsource(call).strip() for call in calls if not _refused(call)]


def _refused(call: Callable[[], object]) -> bool:
    try:
        call()
    except InvalidSpec:
        return True
    return False


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

BAD = ["../x", "a/b", ".hidden", ""]


@pytest.fixture
def maildir(tmp_path: Path) -> Iterator[MaildirBackend]:
    """A maildir project, created (its fabric and sessions directories exist)."""
    backend = open_backend("maildir", str(tmp_path / "home"), project_key(tmp_path), "process")
    backend.ensure_project(str(tmp_path))
    yield backend
    backend.close()


@pytest.mark.parametrize("bad", BAD, ids=repr)
def test_project_layout_paths_refuse_bad_ids(maildir: MaildirBackend, tmp_path: Path, bad: str) -> None:
    layout = maildir.layout
    before = files_under(tmp_path)
    assert accepted(
        lambda: layout.child_dir("sys", bad),
        lambda: layout.child_dir(bad, "worker"),
        lambda: layout.system_dir(bad),
        lambda: layout.system_lock(bad),
        lambda: layout.children_dir(bad),
        lambda: layout.children_json(bad),
        lambda: layout.mailbox(bad),
        lambda: layout.mailbox("sys", bad),
        lambda: layout.actor_file("sys", bad, "session.json"),
        lambda: layout.actor_file(bad, None, "session.json"),
        lambda: layout.record(bad),
    ) == []
    assert files_under(tmp_path) == before


@pytest.mark.parametrize("bad", BAD, ids=repr)
def test_maildir_store_refuses_bad_ids(maildir: MaildirBackend, tmp_path: Path, bad: str) -> None:
    store = MaildirStore(maildir.layout, "process")
    before = files_under(tmp_path)
    assert accepted(
        lambda: store.session("sys", bad),
        lambda: store.session(bad, "worker"),
        lambda: store.load_session("sys", bad),
        lambda: store.save_system(bad, {"name": bad}),
        lambda: store.lock_system(bad),
        lambda: store.remove_system(bad),
        lambda: store.record_children("sys", [ChildEntry(id=bad)]),
        lambda: store.record_children(bad, [ChildEntry(id="worker")]),
        lambda: store.list_children(bad),
        lambda: store.resolve_child(bad),
        lambda: store.child_entry(bad),
        lambda: store.locate(bad),
        lambda: store.remove_child("sys", bad),
        lambda: store.remove_child(bad, "worker"),
    ) == []
    assert files_under(tmp_path) == before


@pytest.mark.parametrize("bad", BAD, ids=repr)
def test_maildir_mailboxes_refuse_addresses_with_bad_ids(maildir: MaildirBackend, tmp_path: Path,
                                                         bad: str) -> None:
    # An Address built by hand skips from_dict's checks: the backend checks again
    # before the address becomes a path.
    message = InboxMessage.create(AgentRef(session_id="sys"), "task", {})
    before = files_under(tmp_path)
    for address in (Address(maildir.location, maildir.project_key, "sys", bad),
                    Address(maildir.location, maildir.project_key, bad, "worker"),
                    Address(maildir.location, maildir.project_key, bad, None)):
        assert accepted(
            lambda: maildir.mailbox(address, create=True),
            lambda: maildir.view(address),
            lambda: maildir.deliver(address, [message]),
        ) == []
        if address.actor_id is not None:
            with pytest.raises(InvalidSpec):
                maildir.provision(address, 10)
    assert files_under(tmp_path) == before


@pytest.mark.parametrize("bad", BAD, ids=repr)
def test_a_bad_project_key_is_refused_by_every_backend(tmp_path: Path, bad: str) -> None:
    with pytest.raises(InvalidSpec, match="project key"):
        ProjectLayout(str(tmp_path), bad)
    with pytest.raises(InvalidSpec, match="project key"):
        open_backend("maildir", str(tmp_path), bad, "process")
    try:
        with pytest.raises(InvalidSpec, match="project key"):
            open_backend("memory://ids", str(tmp_path), bad, "process")
    finally:
        forget_all()
    assert files_under(tmp_path) == set()


def test_fabric_withdraw_cannot_delete_a_file_outside_its_directory(tmp_path: Path) -> None:
    victim = tmp_path / "victim.json"
    victim.write_text("{}")
    fabric = MaildirFabric(tmp_path / "fabric")
    with pytest.raises(InvalidSpec):
        fabric.withdraw("../victim")
    assert victim.exists()


# -- the same promises through the seam, on every backend -----------------------------------


def _address_calls(backend: Backend, bad: str) -> None:
    assert accepted(
        lambda: backend.address(bad),
        lambda: backend.address(bad, "worker"),
        lambda: backend.address("sys", bad),
    ) == []


@pytest.mark.parametrize("bad", BAD, ids=repr)
def test_backend_addresses_refuse_bad_ids(backend: Backend, tmp_path: Path, bad: str) -> None:
    before = files_under(tmp_path)
    _address_calls(backend, bad)
    assert files_under(tmp_path) == before


@pytest.mark.parametrize("bad", BAD, ids=repr)
def test_backend_fabrics_refuse_bad_ids(backend: Backend, tmp_path: Path, bad: str) -> None:
    backend.fabric.publish(AgentRecord(agent_id="good"), 60.0)
    before = files_under(tmp_path)
    fabric = backend.fabric
    assert accepted(
        lambda: fabric.publish(AgentRecord(agent_id=bad), 60.0),
        lambda: fabric.renew(AgentRecord(agent_id=bad), 60.0),
        lambda: fabric.read(bad),
        lambda: fabric.resolve(bad),
        lambda: fabric.is_live(bad),
        lambda: fabric.withdraw(bad),
        lambda: fabric.withdraw(bad, pid=os.getpid()),
    ) == []
    assert [r.agent_id for r in fabric.discover()] == ["good"]
    assert files_under(tmp_path) == before


@pytest.mark.parametrize("bad", BAD, ids=repr)
def test_backend_stores_refuse_bad_actor_ids(backend: Backend, tmp_path: Path, bad: str) -> None:
    store = backend.store
    before = files_under(tmp_path)
    assert accepted(
        lambda: store.session("sys", bad),
        lambda: store.load_session("sys", bad),
        lambda: store.record_children("sys", [ChildEntry(id=bad)]),
        lambda: store.resolve_child(bad),
        lambda: store.child_entry(bad),
        lambda: store.locate(bad),
    ) == []
    assert store.list_children("sys") == [] and store.systems() == []
    assert files_under(tmp_path) == before


@pytest.mark.parametrize("bad", BAD, ids=repr)
def test_backend_stores_refuse_bad_system_ids(backend: Backend, tmp_path: Path, bad: str) -> None:
    store = backend.store
    before = files_under(tmp_path)
    assert accepted(
        lambda: store.session(bad, "worker"),
        lambda: store.save_system(bad, {"name": bad}),
        lambda: store.lock_system(bad),
        lambda: store.record_children(bad, [ChildEntry(id="worker")]),
        lambda: store.list_children(bad),
        lambda: store.remove_system(bad),
    ) == []
    assert store.systems() == [] and store.resolve_child("worker") is None
    assert files_under(tmp_path) == before


# -- the public API ---------------------------------------------------------------------------


@pytest.mark.parametrize("bad", BAD, ids=repr)
def test_actor_system_spawn_and_ref_refuse_bad_ids(system: ActorSystem, tmp_path: Path, bad: str) -> None:
    before = files_under(tmp_path)
    assert accepted(
        lambda: system.spawn(sample_actors.Counter, name=bad),
        lambda: system.ref(bad),
        lambda: system.tell(bad, {"n": 1}),
    ) == []
    assert system.children() == []
    assert files_under(tmp_path) == before


@pytest.mark.parametrize("bad", BAD, ids=repr)
def test_actor_system_refuses_a_bad_system_name(home: Path, project: Path, bad: str) -> None:
    with pytest.raises(InvalidSpec, match="system name"):
        ActorSystem(home=home, project=project, name=bad, durability="process")
    assert list(home.iterdir()) == []


GOOD_ADDRESS = {"home": "/h", "project": "proj-0123abcd", "system": "sys", "name": "worker-1"}


def test_address_from_dict_round_trips_a_good_address() -> None:
    address = Address.from_dict(GOOD_ADDRESS)
    assert address == Address("/h", "proj-0123abcd", "sys", "worker-1")
    assert Address.from_dict(address.to_dict()) == address
    system_inbox = Address.from_dict({**GOOD_ADDRESS, "name": None})
    assert system_inbox.actor_id is None and system_inbox.name == "sys"


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
