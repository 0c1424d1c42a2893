"""A worker runs the program's main script only when its actor's class is defined there.

Under the fork server (the default start method), multiprocessing would start every
worker by re-running the main script as ``__mp_main__``. A worker whose class lives
in a module is started without it (``runtime.parent.scriptless``); one whose class is
in the script still runs it, and the unguarded-main check still fires for it.
"""

from __future__ import annotations

import inspect
import subprocess
import sys

from actors_runtime.parent import scriptless
from conftest import support_env

# The script marks every run of its top level as __mp_main__ (a worker re-running it)
# with a file named by that process's pid.
MARKING = '''
import os
import sys
from pathlib import Path

if __name__ == "__mp_main__":
    (Path(sys.argv[1]) / str(os.getpid())).write_text("ran")

import sample_actors
from actors import Actor, ActorSystem


class Local(Actor):
    def on_ask(self, question, msg):
        return os.getpid()


if __name__ == "__main__":
    with ActorSystem(home=sys.argv[2], project=sys.argv[3], durability="process") as system:
        cls = Local if sys.argv[4] == "local" else sample_actors.Counter
        first = system.spawn(cls, name="first").ask("pid", timeout=30)
        second = system.spawn(cls, name="second").ask("pid", timeout=30)
        print(first, second)
'''


def _run_marking(tmp_path, home, project, where):
    script, marks = tmp_path / "marking.py", tmp_path / "marks"
    script.write_text(MARKING)
    marks.mkdir()
    result = subprocess.run([sys.executable, str(script), str(marks), str(home), str(project), where],
                            capture_output=True, text=True, env=support_env(), timeout=120)
    assert result.returncode == 0, result.stderr
    pids = [int(pid) for pid in result.stdout.split()]
    return pids, sorted(int(mark.name) for mark in marks.iterdir())


def test_a_worker_of_a_class_from_a_module_does_not_run_the_main_script(tmp_path, home, project):
    pids, marked = _run_marking(tmp_path, home, project, "module")
    assert len(set(pids)) == 2  # two workers answered
    assert marked == []  # and neither re-ran the script


def test_a_worker_of_a_class_defined_in_the_main_script_runs_it(tmp_path, home, project):
    pids, marked = _run_marking(tmp_path, home, project, "local")
    assert sorted(pids) == marked  # each worker ran the script (and found the class there)


UNGUARDED_MODULE_CLASS = '''
import sys
import sample_actors
from actors import ActorSystem

print("top level ran", flush=True)
system = ActorSystem(home=sys.argv[1], project=sys.argv[2], durability="process", start_method="forkserver")
print(system.spawn(sample_actors.Echo, name="echo").ask("hello you", timeout=30))
system.shutdown()
'''


def test_a_script_without_the_main_guard_works_when_its_actor_classes_live_in_modules(tmp_path, home, project):
    script = tmp_path / "unguarded_module_class.py"
    script.write_text(UNGUARDED_MODULE_CLASS)
    result = subprocess.run([sys.executable, str(script), str(home), str(project)], capture_output=True,
                            text=True, env=support_env(), timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["top level ran", "hello you"]  # the top level ran once: here


def test_only_a_class_of_the_main_script_needs_it():
    assert scriptless.needs_main("__main__:Local") and scriptless.needs_main("__mp_main__:Local")
    assert not scriptless.needs_main("sample_actors:Counter")
    assert not scriptless.needs_main("pkg.__main__x:Local")


def test_the_preparation_data_keeps_everything_but_the_main_script(monkeypatch, tmp_path):
    script = tmp_path / "fleet.py"
    script.write_text("")
    main = type(sys)("__main__")
    main.__file__, main.__spec__ = str(script), None
    monkeypatch.setitem(sys.modules, "__main__", main)
    from multiprocessing import spawn

    full = spawn.get_preparation_data("actor-x")
    assert full["init_main_from_path"] == str(script)
    assert scriptless.preparation_data("actor-x") == {k: v for k, v in full.items() if k != "init_main_from_path"}


def test_the_launch_repeats_the_standard_librarys_but_for_the_preparation_data():
    # ScriptlessPopen._launch is popen_forkserver's with the preparation data filtered
    # (and names spelled for the type checker): a Python whose launch differs needs
    # it looked at again, and supported() with it.
    from multiprocessing import popen_forkserver

    def statements(function):
        lines = inspect.getsource(function).replace('"', "'").splitlines()[1:]
        return " ".join(line.split("#")[0].strip() for line in lines if line.split("#")[0].strip())

    respelled = {
        "prep_data = preparation_data(": "prep_data = spawn.get_preparation_data(",
        "context.set_spawning_popen": "set_spawning_popen",
        "fds = self._fds self.sentinel, w = forkserver.connect_to_new_process(fds)":
            "self.sentinel, w = forkserver.connect_to_new_process(self._fds)",
        "parent_w": "_parent_w",
        "_close_fds": "util.close_fds",
    }
    ours = statements(scriptless.ScriptlessPopen._launch)
    for spelled, theirs in respelled.items():
        ours = ours.replace(spelled, theirs)
    assert ours == statements(popen_forkserver.Popen._launch)
    assert scriptless.supported()
