"""Opening and sealing a case on this machine, with the private key from a key file.

Every failure here names what the person can check: which key the case is sealed to and
which key the file holds, whether the file is a key at all, which chunk did not open.
"""

from __future__ import annotations

import json
import os
import struct
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from app.client.errors import ClientError
from app.client.models import CaseDetail, ReleasedIdentity, SealedAttachment, SealedMessage, StaffPublicKey
from app.domain import crypto

FRAME_HEADER = struct.Struct(">I")  # each sealed chunk is sent as its length, then the chunk
GCM_TAG_BYTES = 16
TAMPERED = "it is damaged or was tampered with"


def read_private_key(path: Path) -> crypto.PrivateKey:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ClientError(f"key file {path} does not exist", 2) from None
    except UnicodeDecodeError:
        raise ClientError(f"{path} is not a Clean Window private key file", 2) from None
    except OSError as error:
        raise ClientError(f"cannot read key file {path}: {error.strerror}", 2) from None
    try:
        return crypto.PrivateKey.from_file_text(text)
    except crypto.InvalidKey as error:
        raise ClientError(f"{path}: {error.detail}", 2) from None


@dataclass(frozen=True)
class OpenedCase:
    """A case whose content key this machine holds; decrypts its parts on demand."""

    sealed: CaseDetail
    content_key: bytes
    # Kept to open an identity released to this reader, which the content key never opens.
    private_key: crypto.PrivateKey

    @property
    def id(self) -> uuid.UUID:
        return self.sealed.id

    def report(self) -> dict[str, Any]:
        assert self.sealed.sealed_report is not None  # open_case opens no purged case
        plaintext = self._open(self.sealed.sealed_report, crypto.PURPOSE_REPORT, None, "the report")
        return json.loads(plaintext)

    def message(self, message: SealedMessage) -> crypto.OpenedMessage | None:
        """None when the message does not open: the server cannot check what a staff client
        sealed, so one bad message must not hide the rest of the case."""
        try:
            return crypto.open_message(
                self.content_key,
                message.sealed_body,
                case_id=self.id,
                message_id=message.id,
                author=message.author,
                seal_format=message.seal_format,
            )
        except crypto.DecryptionFailed:
            return None

    def attachment_meta(self, attachment: SealedAttachment) -> dict[str, Any] | None:
        """None when the attachment's description does not open (damaged in the
        database): the case's other attachments and messages are shown all the same."""
        try:
            plaintext = crypto.open_sealed(
                self.content_key,
                attachment.sealed_meta,
                purpose=crypto.PURPOSE_ATTACHMENT_META,
                case_id=self.id,
                item_id=attachment.id,
            )
            meta = json.loads(plaintext)
        except (crypto.DecryptionFailed, ValueError):
            return None
        return meta if isinstance(meta, dict) else None

    def seal_message(self, message_id: uuid.UUID, body: str) -> bytes:
        return crypto.seal_message(
            self.content_key, body, case_id=self.id, message_id=message_id, author="staff"
        )

    def content_key_sealed_to(self, grantee: StaffPublicKey) -> tuple[crypto.PublicKey, bytes]:
        """The content key sealed to a colleague's public key, and that key. The fingerprint
        is computed here from the key itself, never taken from the server's word."""
        try:
            public_key = crypto.PublicKey.from_text(grantee.public_key)
        except crypto.InvalidKey as error:
            raise ClientError(
                f"the server's public key for {grantee.username} is not usable: {error.detail}"
            ) from None
        if public_key.fingerprint != grantee.fingerprint:
            raise ClientError(
                f"the server names {grantee.username}'s key {grantee.fingerprint}, but the key it sent is "
                f"{public_key.fingerprint}; not granting"
            )
        return public_key, crypto.seal_content_key(self.content_key, public_key, self.id)

    def write_attachment(
        self, attachment: SealedAttachment, frames: Iterable[bytes], out: BinaryIO
    ) -> int:
        """Open the chunks in order as they arrive; only one chunk of plaintext is held.
        The chunk's index and whether it is the last are bound into its associated data,
        so a reordered, dropped or cut-off stream fails to open."""
        last = attachment.chunk_count - 1
        written = 0
        index = -1
        for index, sealed in enumerate(frames):
            if index > last:
                raise ClientError(f"attachment {attachment.id} has more chunks than the case lists")
            try:
                plaintext = crypto.open_attachment_chunk(
                    self.content_key,
                    sealed,
                    case_id=self.id,
                    attachment_id=attachment.id,
                    index=index,
                    final=index == last,
                )
            except crypto.DecryptionFailed:
                raise ClientError(
                    f"chunk {index} of attachment {attachment.id} does not open: {TAMPERED}"
                ) from None
            out.write(plaintext)
            written += len(plaintext)
        if index != last:
            raise ClientError(
                f"the download of attachment {attachment.id} stopped after "
                f"{index + 1} of {attachment.chunk_count} chunks"
            )
        return written

    def _open(self, sealed: bytes, purpose: str, item_id: uuid.UUID | None, what: str) -> bytes:
        try:
            return crypto.open_sealed(
                self.content_key, sealed, purpose=purpose, case_id=self.id, item_id=item_id
            )
        except crypto.DecryptionFailed:
            raise ClientError(
                f"{what} of case {self.id} does not open with the case's content key: {TAMPERED}"
            ) from None


