"""Sealing reports so that the server cannot read what it stores.

Formats (documented in docs/crypto.md; the version labels below are part of every
ciphertext's associated data, so a format change can never be confused with the old one):

- A *key pair* is HPKE's ML-KEM-768 + X25519 hybrid. The private key is 96 bytes of
  seed (64 for ML-KEM-768, 32 for X25519); the public key is the 1,184 + 32 raw bytes,
  written as text `cwpk1_<base64url>`.
- Each case has a fresh 32-byte *content key*. Everything about the case (the report,
  the contact details, messages, attachment chunks) is AES-256-GCM under that key with a
  random 96-bit nonce, and the associated data names what the plaintext is and the id
  of the case (and of the item) it belongs to, and a message's author: a ciphertext moved
  to another record, or to another field, or given another author, fails to open.
- The content key is sealed with HPKE (RFC 9180, mode base, MLKEM768_X25519 /
  HKDF_SHA256 / AES_256_GCM) to each reader's public key, with the case id bound in as
  HPKE `info`.

This module is pure: no web, no database. The server and the investigators' CLI share it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import uuid
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hpke
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.domain.errors import InvalidInput

SUITE = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)

FORMAT = b"cleanwindow/v1/"
MLKEM_SEED_BYTES = 64
X25519_BYTES = 32
PRIVATE_SEED_BYTES = MLKEM_SEED_BYTES + X25519_BYTES
MLKEM768_PUBLIC_BYTES = 1184
PUBLIC_KEY_BYTES = MLKEM768_PUBLIC_BYTES + X25519_BYTES
PUBLIC_KEY_PREFIX = "cwpk1_"
CONTENT_KEY_BYTES = 32
NONCE_BYTES = 12
# Plaintexts are padded to a multiple of this before sealing, so that a ciphertext's
# length tells little about how long a report or message is.
PADDING_QUANTUM = 512

PRIVATE_KEY_BEGIN = "-----BEGIN CLEANWINDOW PRIVATE KEY-----"
PRIVATE_KEY_END = "-----END CLEANWINDOW PRIVATE KEY-----"


class DecryptionFailed(Exception):
    """A ciphertext did not open: wrong key, wrong record, or tampered bytes. The cases are
    deliberately indistinguishable."""


class InvalidKey(InvalidInput):
    slug = "invalid-key"
    title = "Invalid key"


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    # ValueError for anything else too: pydantic turns only that into a validation error.
    if not isinstance(text, str) or not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hkdf(key_material: bytes, info: bytes, length: int = 32, salt: bytes | None = None) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=FORMAT + info).derive(
        key_material
    )


def public_key_text(raw: bytes) -> str:
    """How a public key is written; for one already checked, without parsing it again."""
    return PUBLIC_KEY_PREFIX + b64url_encode(raw)


@dataclass(frozen=True)
class PublicKey:
    raw: bytes

    def __post_init__(self) -> None:
        if len(self.raw) != PUBLIC_KEY_BYTES:
            raise InvalidKey(f"A public key is {PUBLIC_KEY_BYTES} bytes.")
        try:
            self.hpke_key()
        except ValueError as error:
            raise InvalidKey("This is not a valid ML-KEM-768 + X25519 public key.") from error

    @classmethod
    def from_text(cls, text: str) -> PublicKey:
        text = text.strip()
        if not text.startswith(PUBLIC_KEY_PREFIX):
            raise InvalidKey(f"A Clean Window public key starts with {PUBLIC_KEY_PREFIX!r}.")
        try:
            raw = b64url_decode(text[len(PUBLIC_KEY_PREFIX) :])
        except ValueError as error:
            raise InvalidKey("The public key is not valid base64url.") from error
        key = cls(raw)
        # Some byte strings parse as keys yet cannot be sealed to (an X25519 point of low
        # order, say); find out now rather than when the first report arrives.
        try:
            SUITE.encrypt(b"", key.hpke_key(), info=FORMAT + b"key-check")
        except ValueError as error:
            raise InvalidKey("This public key cannot be sealed to.") from error
        return key

    def to_text(self) -> str:
        return public_key_text(self.raw)

    @property
    def fingerprint(self) -> str:
        """What people compare when they check a key, and how a sealed key names its
        recipient: 128 bits of SHA-256, in groups of four hex digits."""
        digest = hashlib.sha256(FORMAT + b"public-key" + self.raw).hexdigest()[:32]
        return ":".join(digest[i : i + 4] for i in range(0, 32, 4))

    def hpke_key(self) -> hpke.MLKEM768X25519PublicKey:
        return hpke.MLKEM768X25519PublicKey(
            mlkem.MLKEM768PublicKey.from_public_bytes(self.raw[:MLKEM768_PUBLIC_BYTES]),
            x25519.X25519PublicKey.from_public_bytes(self.raw[MLKEM768_PUBLIC_BYTES:]),
        )


class PrivateKey:
    """A key pair, kept as the 96-byte seed it is derived from."""

    def __init__(self, seed: bytes):
        if len(seed) != PRIVATE_SEED_BYTES:
            raise InvalidKey(f"A private key seed is {PRIVATE_SEED_BYTES} bytes.")
        self._seed = bytes(seed)
        self._mlkem = mlkem.MLKEM768PrivateKey.from_seed_bytes(seed[:MLKEM_SEED_BYTES])
        self._x25519 = x25519.X25519PrivateKey.from_private_bytes(seed[MLKEM_SEED_BYTES:])
        self._hpke = hpke.MLKEM768X25519PrivateKey(self._mlkem, self._x25519)
        self.public_key = PublicKey(
            self._mlkem.public_key().public_bytes_raw() + self._x25519.public_key().public_bytes_raw()
        )

    @classmethod
    def generate(cls) -> PrivateKey:
        return cls(os.urandom(PRIVATE_SEED_BYTES))

    def __repr__(self) -> str:  # never print the seed by accident
        return f"PrivateKey(fingerprint={self.public_key.fingerprint!r})"

    def to_file_text(self) -> str:
        body = base64.b64encode(self._seed).decode()
        return (
            f"{PRIVATE_KEY_BEGIN}\n"
            f"Fingerprint: {self.public_key.fingerprint}\n\n"
            f"{body}\n{PRIVATE_KEY_END}\n"
        )

    @classmethod
    def from_file_text(cls, text: str) -> PrivateKey:
        lines = [line.strip() for line in text.strip().splitlines()]
        if len(lines) < 3 or lines[0] != PRIVATE_KEY_BEGIN or lines[-1] != PRIVATE_KEY_END:
            raise InvalidKey("This is not a Clean Window private key file.")
        body = "".join(line for line in lines[1:-1] if line and ":" not in line)
        try:
            seed = base64.b64decode(body, validate=True)
        except ValueError as error:
            raise InvalidKey("The private key file is damaged (bad base64).") from error
        return cls(seed)

    def hpke_key(self) -> hpke.MLKEM768X25519PrivateKey:
        return self._hpke


def new_content_key() -> bytes:
    return os.urandom(CONTENT_KEY_BYTES)


def _key_context(case_id: uuid.UUID) -> bytes:
    return FORMAT + b"content-key|" + case_id.bytes


# HPKE's encapsulated key (1,120 bytes) and the AEAD ciphertext of a content key (48 bytes).
SEALED_CONTENT_KEY_BYTES = 1168


def seal_content_key(content_key: bytes, recipient: PublicKey, case_id: uuid.UUID) -> bytes:
    """HPKE-seal a case's content key to one reader (SEALED_CONTENT_KEY_BYTES long)."""
    return SUITE.encrypt(content_key, recipient.hpke_key(), info=_key_context(case_id))


