"""Which requests may leave a trace in the logs.

Only staff and operator paths are named here; every other path, including unknown ones
(a reporter mistyping an address), is treated as reporter-facing: no access log line and
log timestamps coarsened to the hour, so a log cannot be lined up against a network
capture to find who reported.
"""

from __future__ import annotations

STAFF_AND_OPERATOR_PREFIXES = (
    "/api/v1/auth",
    "/api/v1/users",
    "/api/v1/cases",
    "/api/v1/stats",
    "/api/v1/audit",
    "/api/v1/drills",
    "/api/v1/identity-requests",
    "/api/v1/notifications",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/docs",
)


def is_reporter_facing(path: str) -> bool:
    return not any(
        path == prefix or path.startswith(prefix + "/") or path.startswith(prefix + "?")
        for prefix in STAFF_AND_OPERATOR_PREFIXES
    )
