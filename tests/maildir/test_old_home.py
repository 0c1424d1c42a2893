"""A home written by the code of 6bc5e4f (before the backend seam) is read by this code.

The fixture (``fixtures/home-6bc5e4f.tar.gz``, made by ``fixtures/make_old_home.py``
with that commit's code) holds stopped actors with work waiting: segments, a Maildir
file, a repeat of a message already applied, a dead letter, a checkpoint of admitted
ids, a live lease record, the indices. The test moves the project to a directory of
its own (a project's files are found by the key of its directory), then runs it.
"""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import pytest
import sample_actors
from actors_runtime.address import project_key
from actors_runtime.backends import open_backend

from actors import ActorSystem

FIXTURE = Path(__file__).parent / "fixtures" / "home-6bc5e4f.tar.gz"


@pytest.fixture
def old_home(tmp_path: Path, project: Path) -> Path:
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(tmp_path / "old", filter="fully_trusted")
    home = tmp_path / "old" / "home"
    made = json.loads((home / "fixture.json").read_text())
    os.rename(home / "projects" / made["project_key"], home / "projects" / project_key(project))
    return home


def test_an_old_project_lists_its_actors_their_statuses_and_dead_letters(old_home, project):
    with ActorSystem(home=old_home, project=project, durability="process") as system:
        assert {c.name: c.status for c in system.children()} == {
            "counter": "stopped", "echo": "stopped", "poison": "stopped"}
        [letter] = system.dead_letters("poison")
        assert letter.message.body == {"die": True}
        assert letter.attempts == 1 and "died while handling" in letter.reason
        info = system.inspect("counter")
        assert (info.pending, info.dead) == (5, 0)  # three logged, one file, one repeat


def test_an_old_actor_resumes_with_its_state_and_handles_what_waited_once(old_home, project):
    with ActorSystem(home=old_home, project=project, durability="process") as system:
        counter = system.spawn(sample_actors.Counter, name="counter")
        # 200 applied before; then 10, 100, 1000 from a segment and 10000 from a
        # Maildir file; the repeat of the first tell is dropped.
        assert counter.ask("count?", timeout=30) == 11310
        assert system.inspect(counter).pending == 0
        poison = system.spawn(sample_actors.Poison, name="poison")
        assert poison.ask("count?", timeout=30) == 0


def test_old_sessions_records_and_indices_read_at_the_storage_level(old_home, project):
    backend = open_backend("maildir", str(old_home), project_key(project), "process")
    try:
        doc = backend.store.load_session("main", "counter")
        assert doc.state == {"count": 200}
        assert len(doc.admitted) >= 200, "ids from the old checkpoint and tail must be remembered"
        assert backend.store.load_session("main", "echo").state == {"told": ["hello"]}
        assert backend.store.resolve_child("echo") == "main"
        record = backend.fabric.resolve("elsewhere")
        assert record is not None and (record.system_id, record.role, record.labels) == ("other", "far", ["x"])
        assert backend.fabric.is_live("elsewhere")
        index = backend.store.rebuild_index()
        assert index["child_lookup"] == {"counter": "main", "echo": "main", "poison": "main"}
    finally:
        backend.close()


def test_a_message_to_an_old_stopped_actor_activates_it_from_its_recorded_spec(old_home, project):
    with ActorSystem(home=old_home, project=project, durability="process") as system:
        system.tell("echo", "again")  # no spawn: the spec recorded by the old code starts it
        # An ask from the same sender is handled after the tell: its answer means the
        # tell was handled (and the stop at shutdown commits it).
        assert system.ask("echo", "ping", timeout=30) == "ping"
        assert system.inspect("echo").status == "running"
    backend = open_backend("maildir", str(old_home), project_key(project), "process")
    try:
        assert backend.store.load_session("main", "echo").state == {"told": ["hello", "again"]}
    finally:
        backend.close()
