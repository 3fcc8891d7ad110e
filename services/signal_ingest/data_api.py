"""HTTP client for data-api ``GET /v2/trades`` and v1 ``GET /trades`` (wire.py). Imperative shell.

Always sends ``taker_only=false`` (v2) / ``takerOnly=false`` (v1): the API defaults to taker fills
only, and a leader's maker fills are trades too (SPEC S2.1). Every failure becomes a ``FetchError`` with a reason code; the caller
journals it and never advances a cursor on it.
"""
from __future__ import annotations

from typing import Any

import httpx

from services.signal_ingest.normalize import BadBody, parse_body
from services.signal_ingest.wire import Page, parse_page


class FetchError(Exception):
    """A ``/trades`` request failed.

    Attributes:
        reason: ``HTTP_429``, ``HTTP_5XX``, ``HTTP_4XX``, ``HTTP_TIMEOUT``, ``HTTP_ERROR`` (transport)
            or ``BAD_RESPONSE`` (body not a JSON array / v2 page envelope).
        status: HTTP status (0 when there was no response).
        detail: short text (error or body start).
        retry_after_s: the server's ``Retry-After`` in seconds, when a 429 carried one.
    """

    def __init__(self, reason: str, status: int, detail: str, retry_after_s: float | None = None) -> None:
        super().__init__(f"{reason} status={status} {detail}")
        self.reason, self.status, self.detail, self.retry_after_s = reason, status, detail, retry_after_s


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("Retry-After", "")
    try:
        return float(value) if value else None
    except ValueError:
        return None  # an HTTP-date form is ignored: the jittered exponential backoff still applies


class DataApi:
    """Trades of one wallet from ``base_url`` (e.g. ``https://data-api.polymarket.com``).

    ``trades`` reads v1 ``GET /trades`` (limit/offset), ``trades_v2`` v2 ``GET /v2/trades`` (cursor
    pages); wire.py describes both shapes.

    Args:
        base_url: data-api base URL without the trailing ``/trades``.
        timeout_s: per-request timeout (wall seconds).
        client: optional ``httpx.Client`` (tests); one is created otherwise and closed by ``close``.
    """

    def __init__(self, base_url: str, timeout_s: float, client: httpx.Client | None = None) -> None:
        self.url = base_url.rstrip("/") + "/trades"
        self.url_v2 = base_url.rstrip("/") + "/v2/trades"
        self._own = client is None
        self.client = client or httpx.Client(timeout=timeout_s, headers={"Accept": "application/json"})

    def trades(self, account: str, limit: int, offset: int) -> list[Any]:
        """One v1 page of ``account``'s fills, newest first, numbers with fractions as ``Decimal``.

        Raises:
            FetchError: on any HTTP status other than 200, a transport error, a timeout or a body
                that is not a JSON array.
        """
        params = {"user": account, "limit": str(limit), "offset": str(offset), "takerOnly": "false"}
        body, status = self._get(self.url, params)
        try:
            return parse_body(body)
        except BadBody as exc:
            raise FetchError("BAD_RESPONSE", status, str(exc)) from None

    def trades_v2(self, account: str, limit: int, cursor: str | None) -> Page:
        """One v2 page (``limit`` rows at most, after the server's opaque ``cursor``; None = newest).
        Always ``taker_only=false``: the API still defaults to taker fills only.

        Raises:
            FetchError: as ``trades``; ``BAD_RESPONSE`` when the body is not a v2 page envelope.
        """
        params = {"user": account, "limit": str(limit), "taker_only": "false"}
        if cursor is not None:
            params["cursor"] = cursor
        body, status = self._get(self.url_v2, params)
        try:
            return parse_page(body)
        except BadBody as exc:
            raise FetchError("BAD_RESPONSE", status, str(exc)) from None

    def _get(self, url: str, params: dict[str, str]) -> tuple[bytes, int]:
        """``GET url`` -> (body, status 200). Raises ``FetchError`` on anything but a 200."""
        try:
            resp = self.client.get(url, params=params)
        except httpx.TimeoutException as exc:
            raise FetchError("HTTP_TIMEOUT", 0, f"{type(exc).__name__}: {exc}") from None
        except httpx.HTTPError as exc:
            raise FetchError("HTTP_ERROR", 0, f"{type(exc).__name__}: {exc}") from None
        if resp.status_code != 200:
            kind = "HTTP_429" if resp.status_code == 429 else "HTTP_5XX" if resp.status_code >= 500 else "HTTP_4XX"
            raise FetchError(kind, resp.status_code, resp.text[:200], _retry_after(resp))
        return resp.content, resp.status_code

    def close(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._own:
            self.client.close()
