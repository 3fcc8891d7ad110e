"""Benchmark of order signing through the venue adapter (a benchmark, not a test):
``python bench/signing.py [--orders N] [--wallet-type EOA|POLY_PROXY|GNOSIS_SAFE|DEPOSIT_WALLET]``.

Signs ``--orders`` GTC limit orders with ``VenueClient.sign_limit`` (EIP-712 typed data, the
secp256k1 signature and the order hash; no HTTP: signing is local) twice in the same process:

* coincurve: eth_keys' default backend when coincurve is installed (libsecp256k1, C);
* native: eth_keys' pure-Python ``NativeECCBackend``, selected with eth_keys' own switch, the
  ``ECC_BACKEND_CLASS`` environment variable, read when the adapter builds its key object.

and, as the baseline of the adapter's own struct hashing, the SDK's signing steps themselves
(``SecureClient._sign_order``: ``build_order_typed_data`` + eth_account ``sign_typed_data``, coincurve
backend) on the same unsigned orders. Prints ms/order (mean and p50/p99 over single orders) for each
and the ratios native / coincurve and SDK path / adapter. Prices cycle over the 0.01 grid and sizes vary so no two orders are equal.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from pydantic import SecretStr  # noqa: E402

from benchlib import pct  # noqa: E402
from libs.common.venue import PAPER_TEST_PRIVATE_KEY, VenueClient  # noqa: E402

TOKEN = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
NATIVE = "eth_keys.backends.NativeECCBackend"


def make_client(backend: str | None, wallet_type: str) -> VenueClient:
    """A paper VenueClient whose key object uses ``backend`` (None = eth_keys' default)."""
    saved = os.environ.pop("ECC_BACKEND_CLASS", None)
    if backend is not None:
        os.environ["ECC_BACKEND_CLASS"] = backend
    try:
        return VenueClient("http://127.0.0.1:9", SecretStr(PAPER_TEST_PRIVATE_KEY), wallet_type=wallet_type)
    finally:
        os.environ.pop("ECC_BACKEND_CLASS", None)
        if saved is not None:
            os.environ["ECC_BACKEND_CLASS"] = saved


def backend_name(client: VenueClient) -> str:
    return type(client._signer.key.backend).__name__


def run(client: VenueClient, n: int) -> list[float]:
    """Per-order signing times (ms) of ``n`` orders."""
    out = []
    for i in range(n):
        price = Decimal(1 + i % 98) / 100
        side = "BUY" if i % 2 else "SELL"
        t0 = time.perf_counter()
        client.sign_limit(TOKEN, side, price, Decimal(5 + i % 50), Decimal("0.01"), False)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def run_sdk_path(client: VenueClient, n: int) -> list[float]:
    """Per-order times (ms) of the SDK's own signing steps on the adapter's unsigned orders."""
    from polymarket._internal.actions.orders.typed_data import build_order_signature, build_order_typed_data
    from libs.common.venue_sdk_sign import unsigned_limit

    out = []
    for i in range(n):
        price = Decimal(1 + i % 98) / 100
        side = "BUY" if i % 2 else "SELL"
        t0 = time.perf_counter()
        u = unsigned_limit(client._signer, TOKEN, side, price, Decimal(5 + i % 50), Decimal("0.01"), False)
        sig = client._signer.account.sign_typed_data(full_message=build_order_typed_data(u)).signature.hex()
        build_order_signature(u, "0x" + sig.removeprefix("0x"))
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--orders", type=int, default=500)
    ap.add_argument("--wallet-type", default="EOA")
    args = ap.parse_args()
    results = {}
    for label, backend in (("coincurve", None), ("native", NATIVE)):
        client = make_client(backend, args.wallet_type)
        run(client, 20)  # warm-up: imports, caches
        times = run(client, args.orders)
        mean = sum(times) / len(times)
        results[label] = mean
        results[label + "_p50"] = pct(times, 50)
        print(f"{label:9s} backend={backend_name(client):22s} orders={args.orders} wallet={args.wallet_type} "
              f"mean={mean:.3f} ms/order p50={pct(times, 50):.3f} p99={pct(times, 99):.3f}")
    client = make_client(None, args.wallet_type)
    run_sdk_path(client, 20)
    times = run_sdk_path(client, args.orders)
    results["sdk"] = sum(times) / len(times)
    print(f"sdk path  backend={backend_name(client):22s} orders={args.orders} wallet={args.wallet_type} "
          f"mean={results['sdk']:.3f} ms/order p50={pct(times, 50):.3f} p99={pct(times, 99):.3f}")
    print(f"ratio native/coincurve = {results['native'] / results['coincurve']:.1f}x (mean), "
          f"{results['native_p50'] / results['coincurve_p50']:.1f}x (p50); "
          f"sdk path/adapter = {results['sdk'] / results['coincurve']:.1f}x (mean)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
