"""A "crate process" (tests/crate/crate_process.py: only the crate's formats) starts a
project worker with the crate's ProvisionSpec on stdin, finds it through the fabric,
tells and asks it through Maildir files, and reads the reply from its own mailbox."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from actors_runtime.address import project_key
from conftest import support_env

SCRIPT = Path(__file__).parent / "crate_process.py"


def _run(home: Path, project: Path, question: object) -> dict:
    key = project_key(project)
    command = [sys.executable, "-m", "actors.cli", "worker", "--actor-class", "sample_actors:Echo"]
    done = subprocess.run([sys.executable, str(SCRIPT), str(home), key, "rust-parent", "echo-1",
                           json.dumps(question), "--", *command],
                          env=support_env(ACTORS_HOME=str(home)), capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


def test_a_crate_parent_provisions_a_worker_tells_and_asks_it_and_gets_its_reply(home, project):
    seen = _run(home, project, "what did you find?")
    assert seen["registered"] and seen["record_version"] == "2"
    reply = seen["reply"]
    assert reply["kind"] == "reply" and reply["from"]["session_id"] == "echo-1"
    assert reply["body"] == {"answer": "what did you find?"}  # the crate's ReplyBody: answer is a string
    assert seen["corrupt"] == []


def test_a_non_string_answer_reaches_a_crate_asker_as_its_json_text(home, project):
    seen = _run(home, project, {"n": [1, 2]})
    assert seen["reply"]["body"] == {"answer": '{"n":[1,2]}'}
