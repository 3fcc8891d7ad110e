"""Paper accounts' wallets: which owner key controls which wallet, and the order signature rule.

Polymarket's four wallet types (``polymarket/_internal/wallet.py``: signature types EOA 0,
POLY_PROXY 1, GNOSIS_SAFE 2, DEPOSIT_WALLET 3). Per owner key address the venue computes, with the
SDK's own CREATE2 derivations and PRODUCTION's factories (``polymarket/environments.py``), the
proxy, Safe and deposit wallets (beacon = current, UUPS = legacy). A wallet's collateral and
positions are held under the wallet address (the order's ``maker``).

Order rule (``polymarket/_internal/actions/orders/orders.py`` ``create_unsigned_order``):
- types 0/1/2: ``signer`` is the owner key, the ECDSA signature over the order hash recovers it, and
  ``maker`` is the signer itself (0) or its proxy (1) / Safe (2);
- type 3: ``maker`` = ``signer`` = a deposit wallet; the ECDSA part (sigs.py) recovers the wallet's
  owner, or a session key authorized for that wallet when the signature carries the session
  wrapper (then the recovered key must be the wrapper's named signer).
The API key posting the order must belong to the recovered key (owner or session key).
Refusals are 400 "invalid signature" (sigs.py/orders.py ERR_SIGNATURE).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from eth_account import Account
from eth_utils import to_checksum_address
from polymarket._internal.environment import PRODUCTION_CONFIG
from polymarket._internal.wallet import (derive_beacon_deposit_wallet_address, derive_proxy_wallet_address,
                                         derive_safe_wallet_address, derive_uups_deposit_wallet_address)

from libs.common.venue_types import PAPER_TEST_PRIVATE_KEY
from services.venue_sim import sigs

EOA, POLY_PROXY, GNOSIS_SAFE, DEPOSIT_WALLET = 0, 1, 2, 3
WALLET_TYPES = {0: "EOA", 1: "POLY_PROXY", 2: "GNOSIS_SAFE", 3: "DEPOSIT_WALLET"}
HARDHAT_ACCOUNT_1 = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
DEFAULT_OWNERS = (str(Account.from_key(PAPER_TEST_PRIVATE_KEY).address), HARDHAT_ACCOUNT_1)
_DERIVATION = PRODUCTION_CONFIG.wallet_derivation


class WalletError(ValueError):
    """An order's maker/signer/signature does not fit the wallet rule (``message`` says why)."""


@dataclass(frozen=True)
class Wallet:
    """A wallet ``address`` of ``owner`` (checksum), its signature ``kind`` (0..3), ``legacy`` for
    the UUPS deposit wallet (derived but not reported deployed)."""

    address: str
    owner: str
    kind: int
    legacy: bool = False


def derive_wallets(owner: str) -> list[Wallet]:
    """The EOA, proxy, Safe, beacon and UUPS deposit wallets of ``owner`` (SDK derivations)."""
    o = to_checksum_address(owner)
    return [Wallet(o, o, EOA), Wallet(derive_proxy_wallet_address(o, _DERIVATION), o, POLY_PROXY),
            Wallet(derive_safe_wallet_address(o, _DERIVATION), o, GNOSIS_SAFE),
            Wallet(derive_beacon_deposit_wallet_address(o, _DERIVATION), o, DEPOSIT_WALLET),
            Wallet(derive_uups_deposit_wallet_address(o, _DERIVATION), o, DEPOSIT_WALLET, legacy=True)]


