"""The Lua scripts as sent to the server: shared ``lib_`` functions inlined, once."""

from __future__ import annotations

import os

from actors_runtime.backends.redis.lua import INCLUDE, SCRIPTS_DIR, source


def _scripts() -> list[str]:
    return sorted(name[:-4] for name in os.listdir(SCRIPTS_DIR) if name.endswith(".lua"))


def test_every_script_is_sent_with_its_includes_inlined_and_none_left() -> None:
    for name in _scripts():
        text = source(name)
        assert not any(line.startswith(INCLUDE) for line in text.splitlines()), name


def test_the_scripts_that_share_a_commit_and_a_hand_out_define_each_function_once() -> None:
    assert source("commit").count("local function commit_session(") == 1
    assert source("drain").count("local function hand_out(") == 1
    both = source("commit_ack")
    assert both.count("local function commit_session(") == 1 and both.count("local function hand_out(") == 1
    # The function is defined before the script's own first line calls it.
    assert both.index("local function hand_out(") < both.index("hand_out(KEYS")
