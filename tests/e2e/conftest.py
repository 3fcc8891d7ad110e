from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark this folder's tests ``e2e`` (the hook sees every item of the session: only ours)."""
    for item in items:
        if HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.e2e)
            # No xdist_group here: xdist reads the groups before this hook runs, so a group added here
            # is ignored, and the end-to-end tests spread over both workers (measured: a second e2e
            # test may run beside the first; their deadlines are sized for it). Serialising them all
            # on one worker would take the suite past 15 minutes on this 2-core machine. Modules that
            # must not overlap each other say so themselves (``pytestmark`` with ``xdist_group("e2e")``:
            # the cluster pipeline, the fault matrix and the nemesis run one after the other).
