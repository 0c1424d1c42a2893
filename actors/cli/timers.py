"""``actors timers [ID]``: the reminders and delayed tells actors keep in their sessions."""

from __future__ import annotations

import time
from typing import Any

import click
from actors_runtime.backends.base import Backend
from actors_runtime.errors import StoreError
from actors_runtime.worker.timers import TimerTable

from .project import Env, pass_env
from .tables import cell, echo_json, short, table


def timer_rows(backend: Backend, system_id: str, actor_id: str) -> list[dict[str, Any]]:
    """One row per reminder and delayed message in the actor's last commit, earliest first."""
    doc = backend.store.load_session(system_id, actor_id)
    if doc is None:
        return []
    found = TimerTable()
    found.load(doc.meta, actor_id)
    return [{"id": actor_id, "system": system_id, **row} for row in found.listing()]


def _when(due: float, now: float) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(due))
    left = due - now
    return f"{stamp} ({'in ' if left >= 0 else ''}{abs(left):.1f}s{' ago' if left < 0 else ''})"


@click.command()
@click.argument("actor_id", metavar="[ID]", required=False)
@click.option("--json", "as_json", is_flag=True, help="A JSON list of objects (due in unix seconds).")
@pass_env
def timers(env: Env, actor_id: str | None, as_json: bool) -> None:
    """Reminders and delayed tells of one actor, or of every actor of the project.

    What the actors last committed: KIND is "reminder" (NAME is its name, PERIOD its
    period in seconds, "-" when it fires once) or "delayed" (a tell with delay= or
    at=; NAME is the message id). A DUE in the past is fired as soon as the actor
    runs (a system activates cold actors whose timers are due).
    """
    if actor_id is not None:
        backend, address = env.locate(actor_id)
        rows = timer_rows(backend, address.system_id, actor_id)
    else:
        backend = env.backend()
        rows = []
        for system_id, entry in backend.store.all_children():
            try:
                rows += timer_rows(backend, system_id, entry.id)
            except StoreError as exc:
                click.echo(f"actors: {entry.id}: cannot read its session: {exc}", err=True)
        rows.sort(key=lambda row: (row["due"], row["id"]))
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo(f"no timers for {actor_id!r}" if actor_id else f"no timers in project {backend.project_key}")
        return
    now = time.time()
    click.echo(table(["ID", "KIND", "NAME", "DUE", "PERIOD", "PAYLOAD"],
                     [[r["id"], r["kind"], r["name"], _when(r["due"], now), cell(r["period"]),
                       short(r["payload"], 40)] for r in rows]))
