"""Settings shared by every service: one pydantic-settings class per service on this base.

Every field is read from the environment with the prefix ``PB_`` (``redis_url`` is ``PB_REDIS_URL``)
or from a ``.env`` file in the working directory. Secrets are ``SecretStr`` and never logged.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Literal, Mapping, TypeVar

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from libs.common.venue_types import PAPER_TEST_PRIVATE_KEY

log = logging.getLogger(__name__)

S = TypeVar("S", bound="BaseServiceSettings")

# Where services connect: Polymarket's own endpoints by default (what polymarket-client's PRODUCTION
# environment targets; tests/unit/test_settings_shared.py keeps them equal), the paper venue's in
# paper mode. One table, so that every service reading a URL has the same default in each mode.
LIVE_URLS: dict[str, str] = {
    "clob_url": "https://clob.polymarket.com",
    "ws_market_url": "wss://ws-subscriptions-clob.polymarket.com/ws/market",
    "ws_user_url": "wss://ws-subscriptions-clob.polymarket.com/ws/user",
    "data_api_url": "https://data-api.polymarket.com",
    "gamma_url": "https://gamma-api.polymarket.com",
}
PAPER_URLS: dict[str, str] = {
    "clob_url": "http://127.0.0.1:8080",
    "ws_market_url": "ws://127.0.0.1:8081/ws/market",
    "ws_user_url": "ws://127.0.0.1:8081/ws/user",
    "data_api_url": "http://127.0.0.1:8080/data-api",
    "gamma_url": "http://127.0.0.1:8080/gamma",
}


def paper_urls_for(*names: str) -> dict[str, str]:
    """The paper defaults of the URL settings ``names`` (for a class's ``paper_defaults``)."""
    return {n: PAPER_URLS[n] for n in names}


class BadSetting(ValueError):
    """Raised when a setting has a value that cannot be used; the message names the variable and value."""


# ---- rules between fields that several services read (defined once, applied to every class) ----
MIN_LEASE_TTL_MS = 1_000
RENEWALS_PER_TTL = 2  # a worker renews its leases every step; 3 would split the scheduler (step 0.5 s)
# from the workers (0.25 s) on a TTL of 1000-1499 ms when PB_STEP_INTERVAL_S is not set
MAX_STATUS_INTERVAL_MS = 1_000  # md_gateway's and user_feed's status_interval_s is at most 1 s
STALE_AFTER_MISSED = 2  # a feed is stale after this many status writes at the longest interval
# The venue HTTP timeout (VenueSettings.http_timeout_s: workers, scheduler, user_feed) must end inside
# a lease: a call that outlasts it could act after a takeover. Gamma's timeout holds no lease, and
# md_gateway's / signal_ingest's read no PB_LEASE_TTL_MS.
HTTP_TIMEOUT_FIELDS = ("http_timeout_s",)


def env_name(field: str) -> str:
    """The environment variable of a settings field (``lease_ttl_ms`` -> ``PB_LEASE_TTL_MS``)."""
    return f"PB_{field.upper()}"


def named(values: Mapping[str, Any], *fields: str) -> str:
    """``PB_A=1, PB_B=2.0``: the variables a message is about, with their values."""
    return ", ".join(f"{env_name(f)}={values[f]!r}" for f in fields)


@dataclass(frozen=True)
class SharedRule:
    """A rule between settings fields; it applies to every settings class that has all ``fields``.

    ``broken(values)`` returns the reason (without the variables, which the message prefixes) or None.
    """

    fields: tuple[str, ...]
    broken: Callable[[Mapping[str, Any]], str | None]

    def error(self, values: Mapping[str, Any]) -> str | None:
        """``PB_X=v, PB_Y=w: reason`` when the rule is broken, else None."""
        why = self.broken(values)
        return None if why is None else f"{named(values, *self.fields)}: {why}"


def _ttl_floor(v: Mapping[str, Any]) -> str | None:
    if v["lease_ttl_ms"] < MIN_LEASE_TTL_MS:
        return f"must be at least {MIN_LEASE_TTL_MS} ms (every service refuses a shorter lease)"
    return None


def _ttl_vs_step(v: Mapping[str, Any]) -> str | None:
    least = RENEWALS_PER_TTL * v["step_interval_s"] * 1000
    if v["lease_ttl_ms"] < least:
        return (f"the lease TTL must be at least {RENEWALS_PER_TTL} step intervals ({least:g} ms), so that "
                f"a worker renews its lease at least {RENEWALS_PER_TTL} times per TTL")
    return None


def _timeout_below_ttl(timeout: str) -> Callable[[Mapping[str, Any]], str | None]:
    def broken(v: Mapping[str, Any]) -> str | None:
        if v[timeout] * 1000 >= v["lease_ttl_ms"]:
            return ("an HTTP timeout must be shorter than the lease TTL, or a call could still act after "
                    "the lease passed to another worker")
        return None
    return broken


def _stale_after_status(v: Mapping[str, Any]) -> str | None:
    least = STALE_AFTER_MISSED * MAX_STATUS_INTERVAL_MS
    if v["gateway_stale_ms"] < least:
        return (f"must be at least {least} ms ({STALE_AFTER_MISSED} status writes of md_gateway and "
                f"user_feed, at most {MAX_STATUS_INTERVAL_MS} ms apart), or a healthy feed is seen as down")
    return None


def _backoff_bounds(v: Mapping[str, Any]) -> str | None:
    return "the longest backoff must not be below the shortest" if v["backoff_max_s"] < v["backoff_min_s"] else None


SHARED_RULES: tuple[SharedRule, ...] = (
    SharedRule(("lease_ttl_ms",), _ttl_floor),
    SharedRule(("lease_ttl_ms", "step_interval_s"), _ttl_vs_step),
    *(SharedRule(("lease_ttl_ms", t), _timeout_below_ttl(t)) for t in HTTP_TIMEOUT_FIELDS),
    SharedRule(("gateway_stale_ms",), _stale_after_status),
    SharedRule(("backoff_min_s", "backoff_max_s"), _backoff_bounds),
)


def shared_errors(values: Mapping[str, Any]) -> list[str]:
    """Messages of the shared rules ``values`` (field name -> value) break, in rule order.

    A rule applies when every one of its fields is in ``values``; a rule on a field that already
    broke an earlier rule is skipped, so each variable gets one clear reason (the same in every
    service, whatever its other fields).
    """
    errors, failed = [], set()
    for rule in SHARED_RULES:
        if all(f in values for f in rule.fields) and not failed.intersection(rule.fields):
            msg = rule.error(values)
            if msg is not None:
                errors.append(msg)
                failed.update(rule.fields)
    return errors


class BaseServiceSettings(BaseSettings):
    """Fields every service reads.

    Attributes:
        mode: ``paper`` (default, against the venue simulator) or ``live`` (needs ``live_confirm``).
        redis_url: ``redis://`` or ``rediss://`` (TLS) URL; user and password may be in it;
            ``redis+cluster://host:port`` (``rediss+cluster://``) names a Redis Cluster by one node.
        redis_password: optional password kept out of the URL (and out of logs).
        log_level: Python logging level name.
        metrics_port: Prometheus exporter port; 0 disables it.
        instance_id: name of this process in heartbeats and the journal; empty = ``<service>-<pid>``.
    """

    model_config = SettingsConfigDict(
        env_prefix="PB_", env_file=".env", extra="ignore", frozen=True, validate_default=True,
        env_ignore_empty=True,  # PB_X= (or compose's ${PB_X:-}) means "not set": the default applies
    )

    mode: Literal["paper", "live"] = "paper"
    live_confirm: bool = False
    redis_url: str = Field("redis://127.0.0.1:6379/0", pattern=r"^(redis|rediss|unix|redis\+cluster|rediss\+cluster)://")
    redis_password: SecretStr | None = None
    redis_socket_timeout_s: float = Field(5.0, gt=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    metrics_port: int = Field(0, ge=0, le=65535)
    instance_id: str = ""

    # Defaults that replace the field defaults in paper mode, for the tape's five-minute markets
    # (seconds, not hours). A value set explicitly (environment, .env or keyword) always wins.
    paper_defaults: ClassVar[dict[str, Any]] = {}

    @model_validator(mode="after")
    def _apply_paper_defaults(self) -> "BaseServiceSettings":
        if self.mode == "paper":
            for name, value in self.paper_defaults.items():
                if name not in self.model_fields_set:
                    object.__setattr__(self, name, value)
        return self

    @model_validator(mode="after")
    def _shared_rules(self) -> "BaseServiceSettings":
        """Apply ``SHARED_RULES`` to this class's fields (after the paper defaults)."""
        errors = shared_errors({name: getattr(self, name) for name in type(self).model_fields})
        if errors:
            raise ValueError("; ".join(errors))
        return self


class VenueSettings(BaseServiceSettings):
    """Fields of every service that trades or keeps the exchange heartbeat (scheduler, maker_worker).

    Attributes:
        private_key: signer key (``PB_PRIVATE_KEY``, SecretStr, never logged). Live mode refuses to
            start without it; paper mode defaults to a published throwaway test key holding nothing
            (``libs.common.venue_types.PAPER_TEST_PRIVATE_KEY``).
        wallet_type: the wallet the key trades for (``PB_WALLET_TYPE``): EOA, POLY_PROXY,
            GNOSIS_SAFE or DEPOSIT_WALLET. Default DEPOSIT_WALLET (what Polymarket API accounts must
            use); paper default EOA.
        wallet: that wallet's address (``PB_WALLET``); empty = derived from the key for the type.
            Needed for a session key acting for a deposit wallet, or a legacy deposit wallet.
        relayer_api_key, relayer_api_key_address: Polymarket Relayer API key (secret) and its address
            (empty = the signer's), for relayed transactions of proxy / safe / deposit wallets:
            redeeming resolved positions, deploying a missing deposit wallet. Paper: not needed.
        http_timeout_s: timeout of every venue HTTP call (wall seconds); below the lease TTL wherever
            both are read (``SHARED_RULES``), and the worker's takeover grace after an old lease expired.
    """

    private_key: SecretStr | None = None
    wallet_type: Literal["EOA", "POLY_PROXY", "GNOSIS_SAFE", "DEPOSIT_WALLET"] = "DEPOSIT_WALLET"
    wallet: str | None = Field(None, pattern=r"^0x[0-9a-fA-F]{40}$")
    relayer_api_key: SecretStr | None = None
    relayer_api_key_address: str | None = Field(None, pattern=r"^0x[0-9a-fA-F]{40}$")
    http_timeout_s: float = Field(5.0, gt=0)

    # merged into each service's paper_defaults
    venue_paper_defaults: ClassVar[dict[str, Any]] = {"wallet_type": "EOA"}

    @field_validator("private_key")
    @classmethod
    def _key_for_mode(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr:
        if value is not None and value.get_secret_value():  # empty (compose's ${PB_PRIVATE_KEY:-}) = unset
            return value
        if info.data.get("mode") == "live":
            raise ValueError("live mode needs PB_PRIVATE_KEY (its value is never logged)")
        return SecretStr(PAPER_TEST_PRIVATE_KEY)


def describe_error(cls: type[BaseSettings], err: ValidationError) -> str:
    """One line per invalid field: ``PB_FIELD='value': reason``. A rule between fields (an error of
    the whole model) gives its own message, which names its variables; the input itself is never
    shown, as it holds every setting, secrets included."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    parts = []
    for e in err.errors():
        if not e["loc"]:
            parts.append(str(e["msg"]).removeprefix("Value error, "))
            continue
        field = ".".join(str(p) for p in e["loc"])
        parts.append(f"{prefix}{field.upper()}={e.get('input')!r}: {e['msg']}")
    return "; ".join(parts)


def load_settings(cls: type[S], **overrides: object) -> S:
    """Build ``cls`` from the environment (plus keyword overrides).

    Raises:
        BadSetting: naming every invalid variable and its value.
    """
    try:
        settings = cls(**overrides)  # type: ignore[arg-type]
    except ValidationError as err:
        raise BadSetting(f"bad setting: {describe_error(cls, err)}") from None
    if settings.mode == "live" and not settings.live_confirm:
        raise BadSetting("bad setting: PB_MODE='live' needs PB_LIVE_CONFIRM=true as well")
    return settings
