"""Streaming multipart parsing that never spools a file to disk or holds it whole.

Starlette's form parser writes uploads above 1 MB to a temporary file: plaintext of an
attachment on the server's disk. This reader hands the file part to the caller in pieces
as they arrive, so the caller can seal each piece before the next one is read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from app.domain.errors import InvalidInput


@dataclass(frozen=True)
class PartStart:
    name: str
    filename: str | None
    content_type: str | None


@dataclass(frozen=True)
class PartData:
    data: bytes


@dataclass(frozen=True)
class PartEnd:
    pass


PartEvent = PartStart | PartData | PartEnd


class MalformedMultipart(InvalidInput):
    slug = "malformed-multipart"
    title = "Malformed multipart body"


async def multipart_events(request: Request) -> AsyncIterator[PartEvent]:
    content_type, options = parse_options_header(request.headers.get("content-type"))
    if content_type != b"multipart/form-data" or b"boundary" not in options:
        raise MalformedMultipart("Send the file as multipart/form-data, in a part named `file`.")
    events: list[PartEvent] = []
    header_field = bytearray()
    header_value = bytearray()
    headers: dict[str, bytes] = {}

    def on_part_begin() -> None:
        headers.clear()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_field.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        headers[bytes(header_field).decode("latin-1").lower()] = bytes(header_value)
        header_field.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        _, disposition = parse_options_header(headers.get("content-disposition"))
        name = disposition.get(b"name", b"").decode("utf-8", "replace")
        filename = disposition.get(b"filename")
        content_type = headers.get("content-type")
        events.append(
            PartStart(
                name=name,
                filename=filename.decode("utf-8", "replace") if filename is not None else None,
                content_type=content_type.decode("latin-1") if content_type is not None else None,
            )
        )

    def on_part_data(data: bytes, start: int, end: int) -> None:
        events.append(PartData(bytes(data[start:end])))

    def on_part_end() -> None:
        events.append(PartEnd())

    callbacks = {
        "on_part_begin": on_part_begin,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_headers_finished": on_headers_finished,
        "on_part_data": on_part_data,
        "on_part_end": on_part_end,
    }
    try:
        parser = MultipartParser(options[b"boundary"], callbacks)
    except FormParserError:  # refused when built, not while parsing: a boundary over 256 bytes
        raise MalformedMultipart("The multipart boundary is too long.") from None
    async for chunk in request.stream():
        try:
            parser.write(chunk)
        except FormParserError:
            raise MalformedMultipart("The multipart body is malformed.") from None
        for event in events:
            yield event
        events.clear()
    try:
        parser.finalize()
    except FormParserError:
        raise MalformedMultipart("The multipart body ended early.") from None
    for event in events:
        yield event
