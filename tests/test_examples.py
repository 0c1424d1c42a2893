"""The examples run as real programs: a subprocess each, every file under tmp_path."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import wait_until

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(tmp_path: Path, script: str, *args: str, timeout: float = 60.0) -> str:
    """Run ``examples/<script>`` with cwd, TMPDIR and ACTORS_HOME under ``tmp_path``.

    Returns stdout after asserting a clean exit with no traceback on stderr.
    """
    scratch = tmp_path / "tmp"
    scratch.mkdir(exist_ok=True)
    env = {**os.environ, "ACTORS_HOME": str(tmp_path / "env-home"), "TMPDIR": str(scratch)}
    proc = subprocess.run([sys.executable, str(EXAMPLES / script), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stdout


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read().decode(errors="replace")
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def assert_workers_gone(pids: list[int]) -> None:
    """The example's workers were reparented when it exited; none may outlive it."""
    assert pids
    wait_until(lambda: not any(_alive(pid) for pid in pids), timeout=10)


def test_quickstart_prints_the_count(tmp_path):
    out = run_example(tmp_path, "quickstart.py")
    assert out.strip().splitlines()[-1] == "count = 2"


def test_wordcount_equals_a_single_process_count_of_the_same_files(tmp_path):
    out = run_example(tmp_path, "wordcount.py", "--files", "25", "--mappers", "3",
                      "--home", str(tmp_path / "home"))
    assert "check: OK" in out
    chunks = int(re.search(r"(\d+) chunks of up to", out).group(1))
    progress = re.findall(r"progress \[.*\]\s+(\d+)/(\d+) chunks merged", out)
    assert progress and progress[-1] == (str(chunks), str(chunks))
    rows = re.findall(r"^\s+(\d+)\s+(\w+)\s+([\d,]+)$", out, re.MULTILINE)
    assert [int(rank) for rank, _, _ in rows] == list(range(1, 21))
    counts = [int(n.replace(",", "")) for _, _, n in rows]
    assert counts == sorted(counts, reverse=True)
    per_mapper = dict(re.findall(r"(mapper-\d+)=(\d+)", out.split("chunks per mapper:")[1]))
    assert sorted(per_mapper) == ["mapper-1", "mapper-2", "mapper-3"]
    assert sum(map(int, per_mapper.values())) == chunks
    assert (tmp_path / "home" / "projects").is_dir()  # --home was used, not a temp dir
    assert_workers_gone([int(p) for p in re.findall(r"(?:pid |mapper-\d+=)(\d+)", out.split("\n\n")[0])])


def test_wordcount_run_again_in_the_same_home_resumes_its_actors_and_counts_the_same(tmp_path):
    home = str(tmp_path / "home")
    first = run_example(tmp_path, "wordcount.py", "--files", "12", "--mappers", "2", "--home", home)
    second = run_example(tmp_path, "wordcount.py", "--files", "12", "--mappers", "2", "--home", home)
    totals = [re.search(r"check: OK \(fleet total ([\d,]+) words", out).group(1) for out in (first, second)]
    assert totals[0] == totals[1]


def test_wordcount_with_its_defaults_is_what_make_demo_runs(tmp_path):
    out = run_example(tmp_path, "wordcount.py")
    assert "word count over 100 standard-library files" in out
    assert "4 mappers" in out and "check: OK" in out
    assert str(tmp_path / "tmp") in out  # its default home is a temp dir, under TMPDIR here


def test_crash_recovery_restarts_the_killed_worker_and_loses_nothing(tmp_path):
    out = run_example(tmp_path, "crash_recovery.py", "--increments", "400", "--home", str(tmp_path / "home"))
    assert "check: OK (nothing lost, nothing applied twice)" in out
    killed = re.search(r"SIGKILL worker pid (\d+)", out).group(1)
    old, new, restarts = re.search(r"worker pid (\d+) -> (\d+), restarts (\d+)", out).groups()
    assert killed == old != new and int(restarts) == 1
    final = re.search(r"this run: (\d+) applied, (\d+) sent\); sum of seq = (\d+) \(expected (\d+)\); "
                      r"out of order: 0", out)
    assert final and final.group(1) == final.group(2) == "400" and final.group(3) == final.group(4)
    assert_workers_gone([int(old), int(new)])


def test_crash_recovery_survives_repeated_kills_in_one_stream(tmp_path):
    out = run_example(tmp_path, "crash_recovery.py", "--increments", "450", "--kills", "2")
    assert out.count("SIGKILL worker pid") == 2
    assert re.search(r"restarts 2, status running", out)
    assert "this run: 450 applied, 450 sent" in out and "check: OK" in out


def test_agents_plan_hand_off_steer_cancel_and_finish(tmp_path):
    out = run_example(tmp_path, "agents.py", "--home", str(tmp_path / "home"))
    assert out.strip().splitlines()[-1] == "check: OK"
    parent_pid = re.search(r"operator \(parent\) pid (\d+)", out).group(1)
    lookups = re.findall(r"researcher \| lookup\('([\w-]+)'\) -> kb://\S+ \(ran in the parent, pid (\d+)\)", out)
    assert [topic for topic, _ in lookups] == ["mailbox", "exactly-once", "supervision", "ask-modes"]
    assert {pid for _, pid in lookups} == {parent_pid}  # the host tool ran in the parent
    for line in ("researcher | handing 4 notes off to writer",
                 "writer | received 4 notes from researcher",
                 "reviewer | v1 handed over by writer: approved",
                 "'links': 'assigned'}, done=False",  # the mid-run status query
                 "(query changes discarded)",
                 "steer: writer now targets 'operators'",
                 "reviewer | v2 handed over by writer: approved",
                 "linkcheck did not answer within 0.5 s",
                 "keeps serving",
                 "re-assigning without it",
                 "all 4 steps done",
                 "release note v2 for operators (review: approved)",
                 "## Upgrading"):
        assert line in out, line
    agents = re.findall(r"^\s+(\w+)\s+pid=(\d+)\s+role=(\w+)\s+parent=(\w+)\s+restarts=0$", out, re.MULTILINE)
    assert {name: parent for name, _, _, parent in agents} == {
        "orchestrator": "None", "researcher": "orchestrator", "writer": "orchestrator",
        "reviewer": "orchestrator", "linkcheck": "orchestrator"}
    assert_workers_gone([int(pid) for _, pid, _, _ in agents])


def test_research_agent_makes_each_model_call_once_across_a_sigkill_and_follows_up(tmp_path):
    out = run_example(tmp_path, "research_agent.py", "--home", str(tmp_path / "home"))
    assert out.strip().splitlines()[-1].startswith("check: OK")
    assert "requests per step: plan 1, search 1, answer 2, follow-up 1" in out
    assert "billed: answer, follow-up, plan, search" in out
    killed = re.search(r"SIGKILL worker pid (\d+) inside the step", out).group(1)
    old, new, restarts = re.search(r"worker pid (\d+) -> (\d+), restarts (\d+)", out).groups()
    assert killed == old != new and restarts == "1"
    assert re.search(r"follow-up: follow-up: summary-[0-9a-f]{8}", out)
    assert_workers_gone([int(old), int(new)])


@pytest.mark.parametrize("script", ["wordcount.py", "agents.py", "crash_recovery.py", "research_agent.py"])
def test_each_example_guards_its_entry_point_and_documents_itself(script):
    source = (EXAMPLES / script).read_text()
    assert 'if __name__ == "__main__":' in source  # workers re-import the main module
    assert source.startswith('"""') and "Run it with" in source
