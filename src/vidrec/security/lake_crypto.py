"""Parquet modular encryption for the lake: every column and the footer, AES-GCM.

Each file gets fresh data keys (pyarrow's key tools); they are wrapped (double wrapping: data
key → key-encryption key → master key) by :class:`SecretKms`, whose one master key comes from
``VIDREC_EVENTS__LAKE_KEY`` (a Kubernetes Secret in the chart) — hex or base64 of 16, 24 or
32 bytes. The wrapped keys travel in the file's own metadata, so a file is self-contained for
whoever holds the master key, and unreadable (footer included: the schema too) for anyone
else. A KMS such as Vault would replace :class:`SecretKms` behind the same two methods.

Encrypted files end in the magic ``PARE`` instead of ``PAR1``: :func:`is_encrypted` tells a
reader without the key why it cannot read a file instead of a generic footer error.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pyarrow.parquet.encryption as pe
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MASTER_KEY_ID = "vidrec-lake"
ENCRYPTED_MAGIC = b"PARE"
KEY_ENV = "VIDREC_EVENTS__LAKE_KEY"
NONCE_BYTES = 12


class LakeKeyError(ValueError):
    """A lake key that is malformed, or that does not open a file."""


def parse_key(raw: str) -> bytes:
    """A 128/192/256-bit key from hex (32/48/64 chars) or base64; errors say which forms work."""
    text = raw.strip()
    candidates: list[bytes] = []
    if len(text) in (32, 48, 64):
        with contextlib.suppress(ValueError):
            candidates.append(bytes.fromhex(text))
    with contextlib.suppress(binascii.Error, ValueError):
        candidates.append(base64.b64decode(text, validate=True))
    for key in candidates:
        if len(key) in (16, 24, 32):
            return key
    raise LakeKeyError(
        f"{KEY_ENV}: expected a 128, 192 or 256-bit key as hex (32/48/64 characters) or"
        " base64 (e.g. `openssl rand -base64 32`)"
    )


def key_fingerprint(key: bytes) -> str:
    return hashlib.sha256(b"vidrec-lake-key:" + key).hexdigest()[:16]


class SecretKms(pe.KmsClient):
    """Wraps data keys with AES-GCM under the master key (nonce ‖ ciphertext+tag, base64)."""

    def __init__(self, master_keys: Mapping[str, bytes]) -> None:
        pe.KmsClient.__init__(self)
        self._keys = dict(master_keys)

    def _aead(self, master_key_identifier: str) -> AESGCM:
        if master_key_identifier not in self._keys:
            raise LakeKeyError(f"unknown master key {master_key_identifier!r}")
        return AESGCM(self._keys[master_key_identifier])

    def wrap_key(self, key_bytes: bytes, master_key_identifier: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead(master_key_identifier).encrypt(
            nonce, bytes(key_bytes), master_key_identifier.encode()
        )
        return base64.b64encode(nonce + sealed).decode()

    def unwrap_key(self, wrapped_key: str, master_key_identifier: str) -> bytes:
        blob = base64.b64decode(wrapped_key)
        try:
            return self._aead(master_key_identifier).decrypt(
                blob[:NONCE_BYTES], blob[NONCE_BYTES:], master_key_identifier.encode()
            )
        except InvalidTag:
            raise LakeKeyError("the lake key does not open this file (wrong key)") from None


def is_encrypted(path: Path) -> bool:
    """True for a Parquet file written with an encrypted footer."""
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() < 4:
            return False
        f.seek(-4, os.SEEK_END)
        return f.read(4) == ENCRYPTED_MAGIC


class LakeCrypto:
    """Encrypting writer and decrypting reader for one master key."""

    def __init__(self, key: bytes) -> None:
        self.key = key
        self.fingerprint = key_fingerprint(key)
        self._factory = pe.CryptoFactory(lambda _conf: SecretKms({MASTER_KEY_ID: key}))
        self._conn = pe.KmsConnectionConfig()
        self._encryption = pe.EncryptionConfiguration(
            footer_key=MASTER_KEY_ID,
            uniform_encryption=True,  # every column, plus the footer, under the footer key
            encryption_algorithm="AES_GCM_V1",
            double_wrapping=True,
            cache_lifetime=timedelta(minutes=10),
            data_key_length_bits=8 * len(key),
        )
        self._decryption = pe.DecryptionConfiguration(cache_lifetime=timedelta(minutes=10))

    @classmethod
    def from_secret(cls, raw: str) -> LakeCrypto | None:
        """None for an empty setting (an unencrypted lake)."""
        return cls(parse_key(raw)) if raw.strip() else None

    def write(self, table: pa.Table, path: Path, compression: str = "zstd") -> None:
        props = self._factory.file_encryption_properties(self._conn, self._encryption)
        pq.write_table(table, path, compression=compression, encryption_properties=props)

    def decryption_properties(self) -> pe.FileDecryptionProperties:
        return self._factory.file_decryption_properties(self._conn, self._decryption)

    def read(self, path: Path, columns: list[str] | None = None) -> pa.Table:
        try:
            return pq.read_table(
                path, columns=columns, decryption_properties=self.decryption_properties()
            )
        except LakeKeyError:
            raise
        except OSError as exc:
            if "wrong key" in str(exc) or "does not open" in str(exc):
                raise LakeKeyError(f"{path}: the lake key does not open this file") from None
            raise
