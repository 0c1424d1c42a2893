"""``actors run``'s progress line never lands inside a line of the script's output.

Real ``python -m actors.cli run`` processes, their output read through pipes or a pty.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import termios
import textwrap
import threading

import pytest
from conftest import TESTS_DIR, support_env, wait_until

from actors.cli.exit_codes import EXIT_ERROR, EXIT_INTERRUPTED

ROUNDS = 3
BULK = 3000

CHATTY_SCRIPT = textwrap.dedent(f"""
    import sys
    import threading
    from actors import Actor, ActorSystem

    #: Many progress intervals: time for a gate that let progress in mid-line to do so.
    DWELL = 0.3
    pause = threading.Event()

    class Talker(Actor):
        def on_ask(self, k, msg):
            sys.stdout.write(f"worker {{k}} says")
            sys.stdout.flush()
            pause.wait(DWELL)
            sys.stdout.write(f" hello, tty {{sys.stdout.isatty()}}\\n")
            sys.stdout.flush()
            sys.stderr.write(f"worker {{k}} warns\\n")
            sys.stderr.flush()
            return k

    if __name__ == "__main__":
        print("tty", sys.stdout.isatty(), sys.stderr.isatty(), flush=True)
        with ActorSystem(durability="process") as system:
            talker = system.spawn(Talker, name="talker-0")
            for k in range({ROUNDS}):
                print(f"main {{k}} begins", end="", flush=True)
                pause.wait(DWELL)
                print(" and ends", flush=True)
                print(f"main {{k}} to stderr " + "e" * 300, file=sys.stderr, flush=True)
                assert talker.ask(k, timeout=30) == k
                print(f"ready {{k}}", flush=True)
                talker = system.spawn(Talker, name=f"talker-{{k + 1}}")
                sys.stdin.readline()  # the test answers once progress has shown the new actor
            for i in range({BULK}):
                print(f"bulk {{i}} " + "x" * 80)
        sys.stdout.write("last words without a newline")
        sys.exit(3)
""")


def expected_lines(tty: bool) -> tuple[list[str], list[str]]:
    """The script's stdout and stderr lines."""
    out, err = [f"tty {tty} {tty}"], []
    for k in range(ROUNDS):
        out += [f"main {k} begins and ends", f"worker {k} says hello, tty {tty}", f"ready {k}"]
        err += [f"main {k} to stderr " + "e" * 300, f"worker {k} warns"]
    out += [f"bulk {i} " + "x" * 80 for i in range(BULK)] + ["last words without a newline"]
    return out, err


def expected_merged(tty: bool) -> list[str]:
    """The script's lines as one channel sees them, stdout and stderr in program order."""
    lines = [f"tty {tty} {tty}"]
    for k in range(ROUNDS):
        lines += [f"main {k} begins and ends", f"main {k} to stderr " + "e" * 300,
                  f"worker {k} says hello, tty {tty}", f"worker {k} warns", f"ready {k}"]
    return lines + [f"bulk {i} " + "x" * 80 for i in range(BULK)] + ["last words without a newline"]


class Transcript:
    """Everything read from ``fd`` until EOF (or EIO, a pty whose other side closed)."""

    def __init__(self, fd: int) -> None:
        self.fd, self.data, self.lock = fd, bytearray(), threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                return
            with self.lock:
                self.data += chunk

    def text(self) -> str:
        with self.lock:
            return self.data.decode()

    def finish(self, timeout: float = 30.0) -> str:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the output never reached EOF"
        os.close(self.fd)
        return self.text()


def start_run(home, project, script, stdout, stderr, *extra):
    argv = [sys.executable, "-m", "actors.cli", "--home", str(home), "--project", str(project), "run",
            "--interval", "0.05", *extra, str(script)]
    env = support_env()
    env.pop("ACTORS_HOME", None)
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=stdout, stderr=stderr, env=env, cwd=TESTS_DIR)


def converse(process, transcript, progress=None):
    """Answer each round once a progress report (in ``progress``, default the same
    transcript) shows the actor the round spawned after ``ready k``: progress was on,
    and reached the output between the script's lines."""
    progress = progress or transcript
    try:
        for k in range(ROUNDS):
            def reported(k=k):
                text = transcript.text()
                at = text.find(f"ready {k}\n")
                shown = progress.text()[at if progress is transcript else 0:]
                return at >= 0 and f"] {k + 2} actors:" in shown
            wait_until(reported, timeout=30)
            process.stdin.write(b"go\n")
            process.stdin.flush()
    finally:
        process.stdin.close()
    assert process.wait(timeout=60) == 3


#: A plain progress line, whole.
PLAIN_PROGRESS = re.compile(r"\[actors\] \d+ actors?: [a-z0-9 ,]+ \| \d+ pending")


def split_plain(text):
    """(the script's lines, the progress lines); fails on a line that mixes the two."""
    script, progress = [], []
    for line in text.splitlines():
        if PLAIN_PROGRESS.fullmatch(line):
            progress.append(line)
        else:
            assert "[actors" not in line, f"progress inside a line of output: {line!r}"
            script.append(line)
    return script, progress


