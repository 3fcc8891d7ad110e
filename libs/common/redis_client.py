"""Redis client factory: decoded strings, timeouts, a short retry on connection errors, a client name."""
from __future__ import annotations

from redis import Redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry

from libs.common.redis_wait import probe_client
from libs.common.settings import BaseServiceSettings


def _password(settings: BaseServiceSettings) -> str | None:
    return settings.redis_password.get_secret_value() if settings.redis_password else None


def make_redis(settings: BaseServiceSettings, client_name: str = "polyband") -> Redis:
    """A ``Redis`` for ``settings.redis_url`` (``rediss://`` enables TLS; ACL user/password allowed).

    Replies are decoded to ``str``. A connection error is retried twice within about 0.2 s (a pooled
    connection that died with a Redis restart reconnects); a timeout is never retried (the command may
    have run: retrying would run it twice). Longer outages surface to the caller, and the service's
    ``RedisGate`` (``libs.common.redis_wait``, used by ``runtime.run_loop``) waits them out.
    """
    password = _password(settings)
    kwargs: dict[str, object] = {}
    if password is not None:
        kwargs["password"] = password
    return Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_timeout=settings.redis_socket_timeout_s,
        socket_connect_timeout=settings.redis_socket_timeout_s,
        health_check_interval=10,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), 2, supported_errors=(RedisConnectionError,)),
        retry_on_error=[RedisConnectionError],
        client_name=client_name,
        **kwargs,
    )


def make_probe(settings: BaseServiceSettings) -> Redis:
    """The PING-only client of ``settings``' Redis for ``RedisGate`` (short timeouts, no retries)."""
    return probe_client(settings.redis_url, _password(settings), min(1.0, settings.redis_socket_timeout_s))
