"""Commands that send: ``tell`` (straight into the mailbox) and ``ask`` (through a
short-lived system of this process)."""

from __future__ import annotations

import json
import os

import click
from actors_runtime.errors import AskTimeout
from actors_runtime.messages import InboxKind, InboxMessage
from actors_runtime.worker import request_activation

from .._codec import encode
from .._ref import ActorRef
from .._system import ActorSystem
from .exit_codes import EXIT_TIMEOUT, CliError
from .project import CLI_SENDER, Env, pass_env
from .reachability import reach, refuse_ask, tell_note
from .tables import parse_json


@click.command()
@click.argument("actor_id", metavar="ID")
@click.argument("payload", metavar="JSON")
@pass_env
def tell(env: Env, actor_id: str, payload: str) -> None:
    """Deliver JSON to an actor's mailbox as a task (durable when this returns).

    Works whether or not the actor runs: a message to a stopped actor waits in its
    mailbox and is handled at its next activation (its system, if running, is asked
    to activate it now). Prints the message id.
    """
    body = parse_json(payload, "the message")
    backend, address = env.locate(actor_id)
    message = InboxMessage.create(CLI_SENDER, InboxKind.TASK.value, body)
    backend.deliver(address, [message])
    seen = reach(env, backend, address)
    if seen.worker_pid is not None:
        click.echo(f"sent {message.id} to {actor_id!r} (running, pid {seen.worker_pid})")
        return
    request_activation(backend, CLI_SENDER, address)
    click.echo(f"queued {message.id} for {actor_id!r}: {tell_note(actor_id, address.system_id, seen)}")


@click.command()
@click.argument("actor_id", metavar="ID")
@click.argument("question", metavar="JSON")
@click.option("--timeout", type=click.FloatRange(min=0), default=30.0, show_default=True,
              help="Seconds to wait for the answer.")
@click.option("--mode", type=click.Choice(["query", "steer"]), default="query", show_default=True,
              help="query: state changes made while answering are discarded; steer: they persist.")
@pass_env
def ask(env: Env, actor_id: str, question: str, timeout: float, mode: str) -> None:
    """Ask an actor and print its answer as JSON.

    The actor must be running, or be activated by its own running system. When
    nothing can answer (no worker, and its system does not run or has it marked
    failed), this fails at once and sends nothing. The reply comes back through a
    short-lived system of this process ("cli-<pid>-<hex>"), removed afterwards.
    """
    value = parse_json(question, "the question")
    backend, address = env.locate(actor_id)
    seen = reach(env, backend, address)
    refused = refuse_ask(actor_id, address.system_id, seen)
    if refused is not None:
        raise refused
    running = seen.worker_pid is not None
    if not running:
        request_activation(backend, CLI_SENDER, address)
    name = f"cli-{os.getpid()}-{os.urandom(3).hex()}"
    system = ActorSystem(env.home, project=env.project, name=name, backend=env.backend_name)
    try:
        try:
            answer = system.ask(ActorRef(address, system), value, timeout=timeout, mode=mode)
        except AskTimeout as exc:
            note = "" if running else (f"; {actor_id!r} is not running, so the question waits in its "
                                       "mailbox for its next activation")
            raise CliError(f"{exc}{note}", EXIT_TIMEOUT) from None
    finally:
        system.shutdown()
        # The reply system was only ours: it would otherwise collect in the project.
        backend.store.remove_system(name)
    click.echo(json.dumps(encode(answer), ensure_ascii=False))
