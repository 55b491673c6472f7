"""The staff API over HTTP, and every way talking to it can fail, as one-line errors."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from app.client.errors import ClientError
from app.client.models import (
    AuditPage,
    AuditVerification,
    Campaign,
    Campaigns,
    CaseDetail,
    CasePage,
    CreatedCampaign,
    GrantMade,
    History,
    IdentityRequest,
    IdentityRequests,
    Injection,
    IssuedCodes,
    IssuedToken,
    MessageSent,
    PendingIdentityWork,
    RegisteredKey,
    ReleasedIdentity,
    ReleaseWork,
    ScenarioLibrary,
    Scorecard,
    StaffAccount,
    StaffAccounts,
    StaffPublicKey,
    Stats,
    TransitionResult,
)

if TYPE_CHECKING:
    from app.domain.crypto import PublicKey

URL_VARIABLE = "CLEANWINDOW_URL"
TOKEN_VARIABLE = "CLEANWINDOW_TOKEN"
TIMEOUT_VARIABLE = "CLEANWINDOW_TIMEOUT"
DEFAULT_URL = "http://127.0.0.1:8000"
# Long enough for a slow link and a busy login queue, short enough that a dead server is
# reported while the person is still watching.
DEFAULT_TIMEOUT_SECONDS = 60.0
CONNECT_TIMEOUT_SECONDS = 10.0
API = "/api/v1"
LOGIN_HINT = f"export {TOKEN_VARIABLE}=$(cleanwindow login USERNAME)"
CSV = "text/csv"

Model = TypeVar("Model", bound=BaseModel)


class ApiClient:
    """One server, one token. Every method answers a parsed model or raises ClientError."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    ):
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._has_token = token is not None
        try:
            timeout = httpx.Timeout(
                timeout_seconds, connect=min(timeout_seconds, CONNECT_TIMEOUT_SECONDS)
            )
            self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)
        except (httpx.InvalidURL, ValueError) as error:
            raise ClientError(
                f"{URL_VARIABLE}={base_url!r} is not a usable URL: {error}", 2
            ) from None

    @classmethod
    def from_environment(cls, *, with_token: bool = True) -> ApiClient:
        """The server, token and timeout from the environment; `with_token=False` for the
        login itself, which must not send an old token along."""
        token = None
        if with_token:
            token = os.environ.get(TOKEN_VARIABLE, "").strip() or None
            if token is None:
                raise ClientError(f"no token: set {TOKEN_VARIABLE} ({LOGIN_HINT})", 2)
        url = os.environ.get(URL_VARIABLE, "").strip() or DEFAULT_URL
        return cls(url, token, timeout_seconds=timeout_from_environment())

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._http.close()

    # --- endpoints -----------------------------------------------------------------

    def login(self, username: str, password: str) -> IssuedToken:
        answer = self._request(
            "POST", "/auth/token", data={"username": username, "password": password}
        )
        return self._parse(IssuedToken, answer)

    def register_public_key(self, public_key: PublicKey) -> RegisteredKey:
        answer = self._request(
            "PUT", "/users/me/public-key", json={"public_key": public_key.to_text()}
        )
        return self._parse(RegisteredKey, answer)

    def public_key_of(self, username: str) -> StaffPublicKey:
        return self._parse(StaffPublicKey, self._request("GET", f"/users/{quote(username, safe='')}/public-key"))

    def cases(
        self, filters: Mapping[str, str], *, limit: int, cursor: str | None = None
    ) -> CasePage:
        params = {**filters, "limit": str(limit), **({"cursor": cursor} if cursor else {})}
        return self._parse(CasePage, self._request("GET", "/cases", params=params))

    def case(self, case_id: uuid.UUID) -> CaseDetail:
        return self._parse(CaseDetail, self._request("GET", f"/cases/{case_id}"))

    def history(self, case_id: uuid.UUID) -> History:
        return self._parse(History, self._request("GET", f"/cases/{case_id}/history"))

    def transition(self, case_id: uuid.UUID, request: Mapping[str, Any]) -> TransitionResult:
        answer = self._request("POST", f"/cases/{case_id}/transitions", json=dict(request))
        return self._parse(TransitionResult, answer)

    def send_message(
        self, case_id: uuid.UUID, message_id: uuid.UUID, sealed_body: bytes
    ) -> MessageSent:
        from app.domain.crypto import MESSAGE_SEAL_FORMAT, b64url_encode  # the caller sealed it: already loaded

        body = {
            "id": str(message_id),
            "sealed_body": b64url_encode(sealed_body),
            "seal_format": MESSAGE_SEAL_FORMAT,
        }
        return self._parse(
            MessageSent, self._request("POST", f"/cases/{case_id}/messages", json=body)
        )

    def grant(
        self, case_id: uuid.UUID, grantee: str, fingerprint: str, sealed_key: bytes
    ) -> GrantMade:
        from app.domain.crypto import b64url_encode  # the caller sealed it: already loaded

        body = {
            "grantee": grantee,
            "fingerprint": fingerprint,
            "sealed_key": b64url_encode(sealed_key),
        }
        return self._parse(GrantMade, self._request("POST", f"/cases/{case_id}/grants", json=body))

    # --- confidential identity ------------------------------------------------------------

    def request_identity(self, case_id: uuid.UUID, reason: str) -> IdentityRequest:
        answer = self._request("POST", f"/cases/{case_id}/identity-requests", json={"reason": reason})
        return self._parse(IdentityRequest, answer)

    def identity_requests(self, case_id: uuid.UUID) -> list[IdentityRequest]:
        return self._parse(IdentityRequests, self._request("GET", f"/cases/{case_id}/identity-requests")).root

    def identity_request(self, request_id: uuid.UUID) -> IdentityRequest:
        return self._parse(IdentityRequest, self._request("GET", f"/identity-requests/{request_id}"))

    def pending_identity_work(self) -> PendingIdentityWork:
        return self._parse(PendingIdentityWork, self._request("GET", "/identity-requests/pending"))

    def release_material(self, request_id: uuid.UUID) -> ReleaseWork:
        return self._parse(ReleaseWork, self._request("GET", f"/identity-requests/{request_id}/release-material"))

    def act_on_identity_request(
        self, request_id: uuid.UUID, action: str, body: Mapping[str, Any] | None = None
    ) -> IdentityRequest:
        answer = self._request("POST", f"/identity-requests/{request_id}/{action}", json=body)
        return self._parse(IdentityRequest, answer)

    def release_identity(self, request_id: uuid.UUID, fingerprint: str, sealed_key: bytes) -> IdentityRequest:
        from app.domain.crypto import b64url_encode  # the caller sealed it: already loaded

        body = {"fingerprint": fingerprint, "sealed_key": b64url_encode(sealed_key)}
        return self.act_on_identity_request(request_id, "release", body)

    def released_identity(self, case_id: uuid.UUID) -> ReleasedIdentity:
        return self._parse(ReleasedIdentity, self._request("GET", f"/cases/{case_id}/identity"))

    def set_custodian(self, user_id: uuid.UUID, custodian: bool) -> StaffAccount:
        answer = self._request("PUT", f"/users/{user_id}/identity-custodian", json={"custodian": custodian})
        return self._parse(StaffAccount, answer)

    def set_email(self, user_id: uuid.UUID, email: str | None) -> StaffAccount:
        return self._parse(StaffAccount, self._request("PUT", f"/users/{user_id}/email", json={"email": email}))

    def users(self) -> list[StaffAccount]:
        return self._parse(StaffAccounts, self._request("GET", "/users")).root

    def deactivate(self, user_id: uuid.UUID) -> StaffAccount:
        return self._parse(StaffAccount, self._request("POST", f"/users/{user_id}/deactivate"))

    def audit(
        self, filters: Mapping[str, str], *, limit: int, cursor: str | None = None
    ) -> AuditPage:
        params = {**filters, "limit": str(limit), **({"cursor": cursor} if cursor else {})}
        return self._parse(AuditPage, self._request("GET", "/audit", params=params))

    def verify_audit(self) -> AuditVerification:
        return self._parse(AuditVerification, self._request("GET", "/audit/verify"))

    def stats(self) -> Stats:
        return self._parse(Stats, self._request("GET", "/stats"))

    # --- drills (role drill_coordinator) ---------------------------------------------

    def create_campaign(self, body: Mapping[str, Any]) -> CreatedCampaign:
        return self._parse(CreatedCampaign, self._request("POST", "/drills", json=dict(body)))

    def campaigns(self) -> Campaigns:
        return self._parse(Campaigns, self._request("GET", "/drills"))

    def campaign(self, campaign_id: uuid.UUID) -> Campaign:
        return self._parse(Campaign, self._request("GET", f"/drills/{campaign_id}"))

    def scenario_library(self) -> ScenarioLibrary:
        return self._parse(ScenarioLibrary, self._request("GET", "/drills/scenarios"))

    def act_on_campaign(self, campaign_id: uuid.UUID, action: str) -> Campaign:
        """pause, resume or close."""
        return self._parse(Campaign, self._request("POST", f"/drills/{campaign_id}/{action}"))

    def inject(self, campaign_id: uuid.UUID, scenario: int | None = None) -> Injection:
        body = {} if scenario is None else {"scenario": scenario}
        answer = self._request("POST", f"/drills/{campaign_id}/inject", json=body)
        return self._parse(Injection, answer)

    def issue_codes(self, campaign_id: uuid.UUID, count: int, cohort: str | None) -> IssuedCodes:
        body: dict[str, Any] = {"count": count} | ({"cohort": cohort} if cohort is not None else {})
        answer = self._request("POST", f"/drills/{campaign_id}/participants", json=body)
        return self._parse(IssuedCodes, answer)

    def scorecard(self, campaign_id: uuid.UUID) -> Scorecard:
        return self._parse(Scorecard, self._request("GET", f"/drills/{campaign_id}/scorecard"))

    def scorecard_csv(self, campaign_id: uuid.UUID) -> str:
        path = f"/drills/{campaign_id}/scorecard"
        response = self._send("GET", path, headers={"Accept": CSV})
        if response.headers.get("content-type", "").split(";")[0].strip() != CSV:
            raise ClientError(
                f"the server at {self.base_url} answered GET {API + path} with something that "
                f"is not CSV; is {URL_VARIABLE} the Clean Window service?"
            )
        return response.text

    @contextmanager
    def attachment(self, case_id: uuid.UUID, attachment_id: uuid.UUID) -> Iterator[Iterator[bytes]]:
        """The attachment's sealed chunks as the server streams them (length-prefixed)."""
        path = f"{API}/cases/{case_id}/attachments/{attachment_id}"
        with self._transport_errors(), self._http.stream("GET", path) as response:
            if response.is_error:
                response.read()
                raise self._refusal(response)
            yield self._guarded(response.iter_bytes())

    # --- plumbing ------------------------------------------------------------------

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with self._transport_errors():
            response = self._http.request(method, API + path, **kwargs)
        if response.is_error:
            raise self._refusal(response)
        return response

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._send(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise ClientError(
                f"the server at {self.base_url} answered {method} {API + path} with something that is not JSON; "
                f"is {URL_VARIABLE} the Clean Window service?"
            ) from None

    def _parse(self, model: type[Model], answer: Any) -> Model:
        try:
            return model.model_validate(answer)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "answer"
            raise ClientError(
                f"the server's answer does not have the shape this client expects ({where}: {first['msg']}); "
                "are the client and server the same version?"
            ) from None

    def _guarded(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        # A stream fails while it is read, after the request itself succeeded.
        with self._transport_errors():
            yield from chunks

    @contextmanager
    def _transport_errors(self) -> Iterator[None]:
        try:
            yield
        except httpx.TimeoutException:
            raise ClientError(f"the server at {self.base_url} did not answer in time") from None
        except httpx.UnsupportedProtocol:
            raise ClientError(
                f"{URL_VARIABLE}={self.base_url!r} must start with http:// or https://", 2
            ) from None
        except httpx.TransportError as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise ClientError(f"cannot reach the server at {self.base_url}: {reason}") from None

    def _refusal(self, response: httpx.Response) -> ClientError:
        detail = problem_detail(response)
        if response.status_code == HTTPStatus.UNAUTHORIZED and self._has_token:
            return ClientError(f"the server refused the token: {detail} ({LOGIN_HINT})")
        return ClientError(detail)


def timeout_from_environment() -> float:
    text = os.environ.get(TIMEOUT_VARIABLE, "").strip()
    if not text:
        return DEFAULT_TIMEOUT_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < float("inf"):
        raise ClientError(f"{TIMEOUT_VARIABLE}={text!r} is not a positive number of seconds", 2)
    return seconds


def problem_detail(response: httpx.Response) -> str:
    """The RFC 9457 `detail` when the answer is a problem document, else the status line
    (a proxy's HTML error page says nothing the status does not)."""
    try:
        problem = response.json()
    except ValueError:
        problem = None
    if isinstance(problem, dict) and isinstance(problem.get("detail"), str) and problem["detail"]:
        return " ".join(problem["detail"].split())  # one line, however the server wrapped it
    return f"the server answered {response.status_code} {response.reason_phrase}"