def open_case(case: CaseDetail, private_key: crypto.PrivateKey, key_path: Path) -> OpenedCase:
    if case.purged_on is not None or case.sealed_report is None:
        raise ClientError(
            f"the content of case {case.id} was deleted by retention on {case.purged_on}: there is nothing "
            f"to open, answer or grant; `cleanwindow cases show {case.id}` shows what remains"
        )
    mine = private_key.public_key.fingerprint
    if case.content_key is None:
        raise ClientError(
            f"you hold no key for case {case.id}; someone who does can give you one with "
            f"`cleanwindow cases grant {case.id} --to YOUR_USERNAME --key THEIR_KEY`"
        )
    if case.content_key.fingerprint != mine:
        raise ClientError(
            f"case {case.id} is sealed to your key {case.content_key.fingerprint}, "
            f"but {key_path} holds key {mine}"
        )
    try:
        content_key = crypto.open_content_key(case.content_key.sealed_key, private_key, case.id)
    except crypto.DecryptionFailed:
        raise ClientError(
            f"the content key of case {case.id}, sealed to {case.content_key.fingerprint}, "
            f"does not open with {key_path} (key {mine}): {TAMPERED}"
        ) from None
    return OpenedCase(case, content_key, private_key)


def open_released_identity(
    released: ReleasedIdentity, private_key: crypto.PrivateKey, key_path: Path
) -> dict[str, Any]:
    mine = private_key.public_key.fingerprint
    if released.identity_key.fingerprint != mine:
        raise ClientError(
            f"the identity of case {released.case_id} was released to key {released.identity_key.fingerprint}, "
            f"but {key_path} holds key {mine}"
        )
    try:
        identity_key = crypto.open_identity_key(released.identity_key.sealed_key, private_key, released.case_id)
        return crypto.open_identity(identity_key, released.sealed_identity, released.case_id)
    except crypto.DecryptionFailed:
        raise ClientError(
            f"the identity of case {released.case_id} released to you does not open with {key_path}: {TAMPERED} "
            f"(or the custodian sealed a wrong key: `cleanwindow identity unopenable {released.request_id}` "
            "makes it releasable again)"
        ) from None


def sealed_frames(stream: Iterable[bytes], chunk_bytes: int) -> Iterator[bytes]:
    """Split the download into its sealed chunks. A length no chunk of this attachment can
    have is refused before anything that large is buffered."""
    longest = chunk_bytes + crypto.PADDING_QUANTUM + crypto.NONCE_BYTES + GCM_TAG_BYTES
    buffer = bytearray()
    for data in stream:
        buffer += data
        while len(buffer) >= FRAME_HEADER.size:
            (length,) = FRAME_HEADER.unpack_from(buffer)
            if length > longest:
                raise ClientError(
                    f"the server sent a {length}-byte chunk; here chunks are at most {longest}"
                )
            if len(buffer) < FRAME_HEADER.size + length:
                break
            yield bytes(buffer[FRAME_HEADER.size : FRAME_HEADER.size + length])
            del buffer[: FRAME_HEADER.size + length]
    if buffer:
        raise ClientError("the download stopped in the middle of a chunk")


@contextmanager
def new_private_file(path: Path) -> Iterator[BinaryIO]:
    """Created with mode 0600, never over an existing file, and removed again if writing it
    fails: half an attachment must not pass for the evidence."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ClientError(f"{path} already exists; refusing to overwrite it") from None
    except OSError as error:
        raise ClientError(f"cannot create {path}: {error.strerror}") from None
    try:
        with os.fdopen(descriptor, "wb") as file:
            yield file
    except OSError as error:
        path.unlink(missing_ok=True)
        raise ClientError(f"cannot write {path}: {error.strerror}") from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise
