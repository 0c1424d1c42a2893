"""Asking one actor from several threads at once (tests of who reads a worker's pipe)."""

from __future__ import annotations

import threading
from typing import Any, Callable


def ask_from_threads(ref: Any, questions: Callable[[int], list[Any]], threads: int,
                     timeout: float = 20.0) -> dict[int, list[Any]]:
    """Thread ``n`` (of ``threads``) asks ``ref`` each of ``questions(n)`` in turn;
    returns each thread's answers, in order. Raises what a thread met first."""
    answers: dict[int, list[Any]] = {}
    errors: list[BaseException] = []

    def asker(n: int) -> None:
        try:
            answers[n] = [ref.ask(question, timeout=timeout) for question in questions(n)]
        except BaseException as exc:  # raised below, on the test's thread
            errors.append(exc)

    started = [threading.Thread(target=asker, args=(n,)) for n in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join(3 * timeout)
    if errors:
        raise errors[0]
    return answers
