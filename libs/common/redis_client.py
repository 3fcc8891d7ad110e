"""Redis client factory: decoded strings, timeouts, retries on connection errors, a client name."""
from __future__ import annotations

from redis import Redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from libs.common.settings import BaseServiceSettings


def make_redis(settings: BaseServiceSettings, client_name: str = "polyband") -> Redis:
    """A ``Redis`` for ``settings.redis_url`` (``rediss://`` enables TLS; ACL user/password allowed).

    Replies are decoded to ``str``. Connection and timeout errors are retried with exponential
    backoff (up to 6 times, capped at 2 s), so a Redis restart is ridden out rather than crashing.
    """
    password = settings.redis_password.get_secret_value() if settings.redis_password else None
    kwargs: dict[str, object] = {}
    if password is not None:
        kwargs["password"] = password
    return Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_timeout=settings.redis_socket_timeout_s,
        socket_connect_timeout=settings.redis_socket_timeout_s,
        health_check_interval=10,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.05), 6),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        client_name=client_name,
        **kwargs,
    )
