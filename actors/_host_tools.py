"""Host tools: functions a system exposes that its actors call synchronously.

::

    actor: self.call_host(name, **kw) -> mcp_request to the system's inbox -> waits
    system (inbox thread): serve() -> a thread of a small pool runs fn(**kw)
                           -> mcp_reply to the actor's mailbox

Credentials and connections stay in the parent; arguments and results travel as
JSON. A request that arrives again (the actor's handler ran again after a crash,
with the same derived id) gets the first answer again, and one still running is
not started twice. The system's own tools (nested spawn, control, activation) are
served here too, under reserved names (activation and ``actors restart`` need no
reply and are handled on the inbox thread; ``actors resume`` needs none either, and
runs on the pool: it may wait for a worker to let go of a mailbox).
"""

from __future__ import annotations

import collections
import logging
import threading
import traceback
from typing import TYPE_CHECKING, Any, Callable

from actors_runtime import control
from actors_runtime.backends.base import Backend
from actors_runtime.errors import ActorError, ActorNotFound, InvalidSpec, SpawnError, StoreError
from actors_runtime.foreign import Undeliverable, reply_target
from actors_runtime.ids import is_valid_id
from actors_runtime.messages import AgentRef, InboxKind, InboxMessage, ReplyBody, derived_msg_id, reply_error
from actors_runtime.parent.activation import ensure_active, revive
from actors_runtime.parent.placed import placement, restart_on_host
from actors_runtime.spec import Limits
from actors_runtime.threads import QuietExecutor

from . import _crate_mcp as crate_mcp
from ._codec import decode, encode, imported_type
from ._crate_mcp import describe_tool
from ._ref import ActorRef

if TYPE_CHECKING:
    from ._system import ActorSystem

log = logging.getLogger(__name__)

#: Replies remembered per request id, to answer a re-sent request again.
HOST_REPLY_MEMORY = 1024
#: Options a nested spawn may pass on.
SPAWN_OPTIONS = frozenset({"role", "labels", "restart", "idle_timeout", "handler_timeout", "max_attempts",
                           "retries", "retry_backoff", "retry_on", "max_pending", "timeout", "secrets",
                           "on_poison", "mailbox"})


