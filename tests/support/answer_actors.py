"""Actors for tests/worker/test_answer_frames.py.

``HoldsAck`` answers what it is asked. Asked ``{"hold_ack": dir}``, it answers
"held" and its worker's next ack of a mailbox creates ``dir/holding`` and waits
there for good (until the test kills the process): the answer has left on the
pipe, the question is not acknowledged.
"""

from __future__ import annotations

import os
import time

from actors_runtime.backends.maildir.mailbox import MaildirMailbox

from actors import Actor

_hold_in: list[str] = []
_ack = MaildirMailbox.ack


def _ack_or_hold(self, batch, *args, **kwargs):  # type: ignore[no-untyped-def]
    if _hold_in:
        with open(os.path.join(_hold_in[0], "holding"), "w"):
            pass
        while True:
            time.sleep(1)
    return _ack(self, batch, *args, **kwargs)


MaildirMailbox.ack = _ack_or_hold  # type: ignore[method-assign]


class HoldsAck(Actor):
    def on_ask(self, question, msg):
        if isinstance(question, dict) and "hold_ack" in question:
            _hold_in.append(question["hold_ack"])
            return "held"
        return question
