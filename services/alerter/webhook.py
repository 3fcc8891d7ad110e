"""Webhook delivery: the payload for the URL's kind, and one POST that never raises.

Payload by the URL's host:
- ``discord.com`` / ``discordapp.com`` (a Discord webhook URL): ``{"content": text}``;
- ``api.telegram.org``: ``{"text": text}``, the chat in the URL's query:
  ``https://api.telegram.org/bot<TOKEN>/sendMessage?chat_id=<ID>``;
- anything else, generic JSON: ``{"text", "alert" (kind), "severity", "token_id", "reason",
  "ts_ms" (wall ms of the occurrence), "suppressed", "source": "polyband"}``.
The URL holds a secret (the bot token, the webhook token): only its host is ever logged.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from services.alerter.core import render
from services.alerter.limiter import Alert

DISCORD_HOSTS = ("discord.com", "discordapp.com")
TELEGRAM_HOST = "api.telegram.org"


def host_of(url: str) -> str:
    """The URL's host name (what logs and the journal may show), "" if none."""
    return urlsplit(url).hostname or ""


def _is_host(host: str, domain: str) -> bool:
    return host == domain or host.endswith("." + domain)


def payload_for(url: str, alert: Alert) -> dict[str, Any]:
    """The JSON body to POST to ``url`` for ``alert`` (module doc)."""
    host, text = host_of(url), render(alert)
    if any(_is_host(host, d) for d in DISCORD_HOSTS):
        return {"content": text}
    if host == TELEGRAM_HOST:
        return {"text": text}
    return {"text": text, "alert": alert.kind, "severity": alert.severity, "token_id": alert.token_id,
            "reason": alert.reason, "ts_ms": alert.ts_ms, "suppressed": alert.suppressed, "source": "polyband"}


def keep_url_out_of_logs() -> None:
    """httpx logs every request's full URL at INFO: keep its logger at WARNING or above (the services'
    ``configure_logging`` does so too; this also holds when the sender is used without it)."""
    httpx_log = logging.getLogger("httpx")
    if httpx_log.getEffectiveLevel() < logging.WARNING:
        httpx_log.setLevel(logging.WARNING)


@dataclass(frozen=True)
class SendResult:
    """Outcome of one POST: ``ok``, HTTP ``status`` (0 when none came back), ``error`` ("" when ok)."""

    ok: bool
    status: int = 0
    error: str = ""


class WebhookSender:
    """POSTs alerts to one webhook URL.

    Args:
        url: the webhook URL (secret; never logged: ``host`` is).
        timeout_s: timeout of one POST (wall seconds).
        transport: an httpx transport (tests); default the network.
    """

    def __init__(self, url: str, timeout_s: float, transport: httpx.BaseTransport | None = None) -> None:
        self.url, self.host = url, host_of(url)
        keep_url_out_of_logs()
        self.http = httpx.Client(timeout=timeout_s, transport=transport, follow_redirects=False)

    def send(self, alert: Alert) -> SendResult:
        """POST ``alert``; a 2xx answer is ok, anything else (status, timeout, refused) is not. Never raises."""
        try:
            resp = self.http.post(self.url, json=payload_for(self.url, alert))
        except httpx.HTTPError as exc:  # the message may quote the URL: keep the exception's type only
            return SendResult(False, 0, type(exc).__name__)
        if 200 <= resp.status_code < 300:
            return SendResult(True, resp.status_code)
        return SendResult(False, resp.status_code, f"HTTP {resp.status_code}")

    def close(self) -> None:
        """Close the HTTP client."""
        self.http.close()
