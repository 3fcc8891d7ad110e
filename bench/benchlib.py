"""Helpers the benchmarks share: a private redis-server, a free port, percentiles.

A benchmark never touches a Redis it did not start.
"""
from __future__ import annotations

import shutil
import socket
import statistics
import subprocess
import tempfile
import time

from redis import Redis


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisProc:
    """A private redis-server on a free port (never someone else's Redis)."""

    def __init__(self) -> None:
        self.port, self.dir = free_port(), tempfile.mkdtemp(prefix="md-bench-")
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", self.dir], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if Redis(port=self.port).ping():
                    return
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    @property
    def url(self) -> str:
        """``redis://`` URL of this server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        """Stop the server and delete its directory."""
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def pct(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0..100, resolution 0.1), interpolated within the data (never past its
    maximum, as the default "exclusive" method is on small samples)."""
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 10) - 1] if len(values) > 10 else float("nan")
