"""Which files a reporter may attach, judged by their first bytes, not by what the client
claims: a declared type is accepted only when the content starts the way that type does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.domain.errors import DomainError, InvalidInput

SNIFF_BYTES = 8


class UnsupportedFileType(DomainError):
    slug = "unsupported-file-type"
    title = "File type not accepted"
    status = 415


class AttachmentTooLarge(DomainError):
    slug = "attachment-too-large"
    title = "Attachment too large"
    status = 413


class AttachmentLimitReached(DomainError):
    slug = "attachment-limit-reached"
    title = "No more attachments allowed on this report"
    status = 409


class UploadTooSlow(DomainError):
    slug = "upload-too-slow"
    title = "Upload took too long"
    status = 408

    def __init__(self, detail: str):
        # The rest of the body is not wanted: the connection closes after this answer.
        super().__init__(detail, headers={"Connection": "close"})


@dataclass(frozen=True)
class AttachmentLimits:
    """Per-file and per-report limits. Checked before a file is read, for a quick answer,
    and again, exactly, against what the report holds when the file is published."""

    max_bytes: int
    max_per_case: int
    max_total_bytes_per_case: int

    def room(self, count: int, total_bytes: int) -> int:
        """How many bytes one more file may have, next to `count` files of `total_bytes`."""
        if count >= self.max_per_case:
            raise AttachmentLimitReached(f"A report can have at most {self.max_per_case} attachments.")
        room = min(self.max_bytes, self.max_total_bytes_per_case - total_bytes)
        if room <= 0:
            raise AttachmentLimitReached("This report's attachments have reached their total size limit.")
        return room

    @staticmethod
    def check_size(size: int, room: int) -> None:
        if size > room:
            raise AttachmentTooLarge(
                f"The file is larger than the {room} bytes this report may still take.", limit=room
            )


@dataclass(frozen=True)
class FileType:
    media_type: str
    extensions: tuple[str, ...]
    signatures: tuple[bytes, ...]  # empty: plain text, checked as UTF-8 instead


_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # HWP 5 and legacy Office
_ZIP = b"PK\x03\x04"  # HWPX, DOCX, XLSX, PPTX

FILE_TYPES = {
    file_type.media_type: file_type
    for file_type in (
        FileType("application/pdf", (".pdf",), (b"%PDF-",)),
        FileType("image/jpeg", (".jpg", ".jpeg"), (b"\xff\xd8\xff",)),
        FileType("image/png", (".png",), (b"\x89PNG\r\n\x1a\n",)),
        FileType("text/plain", (".txt",), ()),
        FileType("application/x-hwp", (".hwp",), (_OLE,)),
        FileType("application/haansofthwpx", (".hwpx",), (_ZIP,)),
        FileType(
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            (".docx",),
            (_ZIP,),
        ),
        FileType(
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            (".xlsx",),
            (_ZIP,),
        ),
        FileType("audio/mpeg", (".mp3",), (b"ID3", b"\xff\xfb", b"\xff\xf3", b"\xff\xf2")),
    )
}

_FILENAME_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\]")


def clean_filename(raw: str | None) -> str:
    """Keep the name the reporter gave (it may matter to them) without path parts or
    control characters."""
    name = _FILENAME_UNSAFE.sub("_", (raw or "").rsplit("/", 1)[-1].rsplit("\\", 1)[-1]).strip()
    if not name or name in {".", ".."}:
        return "attachment"
    return name[:200]


def check_file_type(declared: str | None, first_bytes: bytes) -> FileType:
    media_type = (declared or "").split(";", 1)[0].strip().lower()
    file_type = FILE_TYPES.get(media_type)
    allowed = ", ".join(sorted(FILE_TYPES))
    if file_type is None:
        raise UnsupportedFileType(
            f"This type of file is not accepted; allowed: {allowed}.",
            allowed=sorted(FILE_TYPES),
        )
    if not first_bytes:
        raise InvalidInput("The file is empty.")
    if file_type.signatures:
        if not any(first_bytes.startswith(signature) for signature in file_type.signatures):
            raise UnsupportedFileType(
                f"The file's content does not look like {media_type}.", allowed=sorted(FILE_TYPES)
            )
    elif b"\x00" in first_bytes:
        raise UnsupportedFileType("A text/plain file must not contain NUL bytes.", allowed=sorted(FILE_TYPES))
    return file_type
