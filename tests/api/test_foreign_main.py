"""A program that cannot import an actor's class leaves the actor as it was: its
messages wait for the program that can, and it says why once."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from actors_runtime.address import project_key
from actors_runtime.backends import open_backend
from conftest import support_env

from actors import ActorNotFound, SpawnError

NOTEBOOK = '''
class Notebook(Actor):
    def on_start(self):
        self.state.setdefault("notes", [])

    def on_task(self, body, msg):
        self.state["notes"].append(body)

    def on_ask(self, question, msg):
        return self.state["notes"]
'''

#: The owner: defines the class (in its own main script, or imports it from a
#: module only it has on its path), spawns the actor, later asks it.
OWNER = '''
import json, sys
from actors import Actor, ActorSystem
{definition}

if __name__ == "__main__":
    home, project, step = sys.argv[1:4]
    with ActorSystem(home=home, project=project, durability="process") as system:
        if step == "spawn":
            notebook = system.spawn(Notebook, name="notebook")
            notebook.tell("from the owner")
            notebook.ask("notes")
            notebook.stop()
        else:  # no spawn: the actor is activated from its record by the ask
            print(json.dumps(system.ask("notebook", "notes", timeout=30)))
'''

#: Another program of the same project and system name: it only sends.
OTHER = '''
import json, logging, sys
from actors import ActorSystem

if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    home, project = sys.argv[1:3]
    with ActorSystem(home=home, project=project, durability="process") as system:
        ids = [system.tell("notebook", f"from the other program {n}") for n in range(3)]
        info = system.inspect("notebook")
        print(json.dumps({"ids": ids, "status": info.status, "pending": info.pending}))
'''


def _run(script, *args, path=()):
    env = support_env()
    if path:
        env["PYTHONPATH"] = ":".join([*map(str, path), env["PYTHONPATH"]])
    result = subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True, text=True,
                            env=env, cwd=script.parent, timeout=120)
    assert result.returncode == 0, result.stderr
    return result


def _recorded_status(home, project):
    backend = open_backend("maildir", str(home), project_key(project), "process")
    try:
        return backend.store.child_entry("notebook")[1].status
    finally:
        backend.close()


@pytest.mark.parametrize("where", ["main", "module"])
def test_a_program_that_cannot_import_the_class_leaves_the_actor_and_its_messages_for_the_owner(
        home, project, tmp_path, where):
    owner_dir, other_dir, library = tmp_path / "owner", tmp_path / "other", tmp_path / "library"
    for directory in (owner_dir, other_dir, library):
        directory.mkdir()
    if where == "main":
        definition = NOTEBOOK
    else:  # a module on the owner's path only
        (library / "notebook_module.py").write_text("from actors import Actor\n" + NOTEBOOK)
        definition = "from notebook_module import Notebook"
    owner = owner_dir / "owner.py"
    owner.write_text(textwrap.dedent(OWNER.format(definition=definition)))
    other = other_dir / "other.py"
    other.write_text(textwrap.dedent(OTHER))

    _run(owner, home, project, "spawn", path=[library])
    assert _recorded_status(home, project) == "stopped"

    sent = _run(other, home, project)
    report = json.loads(sent.stdout)
    assert len(report["ids"]) == 3  # every tell succeeded: the messages are on disk
    assert (report["status"], report["pending"]) == ("stopped", 3)
    warnings = [line for line in sent.stderr.splitlines() if "not started by this process" in line]
    assert len(warnings) == 1, sent.stderr  # once per actor, not per message
    assert "notebook" in warnings[0]
    assert ("main script of another program" if where == "main" else "not on this program's path") in warnings[0]
    assert "Traceback" not in sent.stderr
    assert _recorded_status(home, project) == "stopped", "its durable status must be left as it was"

    asked = _run(owner, home, project, "ask", path=[library])
    assert json.loads(asked.stdout) == ["from the owner"] + [f"from the other program {n}" for n in range(3)]


def test_a_spawn_of_a_class_this_program_cannot_import_is_refused_and_records_nothing(system):
    with pytest.raises(SpawnError) as caught:
        system.spawn("__main__:NotDefinedHere", name="stranger")
    assert "main script of another program" in str(caught.value)
    with pytest.raises(SpawnError, match="not on this program's path"):
        system.spawn("no_such_module_anywhere:Thing", name="stranger")
    with pytest.raises(ActorNotFound):
        system.inspect("stranger")  # nothing was recorded, so nothing was marked failed
