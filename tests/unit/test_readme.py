"""README.md stays true: it starts with the two commands, CI runs exactly its test command, and its
configuration table is the one the settings classes give."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()


def first_commands() -> list[str]:
    block = re.search(r"```bash\n(.*?)```", README, re.S)
    assert block and README.index("```bash") < README.index("\n## "), "README must open with the commands"
    return [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_readme_starts_with_run_and_test_commands() -> None:
    run, test = first_commands()
    assert run.startswith("./polyband up") and test == "./polyband test"


def test_ci_runs_exactly_the_readme_test_command() -> None:
    ci = [line.strip() for line in (REPO / ".ci/run").read_text().splitlines()]
    assert first_commands()[1] in ci


def test_configuration_table_matches_the_settings() -> None:
    spec = importlib.util.spec_from_file_location("settings_table", REPO / "scripts/settings_table.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.table() in README, "regenerate with: python scripts/settings_table.py"
