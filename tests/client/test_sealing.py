"""Opening attachments as they stream in, with the real crypto: a stream that was cut,
reordered or tampered with never passes for the file."""

from __future__ import annotations

import io
import struct
import uuid
from datetime import date

import pytest

from app.client.api import ClientError
from app.client.models import CaseDetail, SealedAttachment
from app.client.sealing import OpenedCase, sealed_frames
from app.domain import crypto

CHUNK_BYTES = 4096
FILE = bytes(range(256)) * 50  # 12,800 bytes: four chunks


def framed(chunks: list[bytes]) -> bytes:
    return b"".join(struct.pack(">I", len(chunk)) + chunk for chunk in chunks)


@pytest.fixture
def sealed_file() -> tuple[OpenedCase, SealedAttachment, list[bytes]]:
    case_id, attachment_id, content_key = uuid.uuid4(), uuid.uuid4(), crypto.new_content_key()
    sealer = crypto.AttachmentSealer(content_key, case_id, attachment_id, CHUNK_BYTES)
    chunks = sealer.feed(FILE) + [sealer.finish()]
    attachment = SealedAttachment(
        id=attachment_id,
        author="reporter",
        uploaded_on=date.today(),
        chunk_count=len(chunks),
        chunk_bytes=CHUNK_BYTES,
        sealed_meta="",
    )
    case = CaseDetail.model_validate(
        {
            "id": case_id,
            "state": "received",
            "version": 1,
            "channel": "citizen",
            "category": "bribery",
            "language": "ko",
            "is_drill": False,
            "received_on": date.today(),
            "acknowledge_due_on": date.today(),
            "overdue": False,
            "sealed_report": "",
        }
    )
    return OpenedCase(case, content_key, crypto.PrivateKey.generate()), attachment, chunks


def download(
    case: OpenedCase, attachment: SealedAttachment, stream: bytes, piece: int = 1000
) -> bytes:
    out = io.BytesIO()
    pieces = (stream[i : i + piece] for i in range(0, len(stream), piece))
    case.write_attachment(attachment, sealed_frames(pieces, attachment.chunk_bytes), out)
    return out.getvalue()


def test_a_stream_in_arbitrary_pieces_opens_to_the_file(sealed_file) -> None:
    case, attachment, chunks = sealed_file
    assert len(chunks) == 4
    for piece in (1, 7, 1000, 100_000):
        assert download(case, attachment, framed(chunks), piece) == FILE


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda chunks: chunks[:-1], "stopped after 3 of 4 chunks"),
        (lambda chunks: [chunks[1], chunks[0], *chunks[2:]], "chunk 0 of attachment"),
        (
            lambda chunks: [*chunks[:2], chunks[2][:-1] + bytes([chunks[2][-1] ^ 1]), chunks[3]],
            "chunk 2 of attachment",
        ),
        (lambda chunks: [*chunks, chunks[-1]], "more chunks than the case lists"),
    ],
    ids=["cut-off", "reordered", "tampered", "extra"],
)
def test_a_mangled_stream_is_refused(sealed_file, mangle, message: str) -> None:
    case, attachment, chunks = sealed_file
    with pytest.raises(ClientError, match=message):
        download(case, attachment, framed(mangle(chunks)))


def test_a_frame_cut_in_the_middle_or_impossibly_long_is_refused(sealed_file) -> None:
    case, attachment, chunks = sealed_file
    with pytest.raises(ClientError, match="in the middle of a chunk"):
        download(case, attachment, framed(chunks)[:-10])
    with pytest.raises(ClientError, match="here chunks are at most"):
        download(case, attachment, struct.pack(">I", 2**31) + b"x" * 100)
