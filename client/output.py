"""What commands print on stdout: tables for people, JSON for programs."""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterable, Sequence
from typing import Any

import click


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False))


def printable(text: Any) -> str:
    """``text`` fit for a terminal line: as it is, or quoted and escaped if it holds control characters.

    Names and messages come from the server: a NUL, a newline or an escape
    sequence in one must not garble, split or restyle what the user reads.
    """
    text = str(text)
    return text if text.isprintable() else repr(text)


def human_size(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, right: Iterable[int] = ()) -> str:
    """A plain text table; columns in ``right`` are right-aligned (numbers)."""
    right = set(right)
    cells = [[str(h) for h in headers]] + [["-" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        parts = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=False))]
        return "  ".join(parts).rstrip()

    return "\n".join([line(cells[0]), line(["-" * w for w in widths])] + [line(r) for r in cells[1:]])


def _ratio(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio * 100:.1f}%"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return _dt.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def _error(error: dict[str, Any] | None) -> str:
    return "" if not error else printable(f"{error.get('code')}: {error.get('message')}")


def status_text(status: dict[str, Any]) -> str:
    """``squeezer status``: a header line, one row per file, a totals line."""
    totals = status.get("totals", {})
    header = (
        f"job {status['job_id']}  {status['state']}  {status['algorithm']} level {status['level']}"
        f"  created {_when(status.get('created_at'))}"
    )
    rows = [
        (
            printable(f["name"]),
            f["state"],
            human_size(f["size"]),
            human_size(f.get("compressed_size")),
            _ratio(f.get("ratio")),
            _seconds((f.get("timings") or {}).get("compress_seconds")),
            _error(f.get("error")),
        )
        for f in status.get("files", [])
    ]
    body = table(("NAME", "STATE", "SIZE", "COMPRESSED", "RATIO", "SECONDS", "ERROR"), rows, right=(2, 3, 4, 5))
    counts = ", ".join(f"{n} {state}" for state, n in (status.get("counts") or {}).items() if n)
    footer = (
        f"{totals.get('files', len(rows))} file(s): {counts or 'none'}; "
        f"{human_size(totals.get('bytes_in'))} -> {human_size(totals.get('bytes_out'))}"
        f" ({_ratio(totals.get('ratio'))})"
    )
    return "\n".join((header, "", body, "", footer))


def age(timestamp: float | None, now: float) -> str:
    """'just now', '3 min ago', '5 h ago', '2 days ago'."""
    if timestamp is None:
        return "-"
    seconds = max(0.0, now - timestamp)
    if seconds < 60:
        return "just now"
    for size, unit in ((86400, "day"), (3600, "h"), (60, "min")):
        if seconds >= size:
            count = int(seconds // size)
            plural = "s" if unit == "day" and count != 1 else ""
            return f"{count} {unit}{plural} ago"
    raise AssertionError("unreachable")  # pragma: no cover


def jobs_text(jobs: list[dict[str, Any]], *, now: float) -> str:
    """``squeezer jobs``: one labelled column each for id, state, algorithm, files, ratio, size, age."""
    rows = [
        (
            j["job_id"],
            j.get("state") or ("cancelled" if j.get("cancelled_at") else "-"),
            f"{j['algorithm']}/{j['level']}",
            j.get("file_count"),
            _ratio(j.get("ratio")),
            human_size(j.get("total_size")),
            age(j.get("created_at"), now),
        )
        for j in jobs
    ]
    return table(("JOB", "STATE", "ALGORITHM", "FILES", "RATIO", "SIZE", "AGE"), rows, right=(3, 4, 5))


def failed_text(status: dict[str, Any]) -> str:
    """``squeezer status --failed``: the failed files and their errors, or a line saying there are none."""
    files = status.get("files", [])
    if not files:
        return f"job {status['job_id']}: no failed files"
    rows = [(printable(f["name"]), human_size(f["size"]), _error(f.get("error"))) for f in files]
    return table(("NAME", "SIZE", "ERROR"), rows, right=(1,))
