"""Medians over several ``run.py`` result files (one run each), with the spread.

Usage::

    .venv/bin/python bench/summarize.py bench/results/run1.json bench/results/run2.json ... [--markdown]

For each row/durability/metric: the median value over the runs, its min-max, the
median Pipe baseline, the median of the per-run ratios (each ratio is actor / Pipe
measured in the same run), and whether the median meets the target.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from typing import Any

from run import TARGETS, fmt, fmt_ratio


def summarise(paths: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    runs = []
    for path in paths:
        with open(path) as handle:
            runs.append(json.load(handle))
    order: list[tuple[str, str, str]] = []
    grouped: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for run in runs:
        for row in run["rows"]:
            key = (row["row"], row["durability"], row["metric"])
            if key not in grouped:
                grouped[key] = []
                order.append(key)
            grouped[key].append(row)
    summary = []
    for key in order:
        rows = grouped[key]
        values = [r["value"] for r in rows if r["value"] is not None]
        baselines = [r["baseline"] for r in rows if r["baseline"] is not None]
        ratios = [r["ratio"] for r in rows if r["ratio"] is not None]
        probes = [r.get("fs_create_probe_us") for r in rows if r.get("fs_create_probe_us") is not None]
        value = statistics.median(values)
        target = TARGETS.get(key)
        met = None
        if target is not None:
            op, bound, _ = target
            met = {">=": value >= bound, "<=": value <= bound, "<": value < bound}[op]
        summary.append({
            "row": key[0], "durability": key[1], "metric": key[2], "unit": rows[0]["unit"],
            "runs": len(values), "value": value, "min": min(values), "max": max(values),
            "baseline": statistics.median(baselines) if baselines else None,
            "ratio": statistics.median(ratios) if ratios else None,
            "n": rows[0]["n"], "target": target[2] if target else None, "met": met,
            "met_runs": sum(1 for r in rows if r["met"]), "probe_us": probes,
        })
    meta = [{"mode": r["mode"], "started_at": r["started_at"], "code": r["machine"].get("code"),
             "loadavg": r["machine"].get("loadavg_at_start"), "seconds": sum(r["seconds"].values()),
             "probe_us": r.get("fs_create_probe_us"), "errors": r.get("errors")} for r in runs]
    return summary, meta


def render(summary: list[dict[str, Any]], markdown: bool) -> str:
    header = ["row", "durability", "metric", "median", "min-max", "unit", "Pipe", "ratio", "n", "target",
              "met (median)", "runs met"]
    lines = []
    for s in summary:
        is_ratio = s["metric"] == "ratio"
        met = "-" if s["met"] is None else ("yes" if s["met"] else "**no**" if markdown else "NO")
        lines.append([s["row"], s["durability"], s["metric"], fmt(s["value"], s["unit"]),
                      f"{fmt(s['min'], s['unit'])}-{fmt(s['max'], s['unit'])}", s["unit"],
                      fmt(s["baseline"], s["unit"]), "-" if is_ratio else fmt_ratio(s["ratio"]),
                      str(s["n"] if s["n"] is not None else "-"), s["target"] or "-", met,
                      f"{s['met_runs']}/{s['runs']}" if s["target"] else "-"])
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |" for line in lines]
        return "\n".join(out)
    rows = [header, *lines]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    out = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--json", help="write the summary here")
    args = parser.parse_args(argv)
    summary, meta = summarise(args.files)
    print(render(summary, args.markdown))
    print()
    for m in meta:
        print(f"run: mode={m['mode']} code={m['code']} load={m['loadavg']} {m['seconds']:.0f} s "
              f"fs probe us={m['probe_us']} errors={m['errors'] or 'none'}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"summary": summary, "runs": meta}, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
