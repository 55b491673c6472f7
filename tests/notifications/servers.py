"""Real receivers for the notification tests: an SMTP server (aiosmtpd) and an HTTP
webhook receiver, each on a free port of 127.0.0.1, each recording what it accepted."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Accepted:
    sender: str
    recipients: list[str]
    message: Message

    @property
    def text(self) -> str:
        """Everything a reader sees: the headers decoded, then the body decoded."""
        from email.header import decode_header, make_header

        headers = "\n".join(f"{name}: {make_header(decode_header(value))}" for name, value in self.message.items())
        return headers + "\n\n" + self.message.get_payload(decode=True).decode(self.message.get_content_charset() or "utf-8")


class RecordingHandler:
    """Accepts every mail, unless `answers` says otherwise: each entry is consumed by one
    DATA command, either an SMTP reply (such as "451 try later"), a number of seconds to
    wait before accepting, or (seconds, reply): a slow refusal, for crash tests."""

    def __init__(self) -> None:
        self.accepted: list[Accepted] = []
        self.answers: list[str | float | tuple[float, str]] = []
        self.receiving = 0  # DATA commands begun, accepted or not
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:
        import asyncio

        with self.lock:
            self.receiving += 1
            answer = self.answers.pop(0) if self.answers else None
        if isinstance(answer, tuple):
            await asyncio.sleep(answer[0])
            return answer[1]
        if isinstance(answer, str):
            return answer
        if isinstance(answer, (int, float)):
            await asyncio.sleep(answer)
        with self.lock:
            self.accepted.append(
                Accepted(envelope.mail_from, list(envelope.rcpt_tos), message_from_bytes(envelope.original_content))
            )
        return "250 OK"


class SmtpServer:
    def __init__(self) -> None:
        self.handler = RecordingHandler()
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def accepted(self) -> list[Accepted]:
        with self.handler.lock:
            return list(self.handler.accepted)

    def wait_for(self, count: int, timeout: float = 30) -> list[Accepted]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.accepted) >= count:
                return self.accepted
            time.sleep(0.1)
        raise AssertionError(f"the SMTP server got {len(self.accepted)} mails, not {count}, in {timeout} s")

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


@dataclass
class Received:
    headers: dict[str, str]
    body: str

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """Answers each call with the next status in `statuses` (200 once they run out)."""

    statuses: list[int] = field(default_factory=list)
    calls: list[Received] = field(default_factory=list)
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/cleanwindow"

    def __enter__(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the http.server API)
                body = self.rfile.read(int(self.headers.get("content-length", 0))).decode()
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                receiver.calls.append(Received({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
