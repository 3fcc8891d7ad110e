"""Settings of the paper venue (``python -m services.venue_sim``), env prefix ``PB_``.

Paths that are not absolute are taken relative to the working directory; the defaults point into the
repository (found from this file), so the venue starts on the bundled tape from anywhere.
"""
from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

from pydantic import AliasChoices, Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from libs.common.settings import BaseServiceSettings
from services.venue_sim.wallets import DEFAULT_OWNERS

REPO = Path(__file__).resolve().parents[2]
DEFAULT_TAPE = REPO / "data" / "tapes" / "btc5m-2026-02-18-am"
DEFAULT_LEADERS = [REPO / "data" / "leaders" / "demo-synthetic.jsonl"]
FRAME_FILES = ("frames.jsonl", "frames.jsonl.gz", "quotes.csv.gz")  # quotes.csv.gz: a quote tape (libs/common/quote_tape.py)


class PaperExchangeSettings(BaseSettings):
    """Settings of the venue's exchange rules (also read alone by ``Engine`` when it is given none).

    Attributes:
        paper_owners: owner key addresses whose proxy / Safe / deposit wallets are computed at start
            (``PB_PAPER_OWNERS``, comma-separated or JSON list; default: the address of
            ``libs.common.venue_types.PAPER_TEST_PRIVATE_KEY`` and Hardhat account #1).
        settle_mined_ms: market ms from a match to its trade's MINED status (``PB_SETTLE_MINED_MS``).
        settle_confirmed_ms: market ms from MINED to CONFIRMED (``PB_SETTLE_CONFIRMED_MS``).
        order_rate_capacity, order_rate_per_s: per-signer order bucket (burst, refill per wall s).
        cancel_rate_capacity, cancel_rate_per_s: per-signer cancel bucket. Defaults are generous
            (Polymarket's own burst figures) so normal runs never hit them.
    """

    model_config = SettingsConfigDict(env_prefix="PB_", env_file=".env", extra="ignore", frozen=True,
                                      env_ignore_empty=True)

    paper_owners: Annotated[list[str], NoDecode] = Field(default_factory=lambda: list(DEFAULT_OWNERS))
    settle_mined_ms: int = Field(1000, ge=0)
    settle_confirmed_ms: int = Field(2000, ge=0)
    order_rate_capacity: int = Field(3500, ge=1)
    order_rate_per_s: int = Field(60, ge=1)
    cancel_rate_capacity: int = Field(3000, ge=1)
    cancel_rate_per_s: int = Field(50, ge=1)

    @field_validator("paper_owners", mode="before")
    @classmethod
    def _split_owners(cls, value: Any) -> Any:
        """Accept ``"0xA,0xB"`` and ``'["0xA"]'``; every item must be a 0x + 40 hex address."""
        if isinstance(value, str):
            text = value.strip()
            value = json.loads(text) if text.startswith("[") else [p.strip() for p in text.split(",") if p.strip()]
        for item in value:
            if not (isinstance(item, str) and len(item) == 42 and item.startswith("0x")
                    and all(c in "0123456789abcdefABCDEF" for c in item[2:])):
                raise ValueError(f"not an address: {item!r:.60}")
        return value


