"""What the installed distribution claims: its import names, its typing marker, its logging."""

from __future__ import annotations

import importlib.metadata
import logging
import os
import subprocess
import sys
from pathlib import Path

import actors_runtime

import actors


def test_the_distribution_claims_only_import_names_no_user_module_can_have_by_accident():
    top_level = importlib.metadata.distribution("durable-actors").read_text("top_level.txt") or ""
    assert sorted(top_level.split()) == ["actors", "actors_runtime"]


def _import_actors_from(directory: Path) -> subprocess.CompletedProcess[str]:
    code = "import actors\nfrom actors import ActorSystem\nprint(ActorSystem.__module__)"
    return subprocess.run([sys.executable, "-c", code], cwd=directory, capture_output=True, text=True,
                          timeout=60)


def test_a_users_own_runtime_module_does_not_break_import_actors(tmp_path):
    (tmp_path / "runtime.py").write_text("raise ImportError('the user\\'s own runtime module')\n")
    result = _import_actors_from(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "actors._system"


def test_a_users_own_runtime_package_does_not_break_import_actors(tmp_path):
    package = tmp_path / "runtime"
    package.mkdir()
    (package / "__init__.py").write_text("WORKER = 'the user\\'s own'\n")
    (package / "worker.py").write_text("raise ImportError('not the actors worker')\n")
    result = _import_actors_from(tmp_path)
    assert result.returncode == 0, result.stderr


def test_both_packages_ship_a_py_typed_marker():
    for package in (actors, actors_runtime):
        assert (Path(package.__file__).parent / "py.typed").is_file()


def test_the_libraries_loggers_have_a_null_handler_and_no_other():
    for name in ("actors", "actors_runtime"):
        handlers = logging.getLogger(name).handlers
        assert any(isinstance(h, logging.NullHandler) for h in handlers)
        assert all(isinstance(h, logging.NullHandler) for h in handlers)


def test_the_worker_runs_as_python_dash_m_actors_runtime_worker(tmp_path):
    result = subprocess.run([sys.executable, "-m", "actors_runtime.worker"], input=b"{}\n",
                            capture_output=True, cwd=tmp_path, timeout=60)
    assert result.returncode == 2  # a spec without ids: refused as a bad spec
    assert b"invalid" in result.stderr


def test_both_packages_pass_mypy_strict(tmp_path):
    """``make typecheck``, run here: mypy cannot follow the editable install's import
    hook, so it reads the two packages under their installed names through links."""
    repo = Path(actors.__file__).parent.parent
    (tmp_path / "actors").symlink_to(repo / "actors")
    (tmp_path / "actors_runtime").symlink_to(repo / "runtime")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / ".mypy_cache"),
         "-p", "actors", "-p", "actors_runtime"],
        cwd=tmp_path, env={**os.environ, "MYPYPATH": str(tmp_path)}, capture_output=True, text=True,
        timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_worker_imports_the_actor_api_without_the_parents_machinery():
    # What the fork server preloads for every worker: Actor, not ActorSystem and the
    # supervisor, pool, monitor and inbox behind it (time and memory in each worker);
    # of the parent's side only the class a worker started without the main script
    # unpickles (scriptless), which imports nothing of ours.
    code = ("import sys, actors, actors_runtime.worker.pipe_entry, actors_runtime.backends.maildir\n"
            "import actors_runtime.parent.scriptless\n"
            "print(sorted(m for m in sys.modules if m.startswith(('actors_runtime.parent', 'actors._system'))))\n"
            "from actors import ActorSystem, ActorInfo, ChildInfo\n"
            "print(ActorSystem.__module__, 'ActorSystem' in dir(actors))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["['actors_runtime.parent', 'actors_runtime.parent.scriptless']",
                                        "actors._system True"]


def test_setup_cfg_lists_every_package_so_a_wheel_holds_every_module_and_the_dashboards_files():
    import configparser

    root = Path(__file__).resolve().parents[2]
    config = configparser.ConfigParser()
    config.read(root / "setup.cfg")
    listed = set(config["options"]["packages"].split())
    found = set()
    for top, name in (("actors", "actors"), ("runtime", "actors_runtime")):
        for directory, _, files in os.walk(root / top):
            if "__pycache__" not in directory and any(f.endswith(".py") for f in files):
                relative = Path(directory).relative_to(root / top).parts
                found.add(".".join((name, *relative)))
    assert listed == found, f"setup.cfg [options] packages: add {sorted(found - listed)}, drop {sorted(listed - found)}"
    assert "static/*" in config["options.package_data"]["actors.cli"]
    assert {p.name for p in (root / "actors" / "cli" / "static").iterdir()} >= {
        "dashboard.html", "dashboard.js", "dashboard.css"}
