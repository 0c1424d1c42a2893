"""Commands that look at a project: ``ps``, ``inbox``, ``dead``, ``gc``, ``rebuild-index``."""

from __future__ import annotations

import os
import time
from typing import Any

import click
from actors_runtime.backends.base import Backend
from actors_runtime.errors import ActorNotFound, StoreError
from actors_runtime.records import EXPLAINED, PAUSED, AgentRecord
from actors_runtime.worker import request_activation
from actors_runtime.worker.pausing import recorded_pause

from .exit_codes import EXIT_NOT_FOUND, CliError
from .processes import elsewhere, live_record, process_matches
from .project import CLI_SENDER, Env, pass_env
from .tables import cell, echo_json, plural, short, table


def status_of(recorded: str, live: bool) -> str:
    """What ``ps`` shows: "running" only with a live lease; a running entry without one is lost."""
    if live:
        return "running"
    if recorded == "running":
        return "lost"
    return recorded or "unknown"


def pending_of(backend: Backend, system_id: str, actor_id: str) -> int | None:
    """Messages not yet acked (None if the actor has no mailbox)."""
    try:
        view = backend.view(backend.address(system_id, actor_id))
    except (ActorNotFound, StoreError):
        return None
    try:
        return view.pending_count()
    except (OSError, StoreError):
        return None
    finally:
        view.close()


def collect_actors(backend: Backend, system: str | None = None, *, pending: bool = True) -> list[dict[str, Any]]:
    """One row per actor of the project (indexed, or live in the fabric), sorted by id
    (``pending=False``: without counting each mailbox; the row's ``pending`` is None)."""
    now = time.time()
    records = {r.agent_id: r for r in backend.fabric.discover()}
    rows: list[dict[str, Any]] = []
    seen = set()
    for system_id, entry in backend.store.all_children():
        seen.add(entry.id)
        if system is None or system_id == system:
            rows.append(_row(backend, system_id, entry.id, entry.actor_class, entry.role,
                             entry.status, entry.restarts, records.get(entry.id), now, entry.last_error, pending))
    for actor_id, record in records.items():
        system_id = record.system_id or ""
        if actor_id in seen or (system is not None and system_id != system):
            continue
        rows.append(_row(backend, system_id, actor_id, record.actor_class, record.role, "", 0, record, now,
                         pending=pending))
    rows.sort(key=lambda row: row["id"])
    return rows


def _row(backend: Backend, system_id: str, actor_id: str, actor_class: str, role: str | None,
         recorded: str, restarts: int, record: AgentRecord | None, now: float,
         last_error: str = "", pending: bool = True) -> dict[str, Any]:
    # A worker on another machine has no process here to look at: its lease says.
    live = record is not None and record.is_live(now) and (elsewhere(record) or process_matches(record))
    status = status_of(recorded, live)
    # A cold actor's session is the authority on a pause (its record may lag).
    pause = recorded_pause(backend.store, system_id, actor_id) if system_id and not live else None
    if pause is not None:
        status, last_error = PAUSED, pause.reason
    return {
        "id": actor_id,
        "system": system_id or None,
        "class": actor_class,
        "role": role,
        "pid": record.pid if live and record else None,
        "host": record.host or None if live and record else None,
        "status": status,
        "pending": pending_of(backend, system_id, actor_id) if system_id and pending else None,
        "restarts": restarts,
        "lease": round(record.lease_expires_at - now, 1) if live and record else None,
        "last_error": (last_error or None) if status in EXPLAINED else None,
    }


@click.command()
@click.option("--json", "as_json", is_flag=True, help="A JSON list of objects.")
@pass_env
def ps(env: Env, as_json: bool) -> None:
    """Live and cold actors of the project.

    HOST is where a running actor's worker runs: the machine, and after a "/" the
    'actors host' that runs it (placed actors). STATUS is "running" only while the
    actor's lease is live and its process exists (on another machine: its lease alone);
    an actor recorded as running without that is "lost" (its worker died
    unsupervised). LEASE is the seconds left on the lease; PENDING counts messages
    not yet acked (new + cur). Below the table, one line per failed actor says why
    it failed ('actors restart ID' brings it back), and one per paused actor why it
    paused ('actors resume ID [--skip]' goes on).

    A project with no actors, or one where none ever ran (nothing under the home
    for this directory), is not an error: the table is its header alone (``[]``
    with --json), and a note on stderr says so and where else to look.
    """
    if not os.path.isdir(env.project):
        raise CliError(f"no such project: {env.project} is not a directory", EXIT_NOT_FOUND)
    backend = env.open()
    rows = collect_actors(backend, env.system if env.system_given else None) if backend.exists() else []
    if as_json:
        echo_json(rows)
        return
    headers = ["ID", "SYSTEM", "CLASS", "ROLE", "HOST", "PID", "STATUS", "PENDING", "RESTARTS", "LEASE"]
    if not rows:
        click.echo(table(headers, []))
        where = f"system {env.system!r} of " if env.system_given else ""
        click.echo(f"no actors in {where}project {env.project} (key {backend.project_key}) under {env.home}; "
                   "'actors projects' lists the projects there", err=True)
        return
    rendered = [[r["id"], cell(r["system"]), cell(r["class"]), cell(r["role"]), cell(r["host"]), cell(r["pid"]),
                 r["status"], cell(r["pending"]), str(r["restarts"]),
                 "-" if r["lease"] is None else f"{r['lease']:.0f}s"] for r in rows]
    click.echo(table(headers, rendered, right=frozenset({5, 7, 8, 9})))
    for r in rows:
        if r["status"] == "failed":
            click.echo(f"{r['id']} failed: {r['last_error'] or 'no reason recorded'}")
        elif r["status"] == PAUSED:
            click.echo(f"{r['id']} paused: {r['last_error'] or 'no reason recorded'} "
                       f"('actors resume {r['id']} [--skip]')")


