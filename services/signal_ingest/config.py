"""Settings of signal_ingest (SPEC S2.1): which leader wallets to follow and how to poll them.

Environment (prefix ``PB_``):

* ``PB_DATA_API_URL``: data-api base URL (``GET {url}/v2/trades``, or ``{url}/trades`` for v1).
* ``PB_DATA_API_VERSION``: ``v2`` (default: ``/v2/trades``, cursor pages, snake_case rows) or ``v1``
  (``/trades``, limit/offset, camelCase rows), the operator's fallback.
* ``PB_LEADERS``: JSON list ``[{"account": "0x..", "min_size": "5", "enabled": true}, ...]``.
* ``PB_LEADERS_FILE``: path of a JSON file holding the same list; its leaders are added to
  ``PB_LEADERS`` (an account listed twice is a bad setting). When only the file is given, the
  paper-mode default leaders are replaced by it.
* ``PB_POLL_INTERVAL_S``, ``PB_PAGE_SIZE``, ``PB_MAX_PAGES``, ``PB_LOOKBACK_S``,
  ``PB_RATE_LIMIT_PER_10S``, ``PB_HTTP_TIMEOUT_S``, ``PB_BACKOFF_MAX_S``.
"""
from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import NoDecode

from libs.common.settings import LIVE_URLS, BaseServiceSettings, paper_urls_for
from services.signal_ingest.wire import V2_MAX_PAGE_SIZE

# Polymarket's documented limits for data-api ``GET /trades`` (reference/polymarket-api.md 1.4 and
# the rate-limit table): ``limit`` max 10000 and 200 requests per 10 s.
MAX_PAGE_SIZE = 10_000
DOC_RATE_LIMIT_PER_10S = 200

DEMO_LEADER = "0x00000000000000000000000000000000000de111"
BTC15M_LEADER = "0x00000000000000000000000000000000000de113"  # data/leaders/btc15m-synthetic.jsonl (the default tape's)
GABAGOOL22 = "0x6031b6eed1c97e853c6e0f03ad3ce3529351f96d"


class LeaderTarget(BaseModel):
    """One followed wallet.

    Attributes:
        account: proxy wallet address, ``0x`` + 40 hex digits, stored lower-case.
        min_size: smallest trade (shares) that becomes a signal; smaller fills are skipped and counted.
        enabled: polled only when true.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    account: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    min_size: Decimal = Field(Decimal(0), ge=0, allow_inf_nan=False)
    enabled: bool = True

    @field_validator("account")
    @classmethod
    def _lower(cls, v: str) -> str:
        return v.lower()


def _parse_leaders(value: Any) -> Any:
    """``PB_LEADERS`` arrives as JSON text; a parse error becomes a validation error naming it."""
    if isinstance(value, str):
        try:
            return json.loads(value) if value.strip() else []
        except json.JSONDecodeError as exc:
            raise ValueError(f"not a JSON list of leader targets ({exc})") from None
    return value


def read_leaders_file(path: Path) -> list[LeaderTarget]:
    """Leader targets from a JSON file holding a list of ``{account, min_size, enabled}``.

    Raises:
        ValueError: the file is missing, not JSON, or an entry is invalid (message names the entry).
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read leaders file {str(path)!r}: {exc}") from None
    if not isinstance(data, list):
        raise ValueError(f"leaders file {str(path)!r} must hold a JSON list, got {type(data).__name__}")
    out = []
    for i, item in enumerate(data):
        try:
            out.append(LeaderTarget.model_validate(item))
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "entry"
            raise ValueError(f"leaders file {str(path)!r} entry {i}: {where}={first.get('input')!r}: "
                             f"{first['msg']}") from None
    return out


