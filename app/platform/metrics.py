"""Prometheus metrics. Labels are route templates and known methods, never raw input.

A registry of our own, without the default process and garbage-collector collectors:
CPU and memory figures polled every second would show the spike of each report
submission as clearly as a request counter would.

Two kinds: this process's own (the HTTP counters below), and figures read from the
database at scrape time by *scrape collectors*, so that every replica answers the same
whatever process did the work (the background jobs run in workers). The platform knows
no feature: `create_app` hands it the collectors (`app.state.scrape_collectors`), each
an async function of the application context returning metric families.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

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


logger = logging.getLogger("cleanwindow.metrics")


@dataclass(frozen=True)
class ScrapeCollector:
    """`collect` is called with the application context (`app.context.AppContext`, which
    the platform sits below and so cannot name) at each scrape."""

    name: str
    collect: Callable[[Any], Awaitable[Iterable[Metric]]]


class _Collected(Collector):
    """What the scrape collectors returned, in the shape `generate_latest` reads."""

    def __init__(self, families: list[Metric]):
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


async def exposition(context: Any, collectors: Sequence[ScrapeCollector]) -> bytes:
    """This process's metrics, then each collector's. A collector that fails (the
    database is down) is left out and shows as 0 in `cleanwindow_scrape_collector_up`,
    so the scrape still answers and the failure can be alerted on."""
    families: list[Metric] = []
    up = GaugeMetricFamily(
        "cleanwindow_scrape_collector_up",
        "1 if the collector answered at this scrape, 0 if it failed (its metrics are then absent).",
        labels=["collector"],
    )
    for collector in collectors:
        try:
            found = list(await collector.collect(context))
        except Exception as error:
            logger.warning(
                "a metrics collector failed", extra={"collector": collector.name, "error_type": type(error).__name__}
            )
            up.add_metric([collector.name], 0)
        else:
            families.extend(found)
            up.add_metric([collector.name], 1)
    if collectors:
        families.append(up)
    return generate_latest(REGISTRY) + generate_latest(_Collected(families))