@click.command()
@click.argument("actor_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Counts and messages as one JSON object.")
@click.option("--limit", type=click.IntRange(min=0), default=20, show_default=True,
              help="At most this many messages (oldest first).")
@pass_env
def inbox(env: Env, actor_id: str, as_json: bool, limit: int) -> None:
    """Counts of new/cur/corrupt/dead and the waiting messages of an actor.

    "new" messages wait to be claimed; "cur" ones are claimed and not yet acked
    (being handled, or left by a crashed activation).
    """
    backend, address = env.locate(actor_id)
    view = backend.view(address)
    try:
        counts = view.counts()
        messages: list[dict[str, Any]] = []
        for state in ("cur", "new"):
            for message in view.peek(state):
                if len(messages) >= limit:
                    break
                messages.append({"box": state, "id": message.id, "kind": message.kind,
                                 "from": message.sender.session_id, "created_at": message.created_at,
                                 "correlation_id": message.correlation_id, "body": message.body})
    finally:
        view.close()
    if as_json:
        echo_json({"id": actor_id, "system": address.system_id, "counts": counts, "messages": messages})
        return
    click.echo(f"{actor_id} (system {address.system_id}): " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if messages:
        click.echo(table(["BOX", "ID", "KIND", "FROM", "CREATED_AT", "BODY"],
                         [[m["box"], m["id"], m["kind"], m["from"], m["created_at"], short(m["body"])]
                          for m in messages]))
    shown, waiting = len(messages), counts["new"] + counts["cur"]
    if shown < waiting:
        click.echo(f"... {waiting - shown} more (--limit)")


@click.command()
@click.argument("actor_id", metavar="ID")
@click.option("--requeue", "msg_id", metavar="MSGID", default=None,
              help="Deliver this dead letter again (same id) instead of listing.")
@click.option("--json", "as_json", is_flag=True, help="A JSON list of objects.")
@pass_env
def dead(env: Env, actor_id: str, msg_id: str | None, as_json: bool) -> None:
    """List an actor's dead letters, or requeue one.

    A message lands in the dead letters after killing the worker ``max_attempts``
    times. A requeued message keeps its id and goes to the back of the queue.
    """
    backend, address = env.locate(actor_id)
    view = backend.view(address)
    try:
        if msg_id is not None:
            found = view.requeue(msg_id)
        else:
            letters = view.dead_letters()
    finally:
        view.close()
    if msg_id is not None:
        if not found:
            raise CliError(f"{actor_id!r} has no dead letter {msg_id!r} (see 'actors dead {actor_id}')",
                           EXIT_NOT_FOUND)
        if live_record(backend, actor_id) is None:
            request_activation(backend, CLI_SENDER, address)
        click.echo(f"requeued {msg_id} to {actor_id!r}")
        return
    rows = [{"id": d.message.id, "kind": d.message.kind, "from": d.message.sender.session_id,
             "reason": d.reason, "attempts": d.attempts, "dead_at": d.dead_at, "body": d.message.body}
            for d in letters]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo(f"no dead letters for {actor_id!r}")
        return
    click.echo(table(["ID", "KIND", "ATTEMPTS", "DEAD_AT", "REASON", "BODY"],
                     [[d["id"], d["kind"], str(d["attempts"]),
                       time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(d["dead_at"])),
                       d["reason"], short(d["body"], 40)] for d in rows],
                     right=frozenset({2})))


@click.command()
@pass_env
def gc(env: Env) -> None:
    """Remove expired and corrupt records from the fabric; prints the removed ids."""
    removed = env.backend().fabric.gc()
    for actor_id in removed:
        click.echo(actor_id)
    click.echo(f"removed {plural(len(removed), 'record')}", err=True)


@click.command("rebuild-index")
@pass_env
def rebuild_index(env: Env) -> None:
    """Regenerate the index and each system's list of children from the sessions."""
    backend = env.backend()
    index = backend.store.rebuild_index()
    per_system: dict[str, int] = {system_id: 0 for system_id in index["roots"]}
    for system_id in index["child_lookup"].values():
        per_system[system_id] = per_system.get(system_id, 0) + 1
    detail = ", ".join(f"{s}: {n}" for s, n in sorted(per_system.items()))
    click.echo(f"rebuilt index of {backend.project_key}: {plural(len(index['child_lookup']), 'actor')} in "
               f"{plural(len(per_system), 'system')}" + (f" ({detail})" if detail else ""))