class WalletBook:
    """Thread-safe registry of the paper owners' wallets, deployments and session keys.

    Args:
        owners: owner key addresses (any case) whose wallets are computed at start and reported
            deployed. An owner that is not listed is derived when its API key first posts or
            reads (so its EOA, and signed orders of its wallets, work), but its wallets are not
            reported deployed until ``mark_deployed`` (the relayer's deploy transactions).
    """

    def __init__(self, owners: Iterable[str] = DEFAULT_OWNERS) -> None:
        self._lock = threading.Lock()
        self._by_address: dict[str, Wallet] = {}
        self._owners: dict[str, list[Wallet]] = {}
        self._deployed: set[str] = set()
        self._sessions: dict[str, str] = {}  # session key lower -> wallet checksum
        for owner in owners:
            self.add_owner(owner, deployed=True)

    def add_owner(self, owner: str, deployed: bool = False) -> list[Wallet]:
        """Register ``owner``'s wallets (once); with ``deployed`` all but the legacy UUPS deposit
        wallet count as deployed."""
        with self._lock:
            known = self._owners.get(owner.lower())
        if known is not None:
            return known
        wallets = derive_wallets(owner)
        with self._lock:
            self._owners[owner.lower()] = wallets
            for w in wallets:
                self._by_address.setdefault(w.address.lower(), w)
                if deployed and not w.legacy and w.kind != EOA:
                    self._deployed.add(w.address.lower())
        return wallets

    def wallet(self, address: str) -> Wallet | None:
        """The registered wallet at ``address`` (any case) or None."""
        with self._lock:
            return self._by_address.get(address.lower())

    def is_deployed(self, address: str) -> bool:
        """Relayer ``GET /deployed`` answer for ``address``."""
        with self._lock:
            return address.lower() in self._deployed

    def mark_deployed(self, address: str) -> None:
        """Record a wallet deployment (for the relayer's WALLET-CREATE/SAFE-CREATE transactions)."""
        with self._lock:
            self._deployed.add(address.lower())

    def authorize_session_key(self, wallet: str, session_key: str) -> None:
        """Let ``session_key`` sign type-3 orders for deposit wallet ``wallet``."""
        with self._lock:
            self._sessions[session_key.lower()] = to_checksum_address(wallet)

    def wallet_for(self, api_address: str, signature_type: int) -> str:
        """The wallet whose balances an API key of ``api_address`` reads with ``signature_type``
        (``balance-allowance``'s ``signature_type``; other values = EOA): the owner's proxy, Safe or
        (beacon) deposit wallet, or a session key's authorized wallet."""
        with self._lock:
            session = self._sessions.get(api_address.lower())
        if signature_type == DEPOSIT_WALLET and session:
            return session
        if signature_type not in (POLY_PROXY, GNOSIS_SAFE, DEPOSIT_WALLET):
            return to_checksum_address(api_address)
        return next(w.address for w in self.add_owner(api_address) if w.kind == signature_type)

    def controllers(self, wallet: str) -> set[str]:
        """Lower-case addresses that may act for ``wallet``: its owner and its session keys."""
        found = self.wallet(wallet)
        with self._lock:
            keys = {k for k, w in self._sessions.items() if w.lower() == wallet.lower()}
        return keys | ({found.owner.lower()} if found else set())

    def acts_for(self, api_address: str, order: Mapping[str, Any]) -> bool:
        """Whether an API key of ``api_address`` may post ``order``: it is the order's signer, or
        (type 3) the owner or an authorized session key of the deposit wallet that signs it."""
        if str(order.get("signer", "")).lower() == api_address.lower():
            return True
        self.add_owner(api_address)
        return api_address.lower() in self.controllers(str(order.get("signer", "")))

    def verify_order(self, order: Mapping[str, Any], neg_risk: bool, api_address: str) -> str:
        """Check a wire order's maker, signer and signature (module doc) for an API key of
        ``api_address``; returns the maker wallet (checksum).

        Raises:
            WalletError: the rule is broken; message names what (for logs; clients get ERR_SIGNATURE).
        """
        kind = int(order["signatureType"])
        if kind not in WALLET_TYPES:
            raise WalletError(f"unknown signatureType {kind}")
        self.add_owner(api_address)
        try:
            parts = sigs.unwrap(order, neg_risk)
            recovered = sigs.ecrecover(parts.digest, parts.ecdsa)
        except sigs.SignatureError as exc:
            raise WalletError(str(exc)) from None
        if kind == DEPOSIT_WALLET:
            return self._check_deposit(order, recovered, parts.session_signer, api_address)
        return self._check_owned(order, kind, recovered, api_address)

    def _check_owned(self, order: Mapping[str, Any], kind: int, recovered: str, api_address: str) -> str:
        signer, maker = str(order["signer"]).lower(), str(order["maker"]).lower()
        if recovered.lower() != signer or signer != api_address.lower():
            raise WalletError(f"signature recovers {recovered}, order signer is {order['signer']}")
        wallet = self.wallet(maker)
        if wallet is None or wallet.kind != kind or wallet.owner.lower() != signer:
            raise WalletError(f"maker {order['maker']} is not the {WALLET_TYPES[kind]} wallet of {order['signer']}")
        return wallet.address

    def _check_deposit(self, order: Mapping[str, Any], recovered: str, session: str | None, api_address: str) -> str:
        wallet = self.wallet(str(order["maker"]))
        if wallet is None or wallet.kind != DEPOSIT_WALLET or str(order["signer"]).lower() != wallet.address.lower():
            raise WalletError(f"maker/signer {order['maker']}/{order['signer']} is not a known deposit wallet")
        if session is not None and recovered.lower() != session.lower():
            raise WalletError(f"session signature recovers {recovered}, wrapper names {session}")
        allowed = self.controllers(wallet.address) if session else {wallet.owner.lower()}
        if recovered.lower() not in allowed or recovered.lower() != api_address.lower():
            raise WalletError(f"{recovered} may not sign for deposit wallet {wallet.address}")
        return wallet.address
