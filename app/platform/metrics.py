"""Prometheus metrics. Labels are route templates and known methods, never raw input.

A registry of our own, without the default process and garbage-collector collectors:
CPU and memory figures polled every second would show the spike of each report
submission as clearly as a request counter would.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

HTTP_REQUESTS = Counter(
    "cleanwindow_http_requests_total",
    "HTTP requests to staff and operator paths, by route template, method and status.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "cleanwindow_http_request_duration_seconds",
    "Time to produce a response on staff and operator paths, by route template and method.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)


def method_label(method: str) -> str:
    # A client may send any token as a method; each would otherwise become a new series.
    return method if method in KNOWN_METHODS else "OTHER"
