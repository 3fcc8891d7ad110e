"""Settings shared by every service: one pydantic-settings class per service on this base.

Every field is read from the environment with the prefix ``PB_`` (``redis_url`` is ``PB_REDIS_URL``)
or from a ``.env`` file in the working directory. Secrets are ``SecretStr`` and never logged.
"""
from __future__ import annotations

import logging
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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