def open_content_key(sealed: bytes, private_key: PrivateKey, case_id: uuid.UUID) -> bytes:
    try:
        content_key = SUITE.decrypt(sealed, private_key.hpke_key(), info=_key_context(case_id))
    except (InvalidTag, ValueError) as error:
        raise DecryptionFailed("The content key does not open with this private key.") from error
    if len(content_key) != CONTENT_KEY_BYTES:
        raise DecryptionFailed("The content key has the wrong length.")
    return content_key


# --- the identity key ---------------------------------------------------------------
# A reporter's identity (the confidential contact) is sealed under a key of its own, so
# that holding a case's content key opens the report but never the name. Its HPKE `info`
# differs from the content key's: one sealed key can never stand in for the other.
IDENTITY_KEY_BYTES = 32
SEALED_IDENTITY_KEY_BYTES = SEALED_CONTENT_KEY_BYTES
PURPOSE_IDENTITY = "identity"


def _identity_key_context(case_id: uuid.UUID) -> bytes:
    return FORMAT + b"identity-key|" + case_id.bytes


def new_identity_key() -> bytes:
    return os.urandom(IDENTITY_KEY_BYTES)


def seal_identity_key(identity_key: bytes, recipient: PublicKey, case_id: uuid.UUID) -> bytes:
    """HPKE-seal a case's identity key to one holder (SEALED_IDENTITY_KEY_BYTES long)."""
    return SUITE.encrypt(identity_key, recipient.hpke_key(), info=_identity_key_context(case_id))


