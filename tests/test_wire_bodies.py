"""The hand-written wire bodies match what dataclasses-json produces."""

from hypothesis import given
from hypothesis import strategies as st

from runtime.messages import AskBody, ReplyBody, ReplyError

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
