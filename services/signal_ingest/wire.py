"""Pure: the two data-api trade dialects signal_ingest reads, and how a row maps onto one view.

* ``v1``: ``GET /trades?user=&limit=&offset=&takerOnly=false`` -> JSON array of camelCase rows
  ``{proxyWallet, side, asset, conditionId, size, price, timestamp, transactionHash, title, slug,
  icon, eventSlug, outcome, outcomeIndex, name, pseudonym, bio, profileImage, profileImageOptimized}``.
* ``v2`` (default; polymarket-client 0.14.0 ``list_trades``, polymarket/_internal/actions/data.py):
  ``GET /v2/trades?user=&taker_only=false&limit=&cursor=`` -> ``{"data": [row, ...],
  "pagination": {"has_more": bool, "next_cursor": str | null}}``, rows newest first in snake_case
  (polymarket/models/data/activity.py ``Trade``): ``proxy_wallet`` (the model also accepts
  ``wallet``), ``token_id`` (or ``asset_id``), ``condition_id``, ``side``, ``size``, ``price``,
  ``timestamp`` (Unix seconds), ``transaction_hash``, ``title``, ``slug``, ``icon``, ``event_slug``,
  ``outcome``, ``outcome_index``, ``name``, ``pseudonym``, ``bio``, ``profile_image``,
  ``profile_image_optimized``. ``limit`` is at most 1000 (the SDK's ``max_page_size``).

Normalisation, fingerprints and timestamps work on the v1 *view* of a row (``view``): v2 keys are
renamed to their v1 names, everything else is kept. So a fill has the same fingerprint in both
dialects and an operator can switch ``PB_DATA_API_VERSION`` without re-publishing the fills at the
cursor second. Dead letters name the field as it was received (``wire_field``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from services.signal_ingest.normalize import BadBody, parse_json, show

V1, V2 = "v1", "v2"
VERSIONS = (V2, V1)
V2_MAX_PAGE_SIZE = 1000

# v1 name -> v2 wire names, first found wins (the SDK model's alias, then its field name).
V2_NAMES: Mapping[str, tuple[str, ...]] = {
    "proxyWallet": ("proxy_wallet", "wallet"), "asset": ("token_id", "asset_id"),
    "conditionId": ("condition_id",), "transactionHash": ("transaction_hash",), "eventSlug": ("event_slug",),
    "outcomeIndex": ("outcome_index",), "profileImage": ("profile_image",),
    "profileImageOptimized": ("profile_image_optimized",),
}
_ALIASES = frozenset(n for names in V2_NAMES.values() for n in names)


@dataclass(frozen=True)
class Page:
    """One v2 page: ``rows`` as received (newest first) and the server's ``next_cursor`` (None = last)."""

    rows: list[Any]
    next_cursor: str | None


def view(raw: Any, version: str) -> Any:
    """The v1-named view of a row (a non-object or a v1 row is returned unchanged)."""
    if version != V2 or not isinstance(raw, dict):
        return raw
    out = {k: v for k, v in raw.items() if k not in _ALIASES}
    for v1_name, names in V2_NAMES.items():
        found = next((n for n in names if n in raw), None)
        if found is not None:
            out[v1_name] = raw[found]
    return out


def wire_field(field: str, raw: Any, version: str) -> str:
    """The name under which ``field`` (a v1 name) was received; the first v2 alias when absent."""
    if version != V2 or field not in V2_NAMES:
        return field
    names = V2_NAMES[field]
    present = [n for n in names if isinstance(raw, dict) and n in raw]
    return present[0] if present else names[0]


def parse_page(body: bytes | str) -> Page:
    """Parse a ``/v2/trades`` body (numbers with a fraction as ``Decimal``, see ``parse_body``).

    Raises:
        BadBody: not JSON, not an object, ``data`` not an array, ``pagination`` missing, or
            ``has_more`` / ``next_cursor`` malformed or disagreeing (the SDK's checks).
    """
    obj = parse_json(body)
    if not isinstance(obj, dict):
        raise BadBody(f"body is not an object: {show(obj)}")
    data, pag = obj.get("data"), obj.get("pagination")
    if not isinstance(data, list) or not isinstance(pag, dict):
        raise BadBody(f"body lacks data[] or pagination{{}}: {show(obj)}")
    more, cursor = pag.get("has_more"), pag.get("next_cursor")
    if not isinstance(more, bool) or (cursor is not None and (not isinstance(cursor, str) or not cursor)):
        raise BadBody(f"bad pagination: {show(pag)}")
    if more != (cursor is not None):
        raise BadBody(f"has_more and next_cursor disagree: {show(pag)}")
    return Page(data, cursor)