def open_identity_key(sealed: bytes, private_key: PrivateKey, case_id: uuid.UUID) -> bytes:
    try:
        identity_key = SUITE.decrypt(sealed, private_key.hpke_key(), info=_identity_key_context(case_id))
    except (InvalidTag, ValueError) as error:
        raise DecryptionFailed("The identity key does not open with this private key.") from error
    if len(identity_key) != IDENTITY_KEY_BYTES:
        raise DecryptionFailed("The identity key has the wrong length.")
    return identity_key


def seal_identity(identity_key: bytes, identity: dict, case_id: uuid.UUID) -> bytes:
    """The reporter's identity as padded UTF-8 JSON under the identity key."""
    plaintext = json.dumps(identity, ensure_ascii=False, sort_keys=True).encode()
    return seal(identity_key, plaintext, purpose=PURPOSE_IDENTITY, case_id=case_id)


def open_identity(identity_key: bytes, sealed: bytes, case_id: uuid.UUID) -> dict:
    opened = open_sealed(identity_key, sealed, purpose=PURPOSE_IDENTITY, case_id=case_id)
    try:
        identity = json.loads(opened)
    except ValueError as error:
        raise DecryptionFailed("The sealed identity is not JSON.") from error
    if not isinstance(identity, dict):
        raise DecryptionFailed("The sealed identity is not a JSON object.")
    return identity


def _associated_data(purpose: str, case_id: uuid.UUID, item_id: uuid.UUID | None) -> bytes:
    item = item_id.bytes if item_id is not None else b""
    return FORMAT + purpose.encode() + b"|" + case_id.bytes + b"|" + item


def pad(plaintext: bytes) -> bytes:
    """ISO/IEC 7816-4 padding to a multiple of `PADDING_QUANTUM`: 0x80 then zeros."""
    padded_length = (len(plaintext) // PADDING_QUANTUM + 1) * PADDING_QUANTUM
    return plaintext + b"\x80" + b"\x00" * (padded_length - len(plaintext) - 1)


def unpad(padded: bytes) -> bytes:
    stripped = padded.rstrip(b"\x00")
    if not stripped.endswith(b"\x80"):
        raise DecryptionFailed("The plaintext padding is damaged.")
    return stripped[:-1]


def seal(
    content_key: bytes,
    plaintext: bytes,
    *,
    purpose: str,
    case_id: uuid.UUID,
    item_id: uuid.UUID | None = None,
    padded: bool = True,
) -> bytes:
    """AES-256-GCM under the case's content key: nonce followed by ciphertext and tag."""
    nonce = os.urandom(NONCE_BYTES)
    data = pad(plaintext) if padded else plaintext
    return nonce + AESGCM(content_key).encrypt(nonce, data, _associated_data(purpose, case_id, item_id))


def open_sealed(
    content_key: bytes,
    sealed: bytes,
    *,
    purpose: str,
    case_id: uuid.UUID,
    item_id: uuid.UUID | None = None,
    padded: bool = True,
) -> bytes:
    if len(sealed) < NONCE_BYTES + 16:
        raise DecryptionFailed("The ciphertext is truncated.")
    try:
        data = AESGCM(content_key).decrypt(
            sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], _associated_data(purpose, case_id, item_id)
        )
    except InvalidTag as error:
        raise DecryptionFailed("The ciphertext does not open with this key for this record.") from error
    return unpad(data) if padded else data


# What each sealed blob is; part of its associated data.
PURPOSE_REPORT = "report"
# Message format 1 bound no author: anyone able to write the database could turn a staff
# message into a reporter's statement. Such messages still open (marked unverified);
# nothing new is sealed this way.
PURPOSE_MESSAGE = "message"
PURPOSE_ATTACHMENT_META = "attachment-meta"