@pytest.fixture
def chatty(tmp_path):
    script = tmp_path / "chatty.py"
    script.write_text(CHATTY_SCRIPT)
    return script


def test_progress_on_separate_pipes_stays_between_the_lines_of_stderr(home, project, chatty):
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    process = start_run(home, project, chatty, out_w, err_w)
    os.close(out_w)
    os.close(err_w)
    out, err = Transcript(out_r), Transcript(err_r)
    try:
        converse(process, out, err)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    expected_out, expected_err = expected_lines(tty=False)
    assert out.finish().splitlines() == expected_out  # stdout is another file: not gated at all
    script_err, progress = split_plain(err.finish())
    assert script_err == expected_err
    assert len(progress) >= ROUNDS + 1 and progress[-1] == f"[actors] {ROUNDS + 1} actors: {ROUNDS + 1} stopped | 0 pending"


def test_progress_on_one_pipe_for_both_streams_keeps_every_line_whole_and_in_order(home, project, chatty):
    read, write = os.pipe()
    process = start_run(home, project, chatty, write, write)
    os.close(write)
    transcript = Transcript(read)
    try:
        converse(process, transcript)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = transcript.finish()
    script, progress = split_plain(text)
    assert script == expected_merged(tty=False)
    assert len(progress) >= ROUNDS + 1
    assert text.endswith(f"last words without a newline\n[actors] {ROUNDS + 1} actors: {ROUNDS + 1} stopped"
                         " | 0 pending\n")


#: What the gate writes on a terminal around the script's lines: status lines, each
#: rewritten in place, and the clear that precedes the next output.
TTY_PROGRESS = r"\r\[actors +\d+\.\ds\] \d+ actors?: [a-z0-9 ,]+ \| \d+ pending\x1b\[K|\r\x1b\[K"
TTY_LINE = re.compile(rf"(?:{TTY_PROGRESS})*(?P<content>[^\r\x1b]*)")


def test_progress_on_a_terminal_is_cleared_before_output_and_never_drawn_mid_line(home, project, chatty):
    master, slave = os.openpty()
    attrs = termios.tcgetattr(slave)
    attrs[1] &= ~termios.OPOST  # read what the CLI wrote, not the terminal's "\r\n" for "\n"
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    process = start_run(home, project, chatty, slave, slave)
    os.close(slave)
    transcript = Transcript(master)
    try:
        converse(process, transcript)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    raw = transcript.finish()
    *lines, tail = raw.split("\n")
    assert tail == ""  # no status line left on the screen
    contents = []
    for line in lines:
        match = TTY_LINE.fullmatch(line)
        assert match is not None, f"progress inside a line of output: {line!r}"
        contents.append(match["content"])
    statuses = len(re.findall(r"\r\[actors ", raw))
    assert statuses >= ROUNDS + 1
    assert contents == [*expected_merged(tty=True), f"[actors] {ROUNDS + 1} actors: {ROUNDS + 1} stopped | 0 pending"]


def test_a_script_that_raises_mid_line_under_the_gate_loses_nothing(home, project, tmp_path):
    script = tmp_path / "broken.py"
    script.write_text(textwrap.dedent("""
        import sys
        from actors import ActorSystem
        from sample_actors import Counter

        if __name__ == "__main__":
            with ActorSystem(durability="process") as system:
                system.spawn(Counter, name="counter").ask("count", timeout=30)
                print("half a line", end="", flush=True)
                raise RuntimeError("script bug")
    """))
    read, write = os.pipe()
    process = start_run(home, project, script, write, write)
    os.close(write)
    process.stdin.close()
    transcript = Transcript(read)
    assert process.wait(timeout=60) == EXIT_ERROR
    lines, progress = split_plain(transcript.finish())
    assert lines[0] == "half a lineTraceback (most recent call last):"  # as python would show it
    assert lines[-1] == "RuntimeError: script bug"
    assert progress[-1] == "[actors] 1 actor: 1 stopped | 0 pending"


def test_ctrl_c_under_the_gate_on_a_terminal_exits_130_with_the_output_intact(home, project, tmp_path):
    script = tmp_path / "forever.py"
    script.write_text(textwrap.dedent("""
        import threading
        from actors import ActorSystem
        from sample_actors import Counter

        if __name__ == "__main__":
            with ActorSystem(durability="process") as system:
                system.spawn(Counter, name="forever")
                print("ready")
                print("waiting", end="", flush=True)
                done = threading.Event()
                while not done.wait(0.2):
                    pass
    """))
    master, slave = os.openpty()
    process = start_run(home, project, script, slave, slave)
    os.close(slave)
    process.stdin.close()
    transcript = Transcript(master)
    try:
        wait_until(lambda: "waiting" in transcript.text(), timeout=30)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == EXIT_INTERRUPTED
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = transcript.finish()
    assert "Traceback" not in text
    visible = [TTY_LINE.fullmatch(line.rstrip("\r")) for line in text.split("\n")]
    assert [m["content"] for m in visible if m is not None][:3] == ["ready", "waitingactors run: interrupted",
                                                                   "[actors] 1 actor: 1 stopped | 0 pending"]
