"""Commands that act on a worker: ``stop``, ``cancel``, ``kill``, ``restart``, ``resume``;
and ``worker``."""

from __future__ import annotations

import signal
import sys
import tempfile

import click
from actors_runtime.spec import MAX_SPEC_BYTES
from actors_runtime.worker.seed_entry import main as worker_main

from .exit_codes import EXIT_FAILED, EXIT_NOT_RUNNING, EXIT_TIMEOUT, CliError
from .processes import elsewhere, pid_handle, send_signal, wait_exit
from .project import Env, pass_env
from .resumption import resume_actor
from .revival import Revived, revive

#: Seconds ``stop`` and ``kill`` wait for the worker to exit by default.
STOP_TIMEOUT = 10.0
#: Seconds ``restart`` waits for a running system to start the actor by default.
RESTART_TIMEOUT = 30.0


def signal_worker(env: Env, actor_id: str, signum: int, wait: float | None) -> tuple[int, bool]:
    """Signal the worker of a running actor; returns its pid and whether it exited."""
    backend, _ = env.locate(actor_id)
    record = backend.fabric.resolve(actor_id)
    if record is None:
        raise CliError(f"{actor_id!r} is not running", EXIT_NOT_RUNNING)
    if elsewhere(record):  # its pid names a process of that machine, not of this one
        raise CliError(f"{actor_id!r} runs on {record.host} (pid {record.pid}): signal it there, or stop it "
                       "through its system", EXIT_NOT_RUNNING)
    with pid_handle(actor_id, record) as fd:
        try:
            send_signal(fd, record.pid, signum)
        except ProcessLookupError:
            raise CliError(f"{actor_id!r} is not running (pid {record.pid} has exited)", EXIT_NOT_RUNNING) from None
        exited = wait_exit(fd, record.pid, wait) if wait is not None else False
    if exited:
        # A worker that died without withdrawing (SIGKILL) would look alive until its
        # lease ran out; the pid guard leaves a successor's record alone.
        backend.fabric.withdraw(actor_id, pid=record.pid)
    return record.pid, exited


timeout_option = click.option("--timeout", type=click.FloatRange(min=0), default=STOP_TIMEOUT,
                              show_default=True, help="Seconds to wait for the worker to exit.")
wait_option = click.option("--wait/--no-wait", default=True, show_default=True,
                           help="Wait for the worker to exit.")


@click.command()
@click.argument("actor_id", metavar="ID")
@timeout_option
@wait_option
@pass_env
def stop(env: Env, actor_id: str, timeout: float, wait: bool) -> None:
    """Stop a running actor politely (SIGTERM to its worker).

    It finishes its current message, commits, withdraws its record and exits 0;
    unhandled messages stay in its mailbox for the next activation.
    """
    pid, exited = signal_worker(env, actor_id, signal.SIGTERM, timeout if wait else None)
    if not wait:
        click.echo(f"asked {actor_id!r} (pid {pid}) to stop")
    elif exited:
        click.echo(f"stopped {actor_id!r} (pid {pid})")
    else:
        raise CliError(f"{actor_id!r} (pid {pid}) still runs {timeout} s after SIGTERM (it finishes "
                       "its current message first; 'actors kill' forces it)", EXIT_TIMEOUT)


@click.command()
@click.argument("actor_id", metavar="ID")
@pass_env
def cancel(env: Env, actor_id: str) -> None:
    """Interrupt the handler a running actor is in (SIGUSR1 to its worker).

    The handler sees ``Cancelled``, its message is acked, and an asker gets
    ``Cancelled``. An idle actor ignores it.
    """
    pid, _ = signal_worker(env, actor_id, signal.SIGUSR1, None)
    click.echo(f"cancel sent to {actor_id!r} (pid {pid})")


@click.command()
@click.argument("actor_id", metavar="ID")
@timeout_option
@pass_env
def kill(env: Env, actor_id: str, timeout: float) -> None:
    """Kill a running actor's worker (SIGKILL).

    Nothing is lost: the message it was handling is redelivered at the next
    activation (and not counted as a poison attempt). A supervising system sees a
    crash and restarts it per its restart policy.
    """
    pid, exited = signal_worker(env, actor_id, signal.SIGKILL, timeout)
    if not exited:
        raise CliError(f"{actor_id!r} (pid {pid}) did not exit within {timeout} s of SIGKILL", EXIT_TIMEOUT)
    backend, address = env.locate(actor_id)
    view = backend.view(address)
    try:
        view.forget_inflight()
    finally:
        view.close()
    click.echo(f"killed {actor_id!r} (pid {pid})")


