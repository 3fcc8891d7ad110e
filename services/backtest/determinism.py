"""What makes a back-test repeatable byte for byte beyond the virtual clock: the official SDK stamps
each order with a random 256-bit ``salt`` and the wall-clock ``timestamp`` (both in the signed
struct, so in the order id: ``polymarket/_internal/actions/orders/orders.py``). During a back-test
they come from a counter and the virtual clock instead; nothing else about the order changes."""
from __future__ import annotations

import contextlib
import itertools
from typing import Iterator

from polymarket._internal.actions.orders import orders as sdk_orders

from libs.common.clock import Clock


@contextlib.contextmanager
def deterministic_orders(clock: Clock, first_salt: int = 1) -> Iterator[None]:
    """While active, order salts are ``first_salt, first_salt + 1, ...`` and order timestamps are
    ``clock.wall_ms()`` (virtual ms)."""
    salts = itertools.count(first_salt)
    saved = sdk_orders._generate_salt, sdk_orders._current_timestamp_ms
    sdk_orders._generate_salt = lambda: next(salts)  # type: ignore[assignment]
    sdk_orders._current_timestamp_ms = clock.wall_ms  # type: ignore[assignment]
    try:
        yield
    finally:
        sdk_orders._generate_salt, sdk_orders._current_timestamp_ms = saved  # type: ignore[assignment]
