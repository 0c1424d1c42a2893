"""Map-reduce word count over the standard library's own source files.

::

    parent                           mappers (N actors)              reducer (1 actor)
    ------                           ------------------              -----------------
    tell reducer {start job}  ---------------------------------------> reset
    splitter thread: tell mapper-i   -> read the lines, count words
      {file, lines, reducer ref}        tell reducer {counts} ------> merge
    ask reducer "progress" (query) <---------------------------------- merged k of n
    ask reducer "result"   (query) <---------------------------------- top 20, digest
    count the same files in this process and compare ("check: OK")

The reducer's ref travels inside each task, so mappers send straight to it. Every
message is durable before ``tell`` returns, and each is applied once to the
receiver's state, so the fleet's totals equal a single-process count.

Run it with ``python examples/wordcount.py`` (``--files``, ``--mappers``,
``--chunk-lines``, ``--home``; ``make demo`` runs it with the defaults).
State goes to a temporary directory unless ``--home`` is given; a second run with
the same ``--home`` resumes the same actors and starts a new job.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import re
import sys
import tempfile
import threading
import time
import uuid

from actors import Actor, ActorError, ActorSystem

#: What counts as a word: an identifier-like run of letters, digits and underscores.
WORD = re.compile(r"[a-z_][a-z0-9_]*")
#: Rows in the final table.
TOP = 20


def tokenize(text: str) -> list[str]:
    """Lower-cased identifier-like words; deterministic, shared by fleet and check."""
    return WORD.findall(text.lower())


def read_lines(path: str) -> list[str]:
    """The lines of a file (undecodable bytes replaced, never an error)."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.readlines()


def split(files: list[str], lines_per_chunk: int) -> list[dict]:
    """Chunks of at most ``lines_per_chunk`` lines: ``{"path", "start", "stop"}``."""
    chunks = []
    for path in files:
        n = len(read_lines(path))
        for start in range(0, max(n, 1), lines_per_chunk):
            chunks.append({"path": path, "start": start, "stop": min(start + lines_per_chunk, n)})
    return chunks


def digest(counts: dict[str, int]) -> str:
    """A short fingerprint of a whole count table (order-independent)."""
    blob = json.dumps(sorted(counts.items()), separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def stdlib_files(limit: int) -> list[str]:
    """The first ``limit`` ``.py`` files of the standard library, sorted by name."""
    libdir = os.path.dirname(os.__file__)
    names = sorted(n for n in os.listdir(libdir) if n.endswith(".py"))
    return [os.path.join(libdir, n) for n in names[:limit]]


class Mapper(Actor):
    """Counts the words of one chunk per task and sends the partial counts on."""

    def on_start(self):
        self.state.setdefault("job", None)
        self.state.setdefault("chunks", 0)

    def on_task(self, body, msg):
        if body["job"] != self.state["job"]:
            self.state["job"], self.state["chunks"] = body["job"], 0
        lines = read_lines(body["path"])[body["start"]:body["stop"]]
        counts = collections.Counter(tokenize("".join(lines)))
        chunk = f"{os.path.basename(body['path'])}:{body['start']}"
        # The reducer's ref came inside the message; the id of this send derives from
        # the task's id, so a re-run after a crash re-sends the same id (dropped there).
        self.tell(body["reducer"], {"job": body["job"], "chunk": chunk, "mapper": self.name,
                                    "counts": dict(counts)})
        self.state["chunks"] += 1

    def on_ask(self, question, msg):
        return {"job": self.state["job"], "chunks": self.state["chunks"], "pid": os.getpid()}


class Reducer(Actor):
    """Merges partial counts; answers progress and result queries."""

    def on_start(self):
        if "job" not in self.state:  # a resumed reducer keeps its last job
            self._reset(None, 0)

    def _reset(self, job, expected):
        self.state.update(job=job, expected=expected, counts={}, chunks={}, total=0, repeats=0)

    def on_task(self, body, msg):
        if body.get("op") == "start":
            self._reset(body["job"], body["chunks"])
            return
        if body["job"] != self.state["job"]:
            return  # a late partial of an earlier job
        if body["chunk"] in self.state["chunks"]:
            self.state["repeats"] += 1  # the runtime never lets this happen; count it if it did
            return
        counts = self.state["counts"]
        for word, n in body["counts"].items():
            counts[word] = counts.get(word, 0) + n
        self.state["total"] += sum(body["counts"].values())
        self.state["chunks"][body["chunk"]] = body["mapper"]

    def on_ask(self, question, msg):
        state = self.state
        if question == "progress":
            return {"merged": len(state["chunks"]), "expected": state["expected"], "total": state["total"]}
        if question == "result":
            counts = state["counts"]
            top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP]
            return {"top": top, "total": state["total"], "distinct": len(counts), "digest": digest(counts),
                    "repeats": state["repeats"],
                    "by_mapper": dict(collections.Counter(state["chunks"].values()))}
        raise ValueError(f"unknown question {question!r}")


