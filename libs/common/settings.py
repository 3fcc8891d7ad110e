"""Settings shared by every service: one pydantic-settings class per service on this base.

Every field is read from the environment with the prefix ``PB_`` (``redis_url`` is ``PB_REDIS_URL``)
or from a ``.env`` file in the working directory. Secrets are ``SecretStr`` and never logged.
"""
from __future__ import annotations

import logging
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from libs.common.venue_types import PAPER_TEST_PRIVATE_KEY

log = logging.getLogger(__name__)

S = TypeVar("S", bound="BaseServiceSettings")


class BadSetting(ValueError):
    """Raised when a setting has a value that cannot be used; the message names the variable and value."""


class BaseServiceSettings(BaseSettings):
    """Fields every service reads.

    Attributes:
        mode: ``paper`` (default, against the venue simulator) or ``live`` (needs ``live_confirm``).
        redis_url: ``redis://`` or ``rediss://`` (TLS) URL; user and password may be in it.
        redis_password: optional password kept out of the URL (and out of logs).
        log_level: Python logging level name.
        metrics_port: Prometheus exporter port; 0 disables it.
        instance_id: name of this process in heartbeats and the journal; empty = ``<service>-<pid>``.
    """

    model_config = SettingsConfigDict(
        env_prefix="PB_", env_file=".env", extra="ignore", frozen=True, validate_default=True
    )

    mode: Literal["paper", "live"] = "paper"
    live_confirm: bool = False
    redis_url: str = Field("redis://127.0.0.1:6379/0", pattern=r"^(redis|rediss|unix)://")
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
    """

    private_key: SecretStr | None = None
    wallet_type: Literal["EOA", "POLY_PROXY", "GNOSIS_SAFE", "DEPOSIT_WALLET"] = "DEPOSIT_WALLET"
    wallet: str | None = Field(None, pattern=r"^0x[0-9a-fA-F]{40}$")
    relayer_api_key: SecretStr | None = None
    relayer_api_key_address: str | None = Field(None, pattern=r"^0x[0-9a-fA-F]{40}$")

    # merged into each service's paper_defaults
    venue_paper_defaults: ClassVar[dict[str, Any]] = {"wallet_type": "EOA"}

    @field_validator("private_key")
    @classmethod
    def _key_for_mode(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr:
        if value is not None:
            return value
        if info.data.get("mode") == "live":
            raise ValueError("live mode needs PB_PRIVATE_KEY (its value is never logged)")
        return SecretStr(PAPER_TEST_PRIVATE_KEY)


def describe_error(cls: type[BaseSettings], err: ValidationError) -> str:
    """One line per invalid field: ``PB_FIELD='value': reason``."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    parts = []
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"]) or "?"
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
