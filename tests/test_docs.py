"""The public namespace documents itself, and the README gives the two set-up commands."""

from __future__ import annotations

import dataclasses
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import actors

ROOT = Path(__file__).resolve().parent.parent


def _own_doc(obj: object) -> str:
    """The docstring written for ``obj`` itself (not inherited, not generated)."""
    doc = obj.__doc__ or ""  # classes do not inherit __doc__; functions have their own
    if inspect.isclass(obj) and dataclasses.is_dataclass(obj) and doc.startswith(f"{obj.__name__}("):
        return ""  # the signature dataclasses writes when the class has no docstring
    return doc.strip()


@pytest.mark.parametrize("name", actors.__all__)
def test_every_public_name_has_a_docstring(name):
    obj = getattr(actors, name)
    # Data aliases (Message = InboxMessage) are checked through the class they name.
    assert inspect.isclass(obj) or inspect.isfunction(obj), f"{name} is neither a class nor a function"
    assert _own_doc(obj), f"actors.{name} has no docstring"


def test_the_public_names_are_sorted_unique_and_importable():
    assert actors.__all__ == sorted(actors.__all__)
    assert len(set(actors.__all__)) == len(actors.__all__)
    for name in actors.__all__:
        assert hasattr(actors, name), name


@pytest.mark.parametrize("cls", [actors.Actor, actors.ActorSystem, actors.ActorRef], ids=lambda c: c.__name__)
def test_every_public_method_of_the_main_classes_has_a_docstring(cls):
    missing = []
    for name, member in vars(cls).items():
        if name.startswith("_"):
            continue
        target = member.fget if isinstance(member, property) else getattr(member, "__func__", member)
        if callable(target) and not (target.__doc__ or "").strip():
            missing.append(name)
    assert not missing, f"{cls.__name__}: no docstring on {missing}"


@pytest.mark.parametrize("hook", ["on_start", "on_stop", "on_failure", "on_task", "on_ask", "on_handoff",
                                  "receive"])
def test_each_actor_hook_says_which_process_runs_it(hook):
    assert "Runs in the worker" in getattr(actors.Actor, hook).__doc__


def test_readme_gives_the_two_setup_commands_and_links_the_guide():
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme
    assert "make test" in readme
    assert "docs/guide.md" in readme and (ROOT / "docs" / "guide.md").is_file()


def test_the_makefile_targets_the_readme_names_exist():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.MULTILINE) and re.search(r"^test:", makefile, re.MULTILINE)
    assert "examples/wordcount.py" in makefile


def _readme_tour() -> str:
    section = (ROOT / "README.md").read_text().split("## A 20-line tour", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_tour_runs_as_a_script_and_prints_what_its_comments_say(tmp_path):
    script = tmp_path / "tour.py"
    script.write_text(_readme_tour())
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "TMPDIR": str(tmp_path)}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["4", "2", "4", "4"]