@click.command()
@click.argument("actor_id", metavar="ID")
@click.option("--timeout", type=click.FloatRange(min=0), default=RESTART_TIMEOUT, show_default=True,
              help="Seconds to wait for a running system to start it.")
@wait_option
@pass_env
def restart(env: Env, actor_id: str, timeout: float, wait: bool) -> None:
    """Bring back an actor that was marked failed (or start a stopped one).

    If its system runs, the system is asked to start it now (its failure and recent
    deaths forgotten) and this waits until it runs or fails again. If its system
    does not run, its recorded status is reset from failed to stopped, and its
    system starts it when it next runs. A running actor is left alone. An actor
    placed on a pool is started again by the host that owns it, whether or not its
    system runs (exit 6 when no live host of the pool runs it).
    """
    outcome = revive(env, actor_id, timeout if wait else None)
    if outcome.state == Revived.FAILED_AGAIN:
        raise CliError(f"{actor_id!r} failed again: {outcome.error}", EXIT_FAILED)
    if outcome.state == Revived.NOT_YET:
        raise CliError(f"{actor_id!r} did not start within {timeout} s; {outcome.asked} was asked to start it "
                       "('actors ps' shows how it goes)", EXIT_TIMEOUT)
    if outcome.state == Revived.REFUSED:
        raise CliError(f"{outcome.asked} did not restart {actor_id!r}: {outcome.error}", EXIT_NOT_RUNNING)
    click.echo(outcome.text)


@click.command()
@click.argument("actor_id", metavar="ID")
@click.option("--skip", is_flag=True, help="Move the message it is paused at to the dead letters and go on.")
@click.option("--timeout", type=click.FloatRange(min=0), default=RESTART_TIMEOUT, show_default=True,
              help="Seconds to wait for a running system to lift the pause.")
@wait_option
@pass_env
def resume(env: Env, actor_id: str, skip: bool, timeout: float, wait: bool) -> None:
    """Resume a paused actor: try the message it is paused at again, or --skip it.

    Without --skip the message's poison attempts are forgotten and it is handled
    again (if it kills the worker max_attempts times again, the actor pauses again).
    With --skip it is moved to the dead letters (an asker gets an error reply) and
    the actor goes on with the next message. If its system runs, the system is asked
    to do it and this waits until the pause is lifted; if not, it is done on disk now
    and the system handles the actor's messages when it next runs. An actor placed
    on a pool is resumed by the host that owns it, whether or not its system runs
    (exit 6 when no live host of the pool runs it). An actor that is not paused is
    an error (exit code 10); nothing is changed.
    """
    click.echo(resume_actor(env, actor_id, skip, timeout if wait else None))


@click.command()
@click.option("--actor-class", default=None, metavar="MODULE:QUALNAME",
              help="The actor class to run when the spec names none (a bamboo-subagent spec cannot).")
@click.pass_context
def worker(ctx: click.Context, actor_class: str | None) -> None:
    """A seed-protocol worker: reads one ProvisionSpec JSON line on stdin, then serves.

    The spec may also be bamboo-subagent's ProvisionSpec (one JSON document, then
    EOF): see "Compatibility with bamboo-subagent" in the guide. Control arrives as
    signals: SIGTERM stops, SIGUSR1 cancels. Exits with the worker's codes: 0 clean
    stop, 2 bad spec, 3 activation failed, 70 internal. (The same as
    ``python -m actors_runtime.worker``.)
    """
    stdin = sys.stdin
    try:
        stdin.fileno()
        real = True
    except (AttributeError, OSError, ValueError):
        real = False
    if real:
        ctx.exit(worker_main(actor_class=actor_class))
    # An in-memory stdin (embedding, CliRunner): hand the worker a real file with the same bytes.
    data = stdin.buffer.read(MAX_SPEC_BYTES + 2) if hasattr(stdin, "buffer") else b""
    with tempfile.TemporaryFile() as spool:
        spool.write(data)
        spool.seek(0)
        code = worker_main(spool, actor_class=actor_class)
    ctx.exit(code)
