"""Actors the benchmarks spawn. Imported by the workers as ``bench_actors:<Class>``.

Workers find this module because ``bench/common.py`` puts ``bench/`` on
``PYTHONPATH`` before the first ActorSystem starts the fork server (the 3.11 fork
server does not inherit the parent's ``sys.path``).

Handlers are kept trivial on purpose: the benchmarks measure the runtime around
them, not the handlers. Every worker imports this module, so it imports nothing at
its top that only some actors use (``cProfile``, ~1.4 ms of a cold spawn's worker:
the profiling actors import it when they start profiling), as an actor's own module
would not.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from actors import Actor

if TYPE_CHECKING:
    import cProfile


class Counter(Actor):
    """Counts tells; an ask answers the count (any question)."""

    def on_start(self) -> None:
        self.state.setdefault("count", 0)

    def on_task(self, body: Any, msg: Any) -> None:
        self.state["count"] += 1

    def on_ask(self, question: Any, msg: Any) -> Any:
        return self.state["count"]


class TracedCounter(Counter):
    """A Counter whose worker records spans with the OpenTelemetry SDK (a processor
    that ends each span and drops it: the cost of recording, not of exporting)."""

    def on_start(self) -> None:
        super().on_start()
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        class Dropping(InMemorySpanExporter):
            def export(self, spans: Any) -> Any:
                return super().export([])

        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(Dropping()))
        trace.set_tracer_provider(provider)


class Resumer(Actor):
    """For the resume row: can be made to hang, and timestamps what it handles.

    - ``{"block_while": FLAG, "started": PATH}``: if FLAG exists, create PATH and
      sleep (until SIGKILL). Re-delivered after the kill, FLAG is gone and it returns.
    - ``{"seq": i}``: counted; the wall-clock time (``time.time()``) of the first and
      last one handled go to the state.
    - ask: the state (count, first_at, last_at).
    """

    def on_start(self) -> None:
        self.state.setdefault("count", 0)

    def on_task(self, body: Any, msg: Any) -> None:
        if isinstance(body, dict) and "block_while" in body:
            if os.path.exists(body["block_while"]):
                with open(body["started"], "w"):
                    pass
                time.sleep(3600)
            return
        now = time.time()
        state = self.state
        state["count"] += 1
        if "first_at" not in state:
            state["first_at"] = now
        state["last_at"] = now

    def on_ask(self, question: Any, msg: Any) -> Any:
        return dict(self.state)


class Profiled(Counter):
    """A Counter that profiles its own worker between two control tells.

    ``{"profile": "start"}`` enables cProfile inside the handler (so everything the
    worker loop does after it is recorded); ``{"profile": "stop", "path": P}``
    disables it and dumps the stats to P. Other messages count as in ``Counter``.
    """

    _profiler: cProfile.Profile | None = None

    def on_task(self, body: Any, msg: Any) -> None:
        if isinstance(body, dict) and "profile" in body:
            if body["profile"] == "start":
                import cProfile

                self._profiler = cProfile.Profile()
                self._profiler.enable()
            elif self._profiler is not None:
                self._profiler.disable()
                self._profiler.dump_stats(body["path"])
                self._profiler = None
            return
        self.state["count"] += 1


class ProfiledResumer(Resumer):
    """A Resumer that profiles its next activation from ``on_start`` on.

    ``{"profile_path": P}`` arms it (the path is committed with the state); the next
    activation (after the SIGKILL) enables cProfile in ``on_start``, before the
    recovered and pending messages are handled, and the next ask dumps it to P.
    """

    _profiler: cProfile.Profile | None = None

    def on_start(self) -> None:
        super().on_start()
        if self.state.get("profile_armed"):
            import cProfile

            self._profiler = cProfile.Profile()
            self._profiler.enable()

    def on_task(self, body: Any, msg: Any) -> None:
        if isinstance(body, dict) and "profile_path" in body:
            self.state["profile_path"] = body["profile_path"]
            self.state["profile_armed"] = True
            return
        super().on_task(body, msg)

    def on_ask(self, question: Any, msg: Any) -> Any:
        if self._profiler is not None:
            self._profiler.disable()
            self._profiler.dump_stats(self.state["profile_path"])
            self._profiler = None
        return super().on_ask(question, msg)


class Reminded(Actor):
    """For the timers row: asked ``{"at": [unix seconds, ...]}`` (mode "steer") it sets one
    reminder per time; each tick appends ``[due, handled]`` (unix seconds, the handled
    time read as the handler starts) to ``state["fired"]``. Asked "fired", returns them."""

    def on_start(self) -> None:
        self.state.setdefault("fired", [])

    def on_task(self, body: Any, msg: Any) -> None:
        handled = time.time()
        self.state["fired"].append([msg.reminder.due_at, handled, msg.reminder.coalesced])

    def on_ask(self, question: Any, msg: Any) -> Any:
        if isinstance(question, dict) and "at" in question:
            from datetime import datetime, timezone

            for i, at in enumerate(question["at"]):
                self.remind(f"r{i}", datetime.fromtimestamp(at, timezone.utc))
            return len(question["at"])
        return self.state["fired"]


def _step_result(i: int) -> dict[str, int]:
    return {"i": i}


class Stepper(Actor):
    """For the steps row: asked ``{"steps": k}`` (mode "steer": every ask is a turn that
    commits) it runs ``k`` journaled steps, each returning a small dict, counts the ask
    and answers the count. ``k = 0`` is the same turn without steps."""

    def on_start(self) -> None:
        self.state.setdefault("count", 0)

    def on_ask(self, question: Any, msg: Any) -> Any:
        for i in range(question["steps"]):
            self.step("s", _step_result, i)
        self.state["count"] += 1
        return self.state["count"]
