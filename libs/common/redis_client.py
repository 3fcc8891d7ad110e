"""Redis client factory: decoded strings, timeouts, a short retry on connection errors, a client name.

``PB_REDIS_URL`` names either one Redis (``redis://``, ``rediss://`` for TLS, ``unix://``) or a Redis
Cluster: ``redis+cluster://[user:password@]host:port`` (``rediss+cluster://`` for TLS), any one node
of it as the seed; the other nodes are discovered (``libs.common.redis_wait.cluster_seed``).
"""
from __future__ import annotations

from redis import Redis, RedisCluster
from redis._parsers import CommandsParser
from redis.backoff import ExponentialBackoff
from redis.exceptions import ClusterDownError, RedisClusterException, SlotNotCoveredError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry

from libs.common.redis_wait import ClusterProbe, cluster_seed, probe_client
from libs.common.settings import BaseServiceSettings


def stream_keys(args: tuple[object, ...]) -> list[object]:
    """The stream keys of an ``XREAD``/``XREADGROUP`` command's args (the first half of what follows
    ``STREAMS``); [] when there is no ``STREAMS``."""
    for i, a in enumerate(args):
        if (a.decode() if isinstance(a, bytes) else str(a)).upper() == "STREAMS":
            rest = args[i + 1:]
            return list(rest[:len(rest) // 2])
    return []


class _StreamKeysParser(CommandsParser):
    """redis-py asks the server (``COMMAND GETKEYS``, one extra round trip per call, made even inside
    a pipeline) for the keys of commands with movable keys; XREAD/XREADGROUP's are found locally."""

    def get_keys(self, redis_conn, *args):  # type: ignore[no-untyped-def]
        if str(args[0]).upper() in ("XREAD", "XREADGROUP"):
            return stream_keys(args) or None
        return super().get_keys(redis_conn, *args)


class PolybandCluster(RedisCluster):
    """``RedisCluster`` that, like the single-node client, never retries a command after a timeout
    (the command may have run: retrying would run it twice). Connection errors (after which the slot
    map is refreshed: a failover) and cluster-down replies are retried as configured. The keys of
    XREAD/XREADGROUP are parsed locally (``_StreamKeysParser``), also in its pipelines."""

    ERRORS_ALLOW_RETRY = (RedisConnectionError, ClusterDownError, SlotNotCoveredError)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.commands_parser.__class__ = _StreamKeysParser  # same state, one method added


def _password(settings: BaseServiceSettings) -> str | None:
    return settings.redis_password.get_secret_value() if settings.redis_password else None


def make_redis(settings: BaseServiceSettings, client_name: str = "polyband") -> Redis:
    """A ``Redis`` for ``settings.redis_url`` (``rediss://`` enables TLS; ACL user/password allowed),
    or a :class:`PolybandCluster` for a cluster URL (module doc; same options).

    Replies are decoded to ``str``. A connection error is retried twice within about 0.2 s (a pooled
    connection that died with a Redis restart reconnects); a timeout is never retried (the command may
    have run: retrying would run it twice). Longer outages surface to the caller, and the service's
    ``RedisGate`` (``libs.common.redis_wait``, used by ``runtime.run_loop``) waits them out.

    Raises:
        redis.exceptions.ConnectionError: a cluster URL and no node of the cluster answers (building a
            cluster client reads the slot map); a single Redis is only connected to on first use.
    """
    password = _password(settings)
    kwargs: dict[str, object] = {}
    if password is not None:
        kwargs["password"] = password
    retry = Retry(ExponentialBackoff(cap=0.2, base=0.05), 2, supported_errors=(RedisConnectionError,))
    common = dict(decode_responses=True, socket_timeout=settings.redis_socket_timeout_s,
                  socket_connect_timeout=settings.redis_socket_timeout_s, health_check_interval=10,
                  retry=retry, client_name=client_name, **kwargs)
    seed = cluster_seed(settings.redis_url)
    if seed is not None:
        try:
            return PolybandCluster.from_url(seed, **common)  # type: ignore[return-value]
        except RedisClusterException as exc:
            raise RedisConnectionError(f"cluster unreachable: {exc}") from None
    return Redis.from_url(settings.redis_url, retry_on_error=[RedisConnectionError], **common)


def make_probe(settings: BaseServiceSettings) -> Redis | ClusterProbe:
    """The PING-only client of ``settings``' Redis for ``RedisGate`` (short timeouts, no retries)."""
    return probe_client(settings.redis_url, _password(settings), min(1.0, settings.redis_socket_timeout_s))


def is_cluster(r: object) -> bool:
    """True when ``r`` is a Redis Cluster client (its commands are routed per slot)."""
    return isinstance(r, RedisCluster)


def redis_for_url(url: str, client_name: str = "polyband-ops", socket_timeout_s: float = 10.0) -> Redis:
    """A decoded client for ``url`` outside a service's settings (ops tools, tests): a plain
    ``Redis`` or, for a cluster URL, a :class:`PolybandCluster` (module doc).

    Raises:
        redis.exceptions.ConnectionError: a cluster URL and no node of the cluster answers.
    """
    seed = cluster_seed(url)
    if seed is None:
        return Redis.from_url(url, decode_responses=True, socket_timeout=socket_timeout_s, client_name=client_name)
    try:
        return PolybandCluster.from_url(seed, decode_responses=True, socket_timeout=socket_timeout_s,  # type: ignore[return-value]
                                        client_name=client_name)
    except RedisClusterException as exc:
        raise RedisConnectionError(f"cluster unreachable: {exc}") from None