class IngestSettings(BaseServiceSettings):
    """signal_ingest settings (SPEC S2.1); see the module docstring for the variables.

    Attributes:
        data_api_url: base URL of the data-api (live: Polymarket's; paper: the venue's ``/data-api``).
        data_api_version: ``v2`` (cursor pages of ``/v2/trades``) or ``v1`` (``/trades``, widening ``limit``).
        leaders: followed wallets (paper default: the synthetic demo leader, gabagool22 and the
            default tape's synthetic leader).
        leaders_file: optional JSON file of more leader targets.
        poll_interval_s: wall seconds between two polls of every leader (default 60, paper 2).
        page_size: ``limit`` of each v2 page (1..1000), or of the first v1 request (1..10000).
        max_pages: a poll reads at most ``page_size * max_pages`` rows (<= 10000: v1's largest
            ``limit``, kept for v2 as the bound of one poll); a poll that needs more is journaled
            ``PAGE_LIMIT_HIT``.
        lookback_s: first run only: publish rows newer than ``now - lookback_s`` market seconds
            (default 0 = only new rows; paper 120, to absorb start-up time at replay speed).
        rate_limit_per_10s: request budget for the data-api across all leaders (documented: 200).
        http_timeout_s: timeout of one HTTP request (wall seconds).
        backoff_max_s: longest pause after HTTP 429 (wall seconds).
    """

    data_api_url: str = Field(LIVE_URLS["data_api_url"], pattern=r"^https?://")
    data_api_version: Literal["v2", "v1"] = "v2"
    leaders: Annotated[list[LeaderTarget], NoDecode] = Field(default_factory=list)
    leaders_file: Path | None = None
    poll_interval_s: float = Field(60.0, gt=0)
    page_size: int = Field(100, ge=1, le=MAX_PAGE_SIZE)
    max_pages: int = Field(20, ge=1)
    lookback_s: int = Field(0, ge=0)
    rate_limit_per_10s: int = Field(DOC_RATE_LIMIT_PER_10S, ge=1)
    http_timeout_s: float = Field(10.0, gt=0)
    backoff_max_s: float = Field(60.0, gt=0)

    paper_defaults: ClassVar[dict[str, Any]] = {
        **paper_urls_for("data_api_url"),
        "poll_interval_s": 0.5,  # wall s; at 20x one poll is 10 s of market time
        # Replays run 20x or faster: a few seconds of process start-up are minutes of market time,
        # which would otherwise turn the tape's first leader trades into ignored "history".
        "lookback_s": 120,
        "leaders": [LeaderTarget(account=DEMO_LEADER, min_size=Decimal(1)),
                    LeaderTarget(account=GABAGOOL22, min_size=Decimal(0)),
                    LeaderTarget(account=BTC15M_LEADER, min_size=Decimal(0))],
    }

    _split_leaders = field_validator("leaders", mode="before")(_parse_leaders)

    @field_validator("leaders_file")
    @classmethod
    def _readable(cls, v: Path | None) -> Path | None:
        if v is not None:
            read_leaders_file(v)
        return v

    @field_validator("max_pages")
    @classmethod
    def _one_request_cap(cls, v: int, info: ValidationInfo) -> int:
        size = info.data.get("page_size", 1)
        if v * size > MAX_PAGE_SIZE:  # v1: the API's largest ``limit``; v2: the same bound per poll
            raise ValueError(f"max_pages x page_size ({size}) must stay within the data-api limit "
                             f"maximum {MAX_PAGE_SIZE}")
        return v

    @field_validator("page_size")
    @classmethod
    def _v2_page_cap(cls, v: int, info: ValidationInfo) -> int:
        if info.data.get("data_api_version") == "v2" and v > V2_MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be at most {V2_MAX_PAGE_SIZE} with PB_DATA_API_VERSION=v2")
        return v

    @model_validator(mode="after")
    def _merge_file(self) -> "IngestSettings":
        if self.leaders_file is not None:
            base = self.leaders if "leaders" in self.model_fields_set else []
            object.__setattr__(self, "leaders", [*base, *read_leaders_file(self.leaders_file)])
        seen = [t.account for t in self.leaders]
        dupes = sorted({a for a in seen if seen.count(a) > 1})
        if dupes:
            raise ValueError(f"PB_LEADERS/PB_LEADERS_FILE: leader account listed twice: {dupes[0]}")
        return self

    def enabled_leaders(self) -> list[LeaderTarget]:
        """The targets to poll, in configuration order."""
        return [t for t in self.leaders if t.enabled]
