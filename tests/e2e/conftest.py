from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark this folder's tests ``e2e`` (the hook sees every item of the session: only ours)."""
    for item in items:
        if HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.e2e)
            # One xdist worker runs every end-to-end test, one after the other: each starts the venue and
            # every service as processes, and two at once on a 2-core machine would make their
            # deadlines race each other; the other worker takes the unit and integration tests.
            item.add_marker(pytest.mark.xdist_group("e2e"))
