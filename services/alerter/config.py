"""Settings of the alerter (env prefix ``PB_``): the webhook and its rate limits (wall seconds).

``PB_ALERT_WEBHOOK_URL`` is a secret (a Telegram or Discord URL holds a bot token): it is never logged
and never shown in a ``BAD_SETTING`` message; logs name its host only.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from libs.common.settings import BaseServiceSettings


class AlerterSettings(BaseServiceSettings):
    """alerter settings.

    Attributes:
        alert_webhook_url: where alerts are POSTed (``PB_ALERT_WEBHOOK_URL``, SecretStr, http(s)).
            None or empty = no webhook: the alerter logs what it would send and journals
            ``ALERT_SKIPPED_NO_URL`` once. Discord (``https://discord.com/api/webhooks/<id>/<token>``)
            and Telegram (``https://api.telegram.org/bot<TOKEN>/sendMessage?chat_id=<ID>``) URLs get
            their own payload; any other URL gets the generic JSON (``services.alerter.webhook``).
        alert_min_interval_s: minimum wall seconds between two alerts of the same key (default 300).
        alert_max_per_hour: at most this many alerts sent in any 3600 wall seconds (default 30).
        alert_service_down_s: a ``pb:svc`` heartbeat older than this (wall seconds) is a service down.
        alert_timeout_s: timeout of one webhook POST (wall seconds).
        alert_step_interval_s: wall seconds between two alerter steps.
    """

    alert_webhook_url: SecretStr | None = None
    alert_min_interval_s: float = Field(300.0, ge=0)
    alert_max_per_hour: int = Field(30, ge=1)
    alert_service_down_s: float = Field(30.0, gt=0)
    alert_timeout_s: float = Field(5.0, gt=0)
    alert_step_interval_s: float = Field(1.0, gt=0)

    @field_validator("alert_webhook_url", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value is None or (isinstance(value, str) and not value.strip()) else value

    @model_validator(mode="after")
    def _check_url(self) -> "AlerterSettings":
        """A model-level error: its message never includes the input (the URL holds a secret)."""
        if self.alert_webhook_url is not None:
            parts = urlsplit(self.alert_webhook_url.get_secret_value().strip())
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("PB_ALERT_WEBHOOK_URL must be an http:// or https:// URL with a host "
                                 f"(scheme={parts.scheme!r}; the rest is not shown: it may hold a secret)")
        return self

    def webhook_url(self) -> str:
        """The webhook URL ("" when none is set). Never log it: use ``webhook.host_of``."""
        return self.alert_webhook_url.get_secret_value().strip() if self.alert_webhook_url else ""
