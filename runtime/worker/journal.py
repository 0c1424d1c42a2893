"""Journaled steps: a step's function runs at most once per turn, across crashes.

::

    handler: step(name, fn)   key = <actor>/<message id>/<name>/<n>   (n: earlier uses of
                              name in this turn, so a loop gets one key per round)
        recorded?   yes -> its result back (its error raised again); fn is not called
                    no  -> fn() -> record {msg, key, ok | error} durably -> go on
    commit of the turn -> its records are dropped (``committed``)

The record is durable (at the actor's durability) before the handler goes on, so a
turn that runs again after a crash, a rollback or a retry gets the recorded value
without calling ``fn``. What this cannot cover is a death *inside* ``fn``, after its
effect and before the record: then ``fn`` runs again. ``fn`` can make its effect
idempotent with the step's key (``Context.step_key`` while it runs), which is the
same on every run of the turn: pass it to the API as an idempotency key.

An error is recorded too (its type, text, traceback and, when it pickles, the
exception itself), so a re-run raises it again instead of calling ``fn``. A handler
retry (``retries=N``) forgets the errors of its message first: a retry is meant to try
the failed steps again, and to keep what the successful ones did.
"""

from __future__ import annotations

import base64
import json
import logging
import pickle
import traceback
from typing import Any, Callable, ContextManager

from ..backends.base import ActorSession
from ..errors import StepFailed, WrongContext

log = logging.getLogger(__name__)


class StepJournal:
    """The step records of one actor's uncommitted turns, in memory and in its session."""

    def __init__(self, session: ActorSession, actor_id: str, shielded: Callable[[], ContextManager[None]]) -> None:
        self.session = session
        self.actor_id = actor_id
        self._shielded = shielded
        #: message id -> step key -> record.
        self.records: dict[str, dict[str, dict[str, Any]]] = {}
        self._message_id: str | None = None
        self._uses: dict[str, int] = {}
        #: The key of the step whose function runs now (``None`` between steps).
        self.running_key: str | None = None
        #: Whether a record was written since the journal was last emptied.
        self.written = False

    def restore(self, records: list[dict[str, Any]], applied: Callable[[str], bool]) -> None:
        """Load the records a crashed activation left, but those of turns that committed."""
        for record in records:
            msg_id, key = record.get("msg"), record.get("key")
            if isinstance(msg_id, str) and isinstance(key, str) and not applied(msg_id):
                self.records.setdefault(msg_id, {})[key] = record
        self.written = bool(records)

    def begin(self, msg_id: str | None) -> None:
        """A turn starts on ``msg_id`` (or runs again: its steps count from zero)."""
        self._message_id = msg_id
        self._uses = {}

    def run(self, name: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
            encode: Callable[[Any], Any], decode: Callable[[Any], Any]) -> Any:
        """Run ``fn(*args, **kwargs)`` as the step ``name`` of the running turn.

        Returns the recorded result (decoded) on a re-run, else ``fn``'s result after
        recording it. The first run returns the decoded record too, so both runs of a
        turn see the same value.

        Raises:
            WrongContext: not inside a handler, or ``name`` is not a non-empty string.
            StepFailed: a recorded error that could not be rebuilt here.
            TypeError: ``fn`` returned a value that is not JSON (the error is recorded:
                its effect happened, and a re-run must not repeat it).
            Exception: whatever ``fn`` raised (recorded), or raised again from the record.
        """
        msg_id = self._message_id
        if msg_id is None:
            raise WrongContext("step", "steps run inside a handler, on a message")
        if not isinstance(name, str) or not name:
            raise WrongContext("step", f"a step needs a non-empty string name, not {name!r}")
        use = self._uses.get(name, 0)
        self._uses[name] = use + 1
        key = f"{name}/{use}"
        found = self.records.get(msg_id, {}).get(key)
        if found is not None:
            return self._replay(found, msg_id, key, decode)
        self.running_key = self.full_key(msg_id, key)
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            self._record(msg_id, key, {"error": _error_record(exc)})
            raise
        finally:
            self.running_key = None
        try:
            value = encode(result)
            text = json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            error = TypeError(f"step {name!r} returned a value that is not JSON ({exc}); "
                              "return JSON data or a dataclass")
            self._record(msg_id, key, {"error": _error_record(error)})
            raise error from None
        self._record(msg_id, key, {"ok": value}, f'"ok":{text}')
        return decode(json.loads(text))

    def full_key(self, msg_id: str, key: str) -> str:
        return f"{self.actor_id}/{msg_id}/{key}"

    def forget_errors(self, msg_id: str) -> None:
        """Let a retry of ``msg_id``'s turn run its failed steps again."""
        steps = self.records.get(msg_id)
        if steps:
            for key in [k for k, record in steps.items() if "error" in record]:
                del steps[key]

    def committed(self, applied: Callable[[str], bool]) -> None:
        """A commit stored the messages ``applied`` names: drop their records, and
        empty the journal once no record is left (records a crashed activation left
        for messages not handled yet stay until those commit).

        Raises:
            StoreError: the journal could not be emptied.
        """
        if self.records:
            self.records = {m: steps for m, steps in self.records.items() if not applied(m)}
        if self.written and not self.records:
            self.session.clear_journal()
            self.written = False

    def _record(self, msg_id: str, key: str, outcome: dict[str, Any], outcome_json: str | None = None) -> None:
        record = {"msg": msg_id, "key": key, **outcome}
        body = outcome_json or json.dumps(outcome)[1:-1]
        text = f'{{"msg":{json.dumps(msg_id)},"key":{json.dumps(key)},{body}}}'
        with self._shielded():  # a cancel must not tear the record from its effect
            self.session.journal(text)
        self.written = True
        self.records.setdefault(msg_id, {})[key] = record

    def _replay(self, record: dict[str, Any], msg_id: str, key: str, decode: Callable[[Any], Any]) -> Any:
        if "ok" in record:
            return decode(record["ok"])
        error = record.get("error")
        error = error if isinstance(error, dict) else {}
        rebuilt = _rebuild(error.get("pickle"))
        if rebuilt is not None:
            raise rebuilt
        raise StepFailed(self.full_key(msg_id, key), str(error.get("type", "Exception")),
                         str(error.get("message", "")), str(error.get("traceback", "")))


def _error_record(exc: BaseException) -> dict[str, Any]:
    kind = type(exc)
    record: dict[str, Any] = {
        "type": f"{kind.__module__}.{kind.__qualname__}",
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc)),
    }
    try:
        record["pickle"] = base64.b64encode(pickle.dumps(exc)).decode("ascii")
    except Exception:  # any exception may refuse to pickle: the text stands in for it
        pass
    return record


def _rebuild(encoded: Any) -> BaseException | None:
    """The recorded exception, or None if there is none or it cannot be rebuilt here.

    The journal is the actor's own file, written only by its worker (mode 0600 in
    its home), like the state it restores.
    """
    if not isinstance(encoded, str):
        return None
    try:
        exc = pickle.loads(base64.b64decode(encoded))
    except Exception:
        return None
    return exc if isinstance(exc, Exception) else None
