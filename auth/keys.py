"""The signing key ring: ES256 private keys as PEM files in ``TALLY_KEYS_DIR``.

Layout (a directory, or a mounted Kubernetes secret in production)::

    keys.json          {"keys": [{"kid": ..., "status": ..., "created_at": ...}, ...]}
    <kid>.pem          PKCS#8 private key, mode 0600

Statuses: ``next`` (published in the JWKS, not yet signing), ``active`` (signs and
verifies; exactly one), ``previous`` (still published and verifying until its tokens
expire), ``retired`` (neither). Private key material never leaves this module except
as a ``cryptography`` key object handed to PyJWT.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

Status = Literal["next", "active", "previous", "retired"]
ALGORITHM = "ES256"
STATE_FILE = "keys.json"
_VERIFYING: frozenset[str] = frozenset({"next", "active", "previous"})
_STATUSES: frozenset[str] = _VERIFYING | {"retired"}
# How long clients may cache the JWKS (its Cache-Control max-age), and how long a new
# key must have been published before it may sign: that, plus the servers' 1 s re-read.
JWKS_MAX_AGE_SECONDS = 60
PUBLISH_WAIT_SECONDS = JWKS_MAX_AGE_SECONDS + 1


class KeyRingError(Exception):
    """The key directory is missing, unreadable or inconsistent (one-line message)."""


@dataclass(frozen=True)
class SigningKey:
    kid: str
    status: Status
    created_at: str
    private: ec.EllipticCurvePrivateKey = field(repr=False)

    @property
    def public(self) -> ec.EllipticCurvePublicKey:
        return self.private.public_key()

    def public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(self.public))
        jwk.update({"kid": self.kid, "use": "sig", "alg": ALGORITHM})
        return jwk


@contextmanager
def _writing(directory: Path) -> Iterator[None]:
    """A key file or directory that cannot be written is a KeyRingError, in one line."""
    try:
        yield
    except OSError as exc:
        where = exc.filename or directory
        raise KeyRingError(f"cannot write signing keys to {where}: {exc.strerror or exc}") from None


def _new_kid() -> str:
    return f"{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(4)}"


def _write_private(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)


def _atomic_write_json(path: Path, data: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".keys-", suffix=".json")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, path)


class KeyRing:
    """All keys in a directory; cheap to reload when ``keys.json`` changes."""

    def __init__(self, directory: Path, keys: list[SigningKey], mtime: float) -> None:
        self.directory = directory
        self.keys = keys
        self.mtime = mtime
        self._by_kid = {k.kid: k for k in keys}

    # -- loading -----------------------------------------------------------------
    @classmethod
    def load(cls, directory: Path) -> KeyRing:
        state_path = directory / STATE_FILE
        try:
            mtime = state_path.stat().st_mtime
            state = json.loads(state_path.read_text())
        except FileNotFoundError:
            raise KeyRingError(
                f"no signing keys in {directory} (run 'tally keys generate')"
            ) from None
        except (OSError, ValueError) as exc:
            raise KeyRingError(f"cannot read {state_path}: {exc}") from None
        entries = state.get("keys") if isinstance(state, dict) else None
        if not isinstance(entries, list) or not all(
            isinstance(e, dict) and isinstance(e.get("kid"), str) and e.get("status") in _STATUSES
            for e in entries
        ):
            raise KeyRingError(
                f'cannot read {state_path}: expected {{"keys": [{{"kid": ..., "status":'
                f" one of {', '.join(sorted(_STATUSES))}}}, ...]}}"
            )
        keys: list[SigningKey] = []
        for entry in entries:
            kid, status = entry["kid"], entry["status"]
            if status == "retired":
                keys.append(SigningKey(kid, status, entry.get("created_at", ""), _placeholder()))
                continue
            try:
                pem = (directory / f"{kid}.pem").read_bytes()
                private = serialization.load_pem_private_key(pem, password=None)
            except (OSError, ValueError) as exc:
                raise KeyRingError(f"cannot load signing key {kid}: {exc}") from None
            if not isinstance(private, ec.EllipticCurvePrivateKey) or not isinstance(
                private.curve, ec.SECP256R1
            ):
                raise KeyRingError(f"signing key {kid} is not a P-256 EC key")
            keys.append(SigningKey(kid, status, entry.get("created_at", ""), private))
        ring = cls(directory, keys, mtime)
        if sum(1 for k in keys if k.status == "active") != 1:
            raise KeyRingError(f"{state_path} must mark exactly one key 'active'")
        return ring

    @classmethod
    def load_or_create(cls, directory: Path) -> KeyRing:
        """Development: make the first key if there is none (safe across processes)."""
        if not (directory / STATE_FILE).exists():
            with _writing(directory):
                directory.mkdir(parents=True, exist_ok=True, mode=0o700)
                cls._create_first(directory)
        return cls.load(directory)

    @staticmethod
    def _create_first(directory: Path) -> None:
        kid = _new_kid()
        _write_private(directory / f"{kid}.pem", ec.generate_private_key(ec.SECP256R1()))
        state = {"keys": [{"kid": kid, "status": "active", "created_at": _now()}]}
        # O_EXCL on a lock file: of several workers starting at once, one writes state.
        try:
            fd = os.open(directory / ".init.lock", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            (directory / f"{kid}.pem").unlink(missing_ok=True)
            _wait_for(directory / STATE_FILE)
            return
        os.close(fd)
        _atomic_write_json(directory / STATE_FILE, state)

    def changed_on_disk(self) -> bool:
        try:
            return (self.directory / STATE_FILE).stat().st_mtime != self.mtime
        except OSError:
            return False

    # -- use -------------------------------------------------------------------------
    @property
    def active(self) -> SigningKey:
        return next(k for k in self.keys if k.status == "active")

    def verifying_key(self, kid: str) -> SigningKey | None:
        key = self._by_kid.get(kid)
        return key if key is not None and key.status in _VERIFYING else None

    def jwks(self) -> dict[str, Any]:
        """Public keys only: every key that may verify a live token."""
        return {"keys": [k.public_jwk() for k in self.keys if k.status in _VERIFYING]}

    # -- administration (CLI) ----------------------------------------------------------
    def _save(self, keys: list[dict[str, str]]) -> None:
        with _writing(self.directory):
            _atomic_write_json(self.directory / STATE_FILE, {"keys": keys})

    def _entries(self) -> list[dict[str, str]]:
        return [{"kid": k.kid, "status": k.status, "created_at": k.created_at} for k in self.keys]

    def generate(self) -> str:
        """Add a key as ``next``: published now, signing after ``rotate``."""
        entries = [e for e in self._entries() if e["status"] != "next"]
        replaced = [e for e in self._entries() if e["status"] == "next"]
        entries += [{**old, "status": "retired"} for old in replaced]
        kid = _new_kid()
        with _writing(self.directory):
            private = ec.generate_private_key(ec.SECP256R1())
            _write_private(self.directory / f"{kid}.pem", private)
        entries.append({"kid": kid, "status": "next", "created_at": _now()})
        self._save(entries)
        with _writing(self.directory):
            for old in replaced:  # retired, as by retire(): its private key goes
                (self.directory / f"{old['kid']}.pem").unlink(missing_ok=True)
        return kid

    def rotate(self, *, force: bool = False, now: datetime | None = None) -> str:
        """Promote ``next`` to ``active``; the old active key becomes ``previous``.

        There must be a ``next`` key, published (``generate``) at least
        ``PUBLISH_WAIT_SECONDS`` ago, so every verifier and JWKS cache knows it by the
        time its first token arrives. ``force`` skips the wait (nobody caches the JWKS).
        """
        upcoming = next((k for k in self.keys if k.status == "next"), None)
        if upcoming is None:
            raise KeyRingError(
                "no 'next' key to rotate to: run 'tally keys generate' first and rotate"
                " once JWKS caches have picked it up"
            )
        published = datetime.fromisoformat(upcoming.created_at)
        age = ((now or datetime.now(UTC)) - published).total_seconds()
        if age < PUBLISH_WAIT_SECONDS and not force:
            wait = int(PUBLISH_WAIT_SECONDS - age) + 1
            raise KeyRingError(
                f"key {upcoming.kid} was published {max(int(age), 0)} s ago and JWKS caches"
                f" may not have it yet: rotate in {wait} s (or --force if nothing caches)"
            )
        entries = []
        promoted = ""
        for e in self._entries():
            if e["status"] == "active":
                e = {**e, "status": "previous"}
            elif e["status"] == "next":
                e = {**e, "status": "active"}
                promoted = e["kid"]
            entries.append(e)
        self._save(entries)
        return promoted

    def retire(self, kid: str) -> None:
        """Stop publishing a key; tokens it signed are rejected from now on."""
        key = self._by_kid.get(kid)
        if key is None:
            raise KeyRingError(f"no key with kid {kid!r}")
        if key.status == "active":
            raise KeyRingError(f"key {kid} is active; rotate first")
        entries = [{**e, "status": "retired"} if e["kid"] == kid else e for e in self._entries()]
        self._save(entries)
        with _writing(self.directory):
            (self.directory / f"{kid}.pem").unlink(missing_ok=True)


_PLACEHOLDER: ec.EllipticCurvePrivateKey | None = None


def _placeholder() -> ec.EllipticCurvePrivateKey:
    # Retired entries keep their kid for listing; they never sign or verify.
    global _PLACEHOLDER
    if _PLACEHOLDER is None:
        _PLACEHOLDER = ec.generate_private_key(ec.SECP256R1())
    return _PLACEHOLDER


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def _wait_for(path: Path, timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise KeyRingError(f"timed out waiting for {path}")
        time.sleep(0.05)
