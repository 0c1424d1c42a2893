"""``actors projects``: every project under the home.

Projects are keyed by their directory (``--project``, default the current one), so
a user in the wrong directory sees "no actors"; this lists what the home holds:
each project's key, the directory it belongs to, its actors and systems, and which
of its systems run now.
"""

from __future__ import annotations

import os
from typing import Any

import click
from actors_runtime.backend_url import parse_backend
from actors_runtime.backends import open_backend
from actors_runtime.backends.maildir.projects import ProjectSeen, list_projects
from actors_runtime.errors import StoreError

from .exit_codes import EXIT_USAGE, CliError
from .project import Env, pass_env
from .tables import echo_json, table


def count_actors(env: Env, key: str) -> int | None:
    """Actors of the project: indexed, plus live records the index does not list
    (None when its files cannot be read)."""
    backend = open_backend(env.backend_name, env.home, key, "machine")
    try:
        ids = {entry.id for _, entry in backend.store.all_children()}
        ids.update(record.agent_id for record in backend.fabric.discover())
    except (StoreError, OSError):
        return None
    finally:
        backend.close()
    return len(ids)


def describe(env: Env, project: ProjectSeen) -> dict[str, Any]:
    """One project as ``--json`` shows it."""
    running = [{"system": s.system_id, "pid": s.running_pid} for s in project.systems
               if s.running_pid is not None]
    return {
        "key": project.key,
        "directory": project.workspace or None,
        "directory_exists": bool(project.workspace) and os.path.isdir(project.workspace),
        "current": project.key == env.key,
        "actors": count_actors(env, project.key),
        "systems": [s.system_id for s in project.systems],
        "running": running,
        "created_at": project.created_at,
        "problem": project.problem or None,
    }


@click.command()
@click.option("--json", "as_json", is_flag=True, help="A JSON list of objects.")
@pass_env
def projects(env: Env, as_json: bool) -> None:
    """Every project under the home: its key, directory, actors, systems, which run.

    A project belongs to the directory it was made for (--project, default the
    current one). RUNNING names the systems whose lock a process holds now, with its
    pid. A directory that no longer exists is marked "(gone)". An empty home prints
    the header alone ([] with --json) and a note on stderr.
    """
    name, _ = parse_backend(env.backend_name)
    if name != "maildir":
        raise CliError(f"'projects' lists the projects kept on disk under a home; backend {name!r} "
                       "keeps none there", EXIT_USAGE)
    rows = [describe(env, project) for project in list_projects(env.home)]
    if as_json:
        echo_json(rows)
        return
    headers = ["KEY", "DIRECTORY", "ACTORS", "SYSTEMS", "RUNNING"]
    rendered = []
    for row in rows:
        directory = row["directory"] or f"- ({row['problem']})"
        if row["directory"] and not row["directory_exists"]:
            directory += " (gone)"
        running = ", ".join(f"{r['system']} (pid {r['pid']})" for r in row["running"]) or "-"
        rendered.append([row["key"], directory, "?" if row["actors"] is None else str(row["actors"]),
                         ",".join(row["systems"]) or "-", running])
    click.echo(table(headers, rendered, right=frozenset({2})))
    if not rows:
        click.echo(f"no projects under {env.home}: no actor ever ran with this home", err=True)
