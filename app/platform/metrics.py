"""Prometheus metrics. Labels are route templates, never raw paths or callers."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

HTTP_REQUESTS = Counter(
    "cleanwindow_http_requests_total",
    "HTTP requests handled, by route template, method and status.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "cleanwindow_http_request_duration_seconds",
    "Time to produce a response, by route template and method.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
