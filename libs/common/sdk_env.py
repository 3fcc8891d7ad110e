"""Build a `polymarket-client` Environment that points at another host (e.g. the paper venue).

The official SDK (polymarket-client, `import polymarket`) only exposes the frozen
`polymarket.PRODUCTION` environment publicly; `polymarket.Environment()` raises
`TypeError`.  The ONLY way it offers to aim a client at another host is the private
helper `polymarket._internal.environment.create_environment(name=, config=)` fed a
`dataclasses.replace(PRODUCTION_CONFIG, ...)` (SDK source:
polymarket/_internal/environment.py, polymarket/environments.py).  We keep
PRODUCTION's chain id (137) and every contract address so that the EIP-712 order
domains, proxy / safe / deposit-wallet derivations and signatures are byte-for-byte
those of production; only the URLs change.  Pin the SDK version: this is a private API.
"""

from __future__ import annotations

import dataclasses

import polymarket
from polymarket._internal.environment import PRODUCTION_CONFIG, create_environment

PAPER_ENV_NAME = "paper"


def sdk_environment(
    clob_url: str,
    *,
    relayer_url: str,
    gamma_url: str,
    data_url: str,
    rpc_url: str,
    ws_market_url: str,
    ws_user_url: str,
    name: str = PAPER_ENV_NAME,
) -> polymarket.Environment:
    """Return an SDK Environment equal to PRODUCTION except for its URLs.

    All arguments are absolute URLs (http(s):// for REST, ws(s):// for websockets),
    without trailing slash.  Contract addresses, chain id 137 and wallet derivation
    parameters are PRODUCTION's.  Raises TypeError if the SDK's private config
    dataclass changes field names (polymarket/environments.py `_EnvironmentConfig`).
    """
    config = dataclasses.replace(
        PRODUCTION_CONFIG,
        clob_url=clob_url.rstrip("/"),
        relayer_url=relayer_url.rstrip("/"),
        gamma_url=gamma_url.rstrip("/"),
        data_url=data_url.rstrip("/"),
        rpc_url=rpc_url.rstrip("/"),
        clob_market_ws_url=ws_market_url,
        clob_user_ws_url=ws_user_url,
    )
    return create_environment(name=name, config=config)


def paper_urls(http_base: str, ws_base: str) -> dict[str, str]:
    """The paper venue's URL conventions, as keyword arguments for `sdk_environment`.

    `http_base` e.g. "http://127.0.0.1:8080", `ws_base` e.g. "ws://127.0.0.1:8081".
    Returns {"clob_url", "relayer_url", "gamma_url", "data_url", "rpc_url",
    "ws_market_url", "ws_user_url"}: CLOB at the root, relayer under /relayer,
    Gamma under /gamma, data-api under /data-api, JSON-RPC at /rpc, websockets at
    /ws/market and /ws/user.  Usage: `sdk_environment(**paper_urls(h, w))`.
    """
    http = http_base.rstrip("/")
    ws = ws_base.rstrip("/")
    return {
        "clob_url": http,
        "relayer_url": f"{http}/relayer",
        "gamma_url": f"{http}/gamma",
        "data_url": f"{http}/data-api",
        "rpc_url": f"{http}/rpc",
        "ws_market_url": f"{ws}/ws/market",
        "ws_user_url": f"{ws}/ws/user",
    }


def production_urls() -> dict[str, str]:
    """Polymarket's own service URLs as polyband's ``PB_*`` settings, read from the SDK's PRODUCTION
    environment (polymarket/environments.py), so a live run talks to what the SDK itself targets:
    ``PB_CLOB_URL``, ``PB_WS_MARKET_URL``, ``PB_WS_USER_URL``, ``PB_DATA_API_URL``, ``PB_GAMMA_URL``."""
    cfg = PRODUCTION_CONFIG
    return {"PB_CLOB_URL": cfg.clob_url, "PB_WS_MARKET_URL": cfg.clob_market_ws_url,
            "PB_WS_USER_URL": cfg.clob_user_ws_url, "PB_DATA_API_URL": cfg.data_url,
            "PB_GAMMA_URL": cfg.gamma_url}
