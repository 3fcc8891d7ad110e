#!/usr/bin/env python3
"""Print the README's configuration table from the services' settings classes (one row per PB_*
variable: which services read it, its default, and its paper-mode default when that differs).

Usage: python scripts/settings_table.py   (tests/unit/test_readme.py checks the README matches)
"""
from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from libs.common.settings import BaseServiceSettings  # noqa: E402

SERVICES = ("signal_ingest", "md_gateway", "user_feed", "scheduler", "maker_worker", "venue_sim", "alerter")


def settings_classes() -> dict[str, type[BaseServiceSettings]]:
    """Service name -> its settings class (the one BaseServiceSettings subclass in its config)."""
    out = {}
    for svc in SERVICES:
        mod = importlib.import_module(f"services.{svc}.config")
        out[svc] = next(c for _, c in inspect.getmembers(mod, inspect.isclass)
                        if issubclass(c, BaseServiceSettings) and c.__module__ == mod.__name__)
    return out


def show(value: object) -> str:
    if hasattr(value, "get_secret_value"):
        return "(secret)"
    text = "" if value is None else str(value).replace(str(REPO) + "/", "")
    if isinstance(value, list):
        text = f"{len(value)} entries" if value else "[]"
    return f"`{text}`" if text else ""


def rows() -> list[tuple[str, str, str, str]]:
    """(env var, services, default, paper default) sorted by variable; a variable whose default differs
    between services lists each (``svc: `value```)."""
    readers: dict[str, list[str]] = {}
    defaults: dict[str, dict[str, list[str]]] = {}
    papers: dict[str, dict[str, list[str]]] = {}
    for svc, cls in settings_classes().items():
        for name, field in cls.model_fields.items():
            default = field.get_default(call_default_factory=True)
            paper = cls.paper_defaults.get(name, default)
            who = "all" if name in BaseServiceSettings.model_fields else svc
            readers.setdefault(name, []).append(who)
            defaults.setdefault(name, {}).setdefault(show(default), []).append(who)
            papers.setdefault(name, {}).setdefault(show(paper) if paper != default else "", []).append(who)
    return [(f"`PB_{n.upper()}`", ", ".join(dict.fromkeys(readers[n])), per_service(defaults[n]),
             per_service(papers[n])) for n in sorted(readers)]


def per_service(values: dict[str, list[str]]) -> str:
    """One value, or ``svc: value`` per distinct value when services differ."""
    if len(values) == 1:
        return next(iter(values))
    return "; ".join(f"{', '.join(dict.fromkeys(svcs))}: {v or 'none'}" for v, svcs in values.items())


def table() -> str:
    """The markdown table."""
    lines = ["| variable | read by | default | paper default |", "|---|---|---|---|"]
    lines += [f"| {v} | {s} | {d} | {p} |" for v, s, d, p in rows()]
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
