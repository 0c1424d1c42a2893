"""Plain-text tables and JSON output for the CLI."""

from __future__ import annotations

import json
from typing import Any

import click

from .exit_codes import EXIT_USAGE, CliError

#: Characters of a message body shown by ``inbox`` and ``dead``.
BODY_WIDTH = 60


def table(headers: list[str], rows: list[list[str]], right: frozenset[int] = frozenset()) -> str:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(headers)] + [line(r) for r in rows])


def cell(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def short(value: Any, width: int = BODY_WIDTH) -> str:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    return text if len(text) <= width else text[: width - 3] + "..."


def parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        hint = " (quote strings: '\"text\"')" if text[:1] not in "{[\"" else ""
        raise CliError(f"bad JSON for {what}: {exc}{hint}", EXIT_USAGE) from None


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))