def show_progress(reducer, n_chunks: int, failures: list[BaseException], timeout: float) -> int:
    """Ask the reducer how far it got until every chunk is merged; returns the last count."""
    deadline = time.monotonic() + timeout
    shown = -1
    pause = threading.Event()
    while True:
        progress = reducer.ask("progress", mode="query", timeout=timeout)
        if progress["merged"] != shown:
            shown = progress["merged"]
            bar = "#" * (30 * shown // n_chunks)
            print(f"  progress [{bar:<30}] {shown:>4}/{n_chunks} chunks merged, {progress['total']:,} words")
        if shown >= n_chunks:
            return shown
        if failures:
            print(f"check: FAILED (the splitter stopped: {failures[0]})")
            return shown
        if time.monotonic() > deadline:
            print(f"check: FAILED (only {shown} of {n_chunks} chunks merged within {timeout} s)")
            return shown
        pause.wait(0.1)  # the pace of the progress display, not a synchronisation


def run(home: str, n_files: int, n_mappers: int, lines_per_chunk: int, durability: str,
        timeout: float) -> int:
    files = stdlib_files(n_files)
    if not files:
        print("no standard-library files found", file=sys.stderr)
        return 1
    size = sum(os.path.getsize(p) for p in files)
    chunks = split(files, lines_per_chunk)
    print(f"word count over {len(files)} standard-library files ({size / 1e6:.1f} MB, "
          f"{len(chunks)} chunks of up to {lines_per_chunk} lines) from {os.path.dirname(files[0])}")
    print(f"ACTORS_HOME = {home} (durability {durability!r})")
    started = time.monotonic()
    with ActorSystem(home=home, project=".", durability=durability) as system:
        reducer = system.spawn(Reducer, name="reducer", role="reducer")
        mappers = [system.spawn(Mapper, name=f"mapper-{i + 1}", role="mapper") for i in range(n_mappers)]
        pids = ", ".join(f"{m.name}={system.pid_of(m)}" for m in mappers)
        print(f"spawned reducer (pid {system.pid_of(reducer)}) and {n_mappers} mappers ({pids}) "
              f"in {time.monotonic() - started:.2f} s")

        job = uuid.uuid4().hex[:8]
        reducer.tell({"op": "start", "job": job, "chunks": len(chunks)})

        failures: list[BaseException] = []
        give_up = threading.Event()

        def feed() -> None:  # the splitter: round-robin, each tell returns once durable
            try:
                for i, chunk in enumerate(chunks):
                    if give_up.is_set():
                        return
                    mappers[i % n_mappers].tell({"job": job, **chunk, "reducer": reducer})
            except Exception as exc:  # reported by the progress loop
                failures.append(exc)

        splitter = threading.Thread(target=feed, name="splitter")
        splitter.start()
        print(f"job {job}: splitter sends {len(chunks)} chunks round-robin; asking the reducer for progress")
        try:
            merged = show_progress(reducer, len(chunks), failures, timeout)
        finally:
            give_up.set()
            splitter.join()
        if merged < len(chunks):
            return 1
        result = reducer.ask("result", mode="query", timeout=timeout)
        per_mapper = {m.name: m.ask("stats", timeout=timeout)["chunks"] for m in mappers}
        elapsed = time.monotonic() - started

    print(f"\ntop {TOP} words of {result['total']:,} ({result['distinct']:,} distinct), "
          f"in {elapsed:.2f} s with {n_mappers} mappers:")
    print(f"  {'rank':>4}  {'word':<16} {'count':>8}")
    for rank, (word, n) in enumerate(result["top"], 1):
        print(f"  {rank:>4}  {word:<16} {n:>8,}")
    print("chunks per mapper: " + ", ".join(f"{name}={n}" for name, n in per_mapper.items()))

    single: collections.Counter[str] = collections.Counter()
    for path in files:
        single.update(tokenize("".join(read_lines(path))))
    expected = {"total": sum(single.values()), "distinct": len(single), "digest": digest(single)}
    got = {k: result[k] for k in expected}
    if (got == expected and result["repeats"] == 0 and sum(per_mapper.values()) == len(chunks)
            and result["by_mapper"] == per_mapper):
        print(f"check: OK (fleet total {got['total']:,} words, {got['distinct']:,} distinct, "
              f"digest {got['digest']} = single-process count)")
        return 0
    print(f"check: FAILED (fleet {got}, repeats {result['repeats']}, chunks {per_mapper}; "
          f"single process {expected})")
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=100, help="how many stdlib files (default 100)")
    parser.add_argument("--mappers", type=int, default=4, help="how many mapper actors (default 4)")
    parser.add_argument("--chunk-lines", type=int, default=250, help="lines per chunk (default 250)")
    parser.add_argument("--home", help="ACTORS_HOME to use (default: a temporary directory)")
    parser.add_argument("--durability", choices=("machine", "process"), default="machine")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before giving up")
    args = parser.parse_args(argv)
    if args.files < 1 or args.mappers < 1 or args.chunk_lines < 1:
        parser.error("--files, --mappers and --chunk-lines must be at least 1")
    options = (args.files, args.mappers, args.chunk_lines, args.durability, args.timeout)
    try:
        if args.home:
            return run(os.path.abspath(args.home), *options)
        with tempfile.TemporaryDirectory(prefix="actors-wordcount-") as home:
            return run(home, *options)
    except (ActorError, TimeoutError) as exc:  # AskTimeout is both
        print(f"check: FAILED ({type(exc).__name__}: {exc})")
        return 1


if __name__ == "__main__":
    sys.exit(main())