# Message format 2: the author is part of the purpose, so a message whose `author` column
# was changed no longer opens. The staff API takes this number with each sealed message.
MESSAGE_SEAL_FORMAT = 2
MESSAGE_AUTHORS = ("reporter", "staff")


def message_purpose(author: str) -> str:
    return f"message-by-{author}"


def seal_message(
    content_key: bytes, body: str, *, case_id: uuid.UUID, message_id: uuid.UUID, author: str
) -> bytes:
    if author not in MESSAGE_AUTHORS:
        raise ValueError(f"A message's author is one of {MESSAGE_AUTHORS}.")
    return seal(content_key, body.encode(), purpose=message_purpose(author), case_id=case_id, item_id=message_id)


@dataclass(frozen=True)
class OpenedMessage:
    body: str
    # False: sealed in format 1, so only the database vouches for the author shown.
    author_verified: bool


def open_message(
    content_key: bytes,
    sealed: bytes,
    *,
    case_id: uuid.UUID,
    message_id: uuid.UUID,
    author: str,
    seal_format: int | None = None,
) -> OpenedMessage:
    """Opens a message in the format it is stored as: 2, as written by `author`; 1, as a
    message from before authors were bound (author unverified). With the format unknown
    (None: an answer from a service older than the stored format), tries 2, then 1.
    DecryptionFailed when it does not open, or is not UTF-8 text: a staff client's seal
    reaches the server unchecked, so every reader must expect one that does not open."""
    where = {"case_id": case_id, "item_id": message_id}
    if seal_format not in (None, 1, MESSAGE_SEAL_FORMAT):
        raise DecryptionFailed(f"Unknown message seal format {seal_format}.")
    try:
        if seal_format == 1:
            raise DecryptionFailed("Sealed in format 1.")
        plaintext = open_sealed(content_key, sealed, purpose=message_purpose(author), **where)
        author_verified = True
    except DecryptionFailed:
        if seal_format == MESSAGE_SEAL_FORMAT:
            raise
        plaintext = open_sealed(content_key, sealed, purpose=PURPOSE_MESSAGE, **where)
        author_verified = False
    try:
        return OpenedMessage(plaintext.decode(), author_verified)
    except UnicodeDecodeError as error:
        raise DecryptionFailed("The message is not UTF-8 text.") from error


def _chunk_purpose(index: int, final: bool) -> str:
    return f"attachment-chunk|{index}|{'final' if final else 'more'}"


class AttachmentSealer:
    """Seals a file as it streams in, in chunks of `chunk_size` bytes, so that no more
    than one chunk of plaintext is ever held. Each chunk's associated data carries its
    index and whether it is the last, so chunks cannot be reordered, dropped or cut off
    at the end without the file failing to open."""

    def __init__(self, content_key: bytes, case_id: uuid.UUID, attachment_id: uuid.UUID, chunk_size: int):
        self._key = content_key
        self._case_id = case_id
        self._attachment_id = attachment_id
        self._chunk_size = chunk_size
        self._buffer = bytearray()
        self._next_index = 0
        self.size = 0

    def _seal_chunk(self, data: bytes, final: bool) -> bytes:
        sealed = seal(
            self._key,
            data,
            purpose=_chunk_purpose(self._next_index, final),
            case_id=self._case_id,
            item_id=self._attachment_id,
            padded=final,  # only the last chunk's length would tell the exact size
        )
        self._next_index += 1
        return sealed

    def feed(self, data: bytes) -> list[bytes]:
        self.size += len(data)
        self._buffer += data
        sealed = []
        # Keep at least one byte back: the final chunk must be sealed as final.
        while len(self._buffer) > self._chunk_size:
            chunk = bytes(self._buffer[: self._chunk_size])
            del self._buffer[: self._chunk_size]
            sealed.append(self._seal_chunk(chunk, final=False))
        return sealed

    def finish(self) -> bytes:
        chunk = bytes(self._buffer)
        self._buffer.clear()
        return self._seal_chunk(chunk, final=True)


def open_attachment_chunk(
    content_key: bytes,
    sealed: bytes,
    *,
    case_id: uuid.UUID,
    attachment_id: uuid.UUID,
    index: int,
    final: bool,
) -> bytes:
    return open_sealed(
        content_key,
        sealed,
        purpose=_chunk_purpose(index, final),
        case_id=case_id,
        item_id=attachment_id,
        padded=final,
    )
