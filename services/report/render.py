"""Output of ``polyband report``: rich tables (one numbered section per answer, 200 columns) or one
JSON object ``{"answers": {...}, "tokens": {...}, "since_ms": ..., "now_ms": ...}`` with Decimals
as strings."""
from __future__ import annotations

from decimal import Decimal

import orjson
from rich.console import Console
from rich.table import Table

from services.report.answers import TITLES

MAX_ROWS = 25  # rows per table on screen (the first, by the table's order); --json has them all


def _default(x: object) -> str:
    if isinstance(x, Decimal):
        return format(x, "f")
    raise TypeError(f"not JSON-serialisable: {type(x).__name__}")


def to_json(answers: dict[str, dict], tokens: dict[str, dict[str, str]], since_ms: int, now_ms: int) -> bytes:
    """The ``--json`` document (module doc)."""
    doc = {"answers": answers, "tokens": tokens, "since_ms": since_ms, "now_ms": now_ms}
    return orjson.dumps(doc, default=_default)


def cell(v: object) -> str:
    """One table cell: "-" for None, Decimals in plain notation, the rest as str."""
    if v is None:
        return "-"
    if isinstance(v, Decimal):
        return format(v, "f")
    return str(v)


def short_token(token: str, tokens: dict[str, dict[str, str]]) -> str:
    """``1234567890..6789 Up (5:15AM-5:30AM)``: a token id cut short with its outcome and title tail."""
    t = tokens.get(token, {})
    tid = token if len(token) <= 16 else f"{token[:10]}..{token[-4:]}"
    title = t.get("title", "")
    tail = title[title.rfind(",") + 1:].strip()[:40] if title else ""
    return " ".join(x for x in (tid, t.get("outcome", ""), tail) if x)


def table(name: str, rows: dict[str, dict], tokens: dict[str, dict[str, str]]) -> Table:
    """A table of ``rows`` (row key -> {column: value}); token keys shown by ``short_token``."""
    cols = list(dict.fromkeys(c for r in rows.values() for c in r))
    t = Table(title=name, title_justify="left", show_edge=False, pad_edge=False)
    t.add_column(name.replace("per_", ""), overflow="fold", max_width=60)
    for c in cols:
        t.add_column(c, justify="right")
    for key, row in list(rows.items())[:MAX_ROWS]:
        label = short_token(key, tokens) if name == "per_token" else key
        t.add_row(label, *(cell(row.get(c)) for c in cols))
    if len(rows) > MAX_ROWS:
        t.caption = f"{len(rows) - MAX_ROWS} more rows in --json"
    return t


def render(console: Console, answers: dict[str, dict], tokens: dict[str, dict[str, str]], since_ms: int,
           now_ms: int) -> None:
    """Print every answer as a numbered section: its totals on one line, then its tables."""
    console.print(f"[bold]polyband report[/bold]  now={now_ms} (market ms)"
                  + (f"  since={since_ms}" if since_ms else "") + f"  tokens={len(tokens)}")
    for key, title in TITLES.items():
        ans = answers.get(key, {})
        console.rule(f"[bold]{key.split('_')[0]}. {title}", align="left")
        total = ans.get("total", {})
        console.print("  ".join(f"{k}=[bold]{cell(v)}[/bold]" for k, v in total.items()) or "(nothing)")
        for name, part in ans.items():
            if name == "total" or not part:
                continue
            if all(isinstance(v, dict) for v in part.values()):
                console.print(table(name, part, tokens))
            else:
                console.print(f"{name}: " + "  ".join(f"{k}={cell(v)}" for k, v in part.items()))
