"""A run's Redis, kept in its run folder: ``export_redis`` writes every ``pb:*`` key to
``<folder>/redis.pbdump``; ``open_run`` serves it again from a private, throwaway redis-server so
``polyband report --run DIR`` reads a finished run exactly as it reads a live one.

File format of ``redis.pbdump`` (gzip, no pickle): the magic line ``PBDUMP1\\n``, then one record per
key until the end of the stream::

    u32 big-endian  key length     | key bytes (UTF-8)
    u32 big-endian  payload length | payload bytes (Redis ``DUMP`` output: RDB-encoded value)
    i64 big-endian  pttl           (milliseconds left to live; -1 = no expiry)

A ``DUMP`` payload carries its RDB version; it is restored by a redis-server of the same or a newer
major version (the machine's own ``redis-server`` in practice).
"""
from __future__ import annotations

import gzip
import shutil
import struct
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

from redis import Redis, RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError

from libs.common import keys

DUMP_NAME = "redis.pbdump"
MAGIC = b"PBDUMP1\n"
BATCH = 500  # keys per pipeline
_U32 = struct.Struct(">I")
_I64 = struct.Struct(">q")


class RunStoreError(RuntimeError):
    """The run's Redis could not be served (redis-server missing, not starting, bad dump file)."""


def _raw(r: Redis) -> Redis:
    """A non-decoding client on the same server as ``r`` (DUMP payloads are bytes); for a
    ``RedisCluster``, a non-decoding cluster client on its nodes (SCAN then covers every primary)."""
    if isinstance(r, RedisCluster):
        node = r.get_default_node()
        ckw = {k: v for k, v in r.get_connection_kwargs().items()  # TLS, password, timeouts, client name
               if k not in ("host", "port", "redis_connect_func", "decode_responses", "retry", "cache")}
        return RedisCluster(host=node.host, port=node.port, decode_responses=False, **ckw)  # type: ignore[return-value]
    kwargs = dict(r.connection_pool.connection_kwargs)
    kwargs["decode_responses"] = False
    return Redis(connection_pool=r.connection_pool.__class__(
        connection_class=r.connection_pool.connection_class, **kwargs))


def _write_batch(raw: Redis, names: list[bytes], out: BinaryIO) -> int:
    pipe = raw.pipeline(transaction=False)
    for k in names:
        pipe.dump(k)
        pipe.pttl(k)
    res = pipe.execute()
    n = 0
    for i, k in enumerate(names):
        payload, pttl = res[2 * i], res[2 * i + 1]
        if payload is None or pttl == -2:  # expired or deleted between SCAN and DUMP
            continue
        out.write(_U32.pack(len(k)) + k + _U32.pack(len(payload)) + payload + _I64.pack(int(pttl)))
        n += 1
    return n


def export_redis(r: Redis, folder: Path) -> Path:
    """Write every ``pb:*`` key of ``r`` (SCAN + DUMP + PTTL, pipelined) to ``folder/redis.pbdump``
    (module doc for the format); returns the file's path. The folder is created when missing.

    Raises:
        redis.RedisError: Redis refused or failed a command.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path, tmp = folder / DUMP_NAME, folder / (DUMP_NAME + ".tmp")
    raw, batch = _raw(r), []
    with open(tmp, "wb") as fh, gzip.GzipFile(fileobj=fh, mode="wb", compresslevel=3, mtime=0) as out:
        out.write(MAGIC)
        for k in raw.scan_iter(match=keys.ALL_PATTERN, count=1000):
            batch.append(k)
            if len(batch) >= BATCH:
                _write_batch(raw, batch, out)
                batch = []
        if batch:
            _write_batch(raw, batch, out)
    raw.close()
    tmp.replace(path)
    return path


def _exact(fh: BinaryIO, n: int, path: Path) -> bytes:
    data = fh.read(n)
    if len(data) != n:
        raise RunStoreError(f"{path}: truncated record (wanted {n} bytes, got {len(data)})")
    return data


def read_dump(path: Path) -> Iterator[tuple[bytes, bytes, int]]:
    """``(key, payload, pttl ms)`` records of a ``redis.pbdump`` file (module doc).

    Raises:
        RunStoreError: the file is not a pbdump (bad magic) or a record is truncated.
    """
    with gzip.open(path, "rb") as fh:
        if fh.read(len(MAGIC)) != MAGIC:
            raise RunStoreError(f"{path}: not a polyband Redis dump (missing {MAGIC!r} header)")
        while head := fh.read(_U32.size):
            if len(head) != _U32.size:
                raise RunStoreError(f"{path}: truncated record header")
            key = _exact(fh, _U32.unpack(head)[0], path)
            payload = _exact(fh, _U32.unpack(_exact(fh, _U32.size, path))[0], path)
            yield key, payload, _I64.unpack(_exact(fh, _I64.size, path))[0]


def restore_into(r: Redis, path: Path) -> int:
    """RESTORE (REPLACE) every record of ``path`` into ``r``, keeping TTLs; returns the key count.

    Raises:
        RunStoreError: bad dump file; redis.RedisError: a RESTORE refused (e.g. an older redis-server).
    """
    raw, n = _raw(r), 0
    pipe = raw.pipeline(transaction=False)
    for key, payload, pttl in read_dump(path):
        pipe.restore(key, max(0, pttl), payload, replace=True)
        n += 1
        if n % BATCH == 0:
            pipe.execute()
    pipe.execute()
    raw.close()
    return n


def _spawn(sock: Path) -> subprocess.Popen[bytes]:
    if not shutil.which("redis-server"):
        raise RunStoreError("redis-server is not installed: it is needed to open a run folder "
                            "(apt-get install redis-server)")
    return subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
                             "--save", "", "--appendonly", "no", "--dir", str(sock.parent)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_ready(proc: subprocess.Popen[bytes], r: Redis, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RunStoreError(f"redis-server exited at start with status {proc.returncode}")
        try:
            if r.ping():
                return
        except (RedisConnectionError, OSError):  # not up yet: polled until the deadline
            time.sleep(0.02)
    raise RunStoreError(f"redis-server did not answer within {timeout_s}s")


@contextmanager
def open_run(folder: Path) -> Iterator[Redis]:
    """Serve the Redis of a finished run: a private redis-server (unix socket in a temp dir, no
    persistence) loaded from ``folder/redis.pbdump``; yields a decoded client; stops the server and
    removes the temp dir on exit.

    Raises:
        ValueError: ``folder`` is not a folder or holds no ``redis.pbdump``.
        RunStoreError: redis-server missing or not starting, or a bad dump file.
    """
    folder = Path(folder)
    if not (folder / DUMP_NAME).is_file():
        what = "is not a folder" if not folder.is_dir() else f"has no {DUMP_NAME} (a run's Redis export)"
        raise ValueError(f"run folder {str(folder)!r} {what}")
    tmp = Path(tempfile.mkdtemp(prefix="polyband-run-"))
    proc = None
    try:
        proc = _spawn(tmp / "redis.sock")
        r = Redis(unix_socket_path=str(tmp / "redis.sock"), decode_responses=True)
        _wait_ready(proc, r)
        restore_into(r, folder / DUMP_NAME)
        yield r
        r.close()
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()  # a throwaway server without persistence: nothing to shut down cleanly (saves ~80 ms)
            proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