class VenueSettings(BaseServiceSettings, PaperExchangeSettings):
    """Paper venue settings.

    Attributes:
        venue_host: interface the HTTP and WebSocket servers bind to.
        venue_http_port: CLOB REST, data-api, Gamma and ``/_sim`` controls (``PB_VENUE_HTTP_PORT``).
        venue_ws_port: market (``/ws/market``) and user (``/ws/user``) channels (``PB_VENUE_WS_PORT``).
        tape: a tape directory (holding ``frames.jsonl[.gz]``) or a frames file (``PB_TAPE``).
        markets: the tape's ``markets.json``; default ``<tape dir>/markets.json`` (``PB_MARKETS``).
        leader_files: leader files (JSON lines), ``PB_LEADER_FILES`` comma-separated or a JSON list
            (``leaders`` reads it; not ``PB_LEADERS``, which is signal_ingest's list of accounts).
        speed: market ms per wall ms of the replay (> 0).
        seed: seed of every random choice of the venue (determinism).
        start_usdc: pUSD credited to an account when its first API key is created (USD).
        audit_log: JSON-lines audit file (``PB_AUDIT_LOG`` or ``PB_VENUE_AUDIT_LOG``).
        start_delay_ms: wall ms between start-up and the first tape frame (time for clients to connect).
        ws_idle_timeout_s: a WebSocket connection that sent nothing (no PING, no message) for this
            many wall seconds is closed.
        ws_queue_max: outgoing frames buffered per WebSocket connection; on overflow it is closed.
        tick_flip_low, tick_flip_high: a token whose tape best bid or ask goes below ``low`` or above
            ``high`` trades at tick 0.001 (Polymarket's rule, reference/polymarket-api.md 1.1).
        paper_owners, settle_*_ms, *_rate_*: see PaperExchangeSettings.
    """

    venue_host: str = "127.0.0.1"
    venue_http_port: int = Field(8080, ge=0, le=65535)
    venue_ws_port: int = Field(8081, ge=0, le=65535)
    tape: Path = DEFAULT_TAPE
    markets: Path | None = None
    leader_files: Annotated[list[Path], NoDecode] = Field(default_factory=lambda: list(DEFAULT_LEADERS))
    speed: float = Field(1.0, gt=0)
    seed: int = 7
    start_usdc: Decimal = Field(Decimal("1000"), ge=0)
    audit_log: Path = Field(REPO / "var" / "venue_audit.jsonl",
                            validation_alias=AliasChoices("PB_AUDIT_LOG", "PB_VENUE_AUDIT_LOG", "audit_log"))
    start_delay_ms: int = Field(1500, ge=0)
    ws_idle_timeout_s: float = Field(15.0, gt=0)
    ws_queue_max: int = Field(10_000, ge=1)
    tick_flip_low: Decimal = Field(Decimal("0.04"), gt=0, lt=1)
    tick_flip_high: Decimal = Field(Decimal("0.96"), gt=0, lt=1)

    @field_validator("leader_files", mode="before")
    @classmethod
    def _split_leaders(cls, value: Any) -> Any:
        """Accept ``"a.jsonl,b.jsonl"`` and ``'["a.jsonl"]'`` as well as a list; ``""`` = no leaders."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [p.strip() for p in text.split(",") if p.strip()]
        return value

    @field_validator("tape")
    @classmethod
    def _tape_exists(cls, value: Path) -> Path:
        if not value.exists():
            raise ValueError(f"no tape directory or frames file at {value}")
        if value.is_dir() and not any((value / f).exists() for f in FRAME_FILES):
            raise ValueError(f"tape directory {value} holds none of {', '.join(FRAME_FILES)}")
        return value

    @field_validator("leader_files")
    @classmethod
    def _leaders_exist(cls, value: list[Path]) -> list[Path]:
        missing = [str(p) for p in value if not p.is_file()]
        if missing:
            raise ValueError(f"no leader file at {', '.join(missing)}")
        return value

    @field_validator("markets")
    @classmethod
    def _markets_exist(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        tape = info.data.get("tape")
        if value is None and tape is not None:
            value = (tape if tape.is_dir() else tape.parent) / "markets.json"
        if value is not None and not value.is_file():
            raise ValueError(f"no markets.json at {value}")
        return value

    @field_validator("tick_flip_high")
    @classmethod
    def _flip_above_low(cls, value: Decimal, info: ValidationInfo) -> Decimal:
        low = info.data.get("tick_flip_low")
        if low is not None and value <= low:
            raise ValueError(f"must be above PB_TICK_FLIP_LOW={low}")
        return value

    @property
    def leaders(self) -> list[Path]:
        """The leader files the venue serves on its data-api."""
        return list(self.leader_files)

    def tape_dir(self) -> Path:
        """The directory of the tape (``tape`` itself, or the folder of a frames file)."""
        return self.tape if self.tape.is_dir() else self.tape.parent

    def frames_path(self) -> Path:
        """The frames file to replay: in a directory the first of ``FRAME_FILES`` present (``frames.jsonl``,
        ``frames.jsonl.gz``, else a quote tape's ``quotes.csv.gz``, which ``replay.read_frames`` expands)."""
        if self.tape.is_file():
            return self.tape
        return next(self.tape / f for f in FRAME_FILES if (self.tape / f).exists())

    def markets_path(self) -> Path:
        """The market list (always set after validation)."""
        assert self.markets is not None
        return self.markets
