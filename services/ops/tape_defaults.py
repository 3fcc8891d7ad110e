"""The bundled tapes and the leaders that go with each (``data/README.md``): the defaults of ``up``
and ``backtest``. A light module, so that the console starts fast."""
from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TAPES, LEADERS = REPO / "data" / "tapes", REPO / "data" / "leaders"
# The default of `up` and `backtest`: 5 h of real L2 depth, 18 real resolutions, crypto fees.
DEFAULT_TAPE = TAPES / "btc15m-2026-09-28"
# The tests' tape: 33 min of top of book, with the demo leader drawn from it.
DEMO_TAPE = TAPES / "btc5m-2026-02-18-am"
DEMO_LEADERS = (LEADERS / "demo-synthetic.jsonl", LEADERS / "gabagool22.jsonl.gz")
TAPE_LEADERS = {  # each bundled tape's leaders (data/README.md); a synthetic leader is drawn from its tape
    "btc15m-2026-09-28": (LEADERS / "btc15m-synthetic.jsonl",),
    "week-2026-07": (LEADERS / "week-2026-07-synthetic.jsonl",),
    "btc5m-2026-02-18-am": DEMO_LEADERS,
    "btc5m-2026-02-17-pm": (LEADERS / "demo-synthetic-long.jsonl",),
}


def default_leaders(tape: Path) -> tuple[Path, ...]:
    """The leader files that go with a bundled tape (``TAPE_LEADERS``).

    Raises:
        ValueError: no default for this tape: name one with ``--leader``.
    """
    leaders = TAPE_LEADERS.get(Path(tape).name)
    if leaders is None:
        raise ValueError(f"tape {tape}: no default leader file; pass --leader FILE")
    return leaders