class HostTools:
    """The tools of one system, and the requests for them."""

    def __init__(self, system: "ActorSystem", backend: Backend, sender: AgentRef) -> None:
        self._system = system
        self._backend = backend
        self._sender = sender
        self._tools: dict[str, Callable[..., Any]] = {}
        self._replies: collections.OrderedDict[str, InboxMessage] = collections.OrderedDict()
        self._busy: set[str] = set()
        self._lock = threading.Lock()
        self._executor = QuietExecutor(max_workers=8, thread_name_prefix=f"actors-host-{system.name}")

    def expose(self, name: str, fn: Callable[..., Any]) -> None:
        if not isinstance(name, str) or not name or name.startswith(control.RESERVED_TOOL_PREFIX):
            raise InvalidSpec("tool name", f"{name!r} is empty or reserved")
        if not callable(fn):
            raise InvalidSpec("tool", f"{fn!r} is not callable")
        with self._lock:
            self._tools[name] = fn

    def serve(self, message: InboxMessage) -> None:
        """Handle one ``mcp_request`` (on the inbox thread: the work goes to the pool)."""
        body = message.body if isinstance(message.body, dict) else {}
        if "op" in body:  # the crate's McpRequest ({"op": "manifest"} or "call")
            self._serve_crate(message, body)
            return
        tool, arguments = body.get("tool"), body.get("arguments") or {}
        if tool in (control.ACTIVATE_TOOL, control.RESTART_TOOL):
            name = arguments.get("name") if isinstance(arguments, dict) else None
            if isinstance(name, str) and is_valid_id(name):
                system = self._system
                address = self._backend.address(system.name, name)
                if tool == control.RESTART_TOOL and placement(self._backend, address) is not None:
                    try:  # its host starts it, and may take a while: not on the inbox thread
                        self._executor.submit(self._restart_placed, name)
                    except RuntimeError:  # shut down
                        pass
                    return
                bring_up = revive if tool == control.RESTART_TOOL else ensure_active
                bring_up(system._supervisor, address)
            return
        if tool == control.RESUME_TOOL:
            name = arguments.get("name") if isinstance(arguments, dict) else None
            if isinstance(name, str) and is_valid_id(name):
                skip = bool(arguments.get("skip"))
                try:
                    self._executor.submit(self._resume, name, skip)
                except RuntimeError:  # shut down: the pause stands
                    pass
            return
        with self._lock:
            cached = self._replies.get(message.id)
            if cached is None and message.id in self._busy:
                return  # a re-sent request whose first copy is still running
            if cached is None:
                self._busy.add(message.id)
        if cached is not None:
            self._reply(message, cached)
            return
        try:
            self._executor.submit(self._run, message, str(tool), arguments)
        except RuntimeError:  # shut down
            with self._lock:
                self._busy.discard(message.id)

    def _resume(self, name: str, skip: bool) -> None:
        """``actors resume`` through this system (nobody waits for an answer: the CLI
        watches the actor's session). A placed actor is resumed by its host."""
        system = self._system
        try:
            system.resume(name, skip)
        except (ActorError, OSError) as exc:
            log.warning("system %s: could not resume %s: %s", system.name, name, exc)

    def _restart_placed(self, name: str) -> None:
        """A restart request for a placed actor: its host starts it (nobody waits for
        an answer: the asker watches the actor's records)."""
        system = self._system
        address = self._backend.address(system.name, name)
        try:
            pool = placement(self._backend, address)
            if pool is None:
                return
            host, answer = restart_on_host(self._backend, pool, address, system.spawn_timeout)
            if answer is not None and not answer.get("ok"):
                log.warning("system %s: host %s did not restart %s: %s", system.name, host, name, answer.get("error"))
        except (ActorError, OSError) as exc:
            log.warning("system %s: could not restart %s: %s", system.name, name, exc)

    def _run(self, message: InboxMessage, tool: str, arguments: Any) -> None:
        try:
            reply = ReplyBody(answer=encode(self._call(message, tool, arguments)))
        except BaseException as exc:  # reported to the caller, never lost here
            reply = ReplyBody(error=reply_error(exc, traceback.format_exc()))
        answer = InboxMessage.create(self._sender, InboxKind.MCP_REPLY.value, reply.to_body(),
                                     msg_id=derived_msg_id(message.id, 0), correlation_id=message.id,
                                     traceparent=message.traceparent)
        with self._lock:
            self._busy.discard(message.id)
            self._replies[message.id] = answer
            while len(self._replies) > HOST_REPLY_MEMORY:
                self._replies.popitem(last=False)
        self._reply(message, answer)

    def _call(self, message: InboxMessage, tool: str, arguments: Any) -> Any:
        if not isinstance(arguments, dict):
            raise InvalidSpec("host tool arguments", "must be an object")
        system = self._system
        if tool == control.SPAWN_TOOL:
            return self._spawn_for(message.sender.session_id, arguments)
        if tool == control.CONTROL_TOOL:
            action, name = arguments.get("action"), arguments.get("name")
            if not isinstance(name, str):
                raise InvalidSpec("control target", f"{name!r} is not an actor id")
            if action == "stop":
                system.stop(name, arguments.get("grace", 10.0))
            elif action == "cancel":
                system.cancel(name)
            else:
                raise InvalidSpec("control action", f"{action!r}")
            return None
        if tool == control.MANIFEST_TOOL:
            return self.manifest()
        with self._lock:
            fn = self._tools.get(tool)
        if fn is None:
            raise ActorNotFound(tool, "the host tools of this system")
        return fn(**decode(arguments, imported_type, lambda address: ActorRef(address, system)))

    def _spawn_for(self, parent: str, arguments: dict[str, Any]) -> dict[str, Any]:
        spec = self._system._supervisor.spec_of(parent)
        depth = (spec.identity.depth if spec else 1) + 1
        max_depth = spec.limits.max_depth if spec else Limits().max_depth
        name = arguments.get("name")
        if depth > max_depth:
            raise SpawnError(str(name), f"spawn depth {depth} exceeds the cap of {max_depth}")
        options = arguments.get("options") or {}
        if not isinstance(options, dict):
            raise InvalidSpec("spawn options", "must be an object")
        unknown = set(options) - SPAWN_OPTIONS
        if unknown:
            raise InvalidSpec("spawn options", f"unknown {', '.join(sorted(unknown))}")
        ref = self._system.spawn(str(arguments.get("actor_class")), name, parent_id=parent, depth=depth, **options)
        return ref.to_dict()

    def manifest(self) -> list[dict[str, str]]:
        """The exposed tools: name, signature and doc (the system's own are not listed)."""
        with self._lock:
            tools = sorted(self._tools.items())
        return [describe_tool(name, fn) for name, fn in tools]

    def _tool_table(self) -> dict[str, Callable[..., Any]]:
        with self._lock:
            return dict(self._tools)

    def _serve_crate(self, message: InboxMessage, body: dict[str, Any]) -> None:
        """Answer the crate's ``McpRequest`` with its ``McpReply`` (see ``crate_mcp``)."""
        try:
            self._executor.submit(self._run_crate, message, body)
        except RuntimeError:  # shut down
            pass

    def _run_crate(self, message: InboxMessage, body: dict[str, Any]) -> None:
        reply = crate_mcp.answer(body, self.manifest, lambda tool, arguments: self._call(message, tool, arguments),
                                 self._tool_table)
        answer = InboxMessage.create(self._sender, InboxKind.MCP_REPLY.value, reply,
                                     msg_id=derived_msg_id(message.id, 0), correlation_id=message.id,
                                     traceparent=message.traceparent)
        self._reply(message, answer)

    def _reply(self, request: InboxMessage, reply: InboxMessage) -> None:
        try:
            target = reply_target(self._backend, self._system.address, request.sender)
        except Undeliverable as exc:
            log.error("system %s: reply %s to %s not delivered: %s", self._system.name, reply.id,
                      request.sender.session_id[:80], exc)
            return
        try:
            self._backend.deliver(target, [reply], block_timeout=None)
        except (ActorNotFound, StoreError) as exc:
            log.warning("system %s: reply to %s not delivered: %s", self._system.name,
                        request.sender.session_id, exc)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
