"""The hand-written wire bodies match what dataclasses-json produces."""

import subprocess
import sys

from actors_runtime.messages import AskBody, ReplyBody, ReplyError
from hypothesis import given
from hypothesis import strategies as st

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


@given(question=json_values, mode=st.sampled_from(["query", "steer"]))
def test_ask_body_to_body_equals_dataclasses_json(question, mode):
    body = AskBody(question, mode)
    assert body.to_body() == body.to_dict(encode_json=False)
    assert AskBody.from_dict(body.to_body()) == body


@given(answer=json_values, error=st.none() | st.builds(ReplyError, st.text(), st.text(), st.text()))
def test_reply_body_to_body_equals_dataclasses_json(answer, error):
    body = ReplyBody(answer=answer, error=error)
    assert body.to_body() == body.to_dict(encode_json=False)
    assert ReplyBody.from_dict(body.to_body()) == body


def test_workers_do_not_import_dataclasses_json_until_its_api_is_used() -> None:
    # It brings marshmallow and importlib.metadata (~40 ms, ~6 MB per worker process).
    script = (
        "import sys, actors_runtime.worker, actors\n"
        "assert 'dataclasses_json' not in sys.modules, 'imported up front'\n"
        "from actors_runtime.messages import AgentRef, InboxMessage\n"
        "message = InboxMessage.create(AgentRef('a'), 'task', {'n': 1})\n"
        "assert InboxMessage.from_json(message.to_json()) == message\n"
        "assert 'dataclasses_json' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
