"""Staff paths against their ceiling: the product and bench/staff_ceiling.py (the same SQL
through asyncpg, the same JSON) on one generated database, interleaved; prints the ratios.

    .venv/bin/python bench/staff_bench.py --database-url postgresql://postgres@127.0.0.1:5432/postgres
    .venv/bin/python bench/staff_bench.py --cases 20000 --rounds 2 --requests 50   # a quick look

It creates a database of its own on the server of `--database-url` (loopback or a Unix
socket; default: an embedded PostgreSQL), fills it with bench/cases_bench.py's generator
(`--cases`, default 1,000,000), adds the accounts of bench/staff_setup.py (the triage
officer with a registered key and a content key on every case it reads or writes, an
auditor, a second triage officer with a key, who receives the grants), then starts
`cleanwindow serve` (through http_bench.own_server) and the ceiling app, each its own
uvicorn process on that database.

Before timing anything it checks, failing loudly, that both answer the same JSON for the
read paths (queue page, case detail, history, audit page, stats) and, for the write paths
(transition, message, grant), the same keys and the same state change on two different
cases; the audit chain must verify (`GET /api/v1/audit/verify`) after the check and again
at the end.

Then a warm-up and `--rounds` rounds: in each, every path runs `--requests` requests
(`--stats-requests` for /stats, which scans every case three times) at
`--concurrency` on the product and on the ceiling, back to back, the one that goes first
alternating between rounds. Each run records requests/s, p50, p99 and the server
process's CPU time per request (psutil, user + system). The table quotes medians over
rounds and, per path, the median of the per-round ratios product/ceiling with min-max.
Loopback only; it stops by itself and drops its database.

Paths (all /api/v1, triage officer unless said): GET /cases?limit=50; GET /cases/{id}
(cycling over `--detail-cases` cases; writes a case.read audit entry); POST
/cases/{id}/transitions (acknowledge, a distinct received case each); GET
/cases/{id}/history (cycling over cases acknowledged before the runs); POST
/cases/{id}/messages (a distinct case each, 540 random bytes as the sealed body: the
server checks only the format); POST /cases/{id}/grants (a distinct case each, to the
second officer); GET /audit (auditor); GET /stats (auditor).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from sqlalchemy.ext.asyncio import create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cases_bench  # noqa: E402  (sibling scripts, not a package)
from http_bench import free_port, own_server, percentile  # noqa: E402
from staff_setup import AUDITOR_USERNAME, GRANTEE_USERNAME, StaffSetup, prepare_staff  # noqa: E402

from app.domain import crypto  # noqa: E402
from app.domain.clock import DEFAULT_TIMEZONE, organisation_date, organisation_zone, utc_now  # noqa: E402

PATHS = ("queue", "detail", "transition", "history", "message", "grant", "audit", "stats")
LABELS = {
    "queue": "GET /cases?limit=50",
    "detail": "GET /cases/{id}",
    "transition": "POST /cases/{id}/transitions",
    "history": "GET /cases/{id}/history",
    "message": "POST /cases/{id}/messages",
    "grant": "POST /cases/{id}/grants",
    "audit": "GET /audit",
    "stats": "GET /stats",
}
EXPECTED = {"transition": 200, "message": 201, "grant": 201}
WRITES = ("transition", "message", "grant")
WARM_UP = 20
HISTORY_CASES = 50
SEALED_MESSAGE_BYTES = 540
SERVERS = ("product", "ceiling")


def log(message: str) -> None:
    print(f"[staff_bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Run:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_request: float
    errors: int
    error_kinds: dict[str, int] = field(default_factory=dict)


@dataclass
class Target:
    name: str
    client: httpx.AsyncClient
    process: psutil.Process


# --- the servers -------------------------------------------------------------------------


def server_process(port: int) -> psutil.Process:
    """Our child process serving on `port` (`serve --port N` or the ceiling's `--port N`)."""
    for child in psutil.Process().children(recursive=True):
        try:
            command = child.cmdline()
        except psutil.Error:
            continue
        if "--port" in command and command[command.index("--port") + 1 : command.index("--port") + 2] == [str(port)]:
            return child
    raise SystemExit(f"no server process of ours listens on port {port}")


@contextmanager
def ceiling_server(database_url: str) -> Iterator[str]:
    """bench/staff_ceiling.py in a process of its own, with the environment own_server gives
    the product (development settings, hence the same secret key and time zone)."""
    with tempfile.TemporaryDirectory(prefix="cw-ceiling-") as data_dir:
        env = {**os.environ, "CLEANWINDOW_DATA_DIR": data_dir, "CLEANWINDOW_LOG_LEVEL": "WARNING",
               "CLEANWINDOW_ENV": "development", "DATABASE_URL": database_url}
        env.pop("CLEANWINDOW_ENVIRONMENT", None)
        port = free_port()
        log_file = open(Path(data_dir) / "ceiling.log", "w")
        process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve().parent / "staff_ceiling.py"), "--port", str(port)],
            env=env, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        base_url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                if process.poll() is not None:
                    log_file.flush()
                    raise SystemExit(f"the ceiling exited with {process.returncode}:\n"
                                     + (Path(data_dir) / "ceiling.log").read_text()[-3000:])
                try:
                    if httpx.get(f"{base_url}/api/v1/stats", timeout=2).status_code == 401:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("the ceiling did not start within 60 s")
                time.sleep(0.2)
            yield base_url
        except BaseException:
            log_file.flush()
            print("the ceiling's log, last lines:\n" + (Path(data_dir) / "ceiling.log").read_text()[-4000:],
                  file=sys.stderr)
            raise
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
            log_file.close()


# --- the requests ------------------------------------------------------------------------


@dataclass
class Pools:
    """Which case each request goes to; writes never reuse a case."""

    detail: list[str]
    history: list[str]
    received: list[str]
    messages: list[str]
    grants: list[str]
    grantee_fingerprint: str
    cycle: int = 0

    def take(self, pool: list[str], what: str) -> str:
        if not pool:
            raise SystemExit(f"out of cases for {what}: generate more --cases or ask for fewer --requests")
        return pool.pop()

    def next_of(self, pool: list[str]) -> str:
        self.cycle += 1
        return pool[self.cycle % len(pool)]


def request_for(
    path: str, pools: Pools, triage: dict[str, str], auditor: dict[str, str]
) -> Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]:
    """One request of this path, its case chosen now (untimed)."""
    if path == "queue":
        return lambda c: c.get("/api/v1/cases", params={"limit": "50"}, headers=triage)
    if path == "detail":
        case = pools.next_of(pools.detail)
        return lambda c: c.get(f"/api/v1/cases/{case}", headers=triage)
    if path == "history":
        case = pools.next_of(pools.history)
        return lambda c: c.get(f"/api/v1/cases/{case}/history", headers=triage)
    if path == "transition":
        case = pools.take(pools.received, path)
        body = {"action": "acknowledge", "expected_version": 1}
        return lambda c: c.post(f"/api/v1/cases/{case}/transitions", headers=triage, json=body)
    if path == "message":
        case = pools.take(pools.messages, path)
        body = {"id": str(uuid.uuid4()), "sealed_body": crypto.b64url_encode(os.urandom(SEALED_MESSAGE_BYTES)),
                "seal_format": crypto.MESSAGE_SEAL_FORMAT}
        return lambda c: c.post(f"/api/v1/cases/{case}/messages", headers=triage, json=body)
    if path == "grant":
        case = pools.take(pools.grants, path)
        body = {"grantee": GRANTEE_USERNAME, "fingerprint": pools.grantee_fingerprint,
                "sealed_key": crypto.b64url_encode(os.urandom(crypto.SEALED_CONTENT_KEY_BYTES))}
        return lambda c: c.post(f"/api/v1/cases/{case}/grants", headers=triage, json=body)
    if path == "audit":
        return lambda c: c.get("/api/v1/audit", headers=auditor)
    if path == "stats":
        return lambda c: c.get("/api/v1/stats", headers=auditor)
    raise ValueError(path)


async def run_path(
    target: Target, sends: list[Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]], concurrency: int,
    expected: int,
) -> Run:
    latencies: list[float] = []
    kinds: dict[str, int] = {}
    queue = iter(sends)

    async def worker() -> None:
        for send in queue:
            started = time.perf_counter()
            try:
                response = await send(target.client)
                kind = None if response.status_code == expected else f"HTTP {response.status_code}"
            except httpx.HTTPError as error:
                kind = type(error).__name__
            latencies.append(time.perf_counter() - started)
            if kind:
                kinds[kind] = kinds.get(kind, 0) + 1

    # The load generator's own garbage collection would stall every request in flight
    # and show up as the server's tail latency: collected before the run, off during it.
    gc.collect()
    gc.disable()
    try:
        cpu_before = sum(target.process.cpu_times()[:2])
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        cpu = sum(target.process.cpu_times()[:2]) - cpu_before
    finally:
        gc.enable()
    latencies.sort()
    return Run(
        requests_per_second=len(sends) / elapsed,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        cpu_ms_per_request=cpu * 1000 / len(sends),
        errors=sum(kinds.values()),
        error_kinds=kinds,
    )


# --- the equality check --------------------------------------------------------------------


def differences(left: Any, right: Any, where: str = "") -> list[str]:
    if isinstance(left, dict) and isinstance(right, dict):
        found = [f"{where}.{key}: only in {'product' if key in left else 'ceiling'}" for key in set(left) ^ set(right)]
        for key in left.keys() & right.keys():
            found += differences(left[key], right[key], f"{where}.{key}")
        return found
    if isinstance(left, list) and isinstance(right, list):
        if len(left) != len(right):
            return [f"{where}: {len(left)} items against {len(right)}"]
        return [problem for n, (a, b) in enumerate(zip(left, right)) for problem in differences(a, b, f"{where}[{n}]")]
    return [] if left == right else [f"{where}: product {left!r}, ceiling {right!r}"]


def keys_of(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: keys_of(item) for key, item in value.items()}
    if isinstance(value, list):
        return [keys_of(item) for item in value[:1]]
    return "a value"


async def fetch(target: Target, send: Callable[[httpx.AsyncClient], Awaitable[httpx.Response]], expected: int) -> Any:
    response = await send(target.client)
    if response.status_code != expected:
        raise SystemExit(f"{target.name}: HTTP {response.status_code} where {expected} was expected: {response.text[:500]}")
    return response.json()


async def check_equal(targets: dict[str, Target], pools: Pools, triage: dict[str, str], auditor: dict[str, str]) -> list[str]:
    """Fails loudly on any difference; returns what was compared."""
    product, ceiling = targets["product"], targets["ceiling"]
    compared = []
    problems: list[str] = []

    async def both_same(label: str, send) -> tuple[Any, Any]:
        a = await fetch(product, send, 200)
        b = await fetch(ceiling, send, 200)
        problems.extend(f"{label}: {problem}" for problem in differences(a, b))
        compared.append(label)
        return a, b

    case = pools.detail[0]
    await both_same("GET /cases?limit=50", lambda c: c.get("/api/v1/cases", params={"limit": "50"}, headers=triage))
    await both_same("GET /cases/{id}", lambda c: c.get(f"/api/v1/cases/{case}", headers=triage))
    await both_same("GET /cases/{id}/history",
                    lambda c: c.get(f"/api/v1/cases/{pools.history[0]}/history", headers=triage))
    await both_same("GET /stats", lambda c: c.get("/api/v1/stats", headers=auditor))
    await both_same("GET /audit", lambda c: c.get("/api/v1/audit", headers=auditor))

    # Writes: one case each, then the same shape and the same change, read back through the product.
    def changed(detail: dict[str, Any]) -> dict[str, Any]:
        return {key: detail[key] for key in ("state", "version", "acknowledged_on", "feedback_due_on",
                                             "feedback_given_on", "overdue", "allowed_actions", "assignee")}

    for path in WRITES:
        requests = {name: request_for(path, pools, triage, auditor) for name in SERVERS}
        answers = {name: await fetch(targets[name], requests[name], EXPECTED[path]) for name in SERVERS}
        problems.extend(f"{LABELS[path]} (shape): {p}" for p in differences(keys_of(answers["product"]), keys_of(answers["ceiling"])))
        if path == "transition":
            problems.extend(f"{LABELS[path]}: {p}" for p in differences(changed(answers["product"]), changed(answers["ceiling"])))
            histories = [
                (await fetch(product, lambda c, case=answers[name]["id"]: c.get(f"/api/v1/cases/{case}/history", headers=triage), 200))["items"]
                for name in SERVERS
            ]
            for entry in histories:
                entry[0].pop("occurred_at")
            problems.extend(f"{LABELS[path]} (history): {p}" for p in differences(*histories))
        if path == "message":
            problems.extend(f"{LABELS[path]}: {p}" for p in differences(
                {k: answers["product"][k] for k in ("seq", "sent_on")}, {k: answers["ceiling"][k] for k in ("seq", "sent_on")}))
        if path == "grant":
            problems.extend(f"{LABELS[path]}: {p}" for p in differences(
                {k: answers["product"][k] for k in ("grantee", "fingerprint")},
                {k: answers["ceiling"][k] for k in ("grantee", "fingerprint")}))
        compared.append(LABELS[path] + " (shape and change)")
    # The audit entries the writes left, product's and ceiling's, side by side.
    page = (await fetch(product, lambda c: c.get("/api/v1/audit", params={"limit": "6"}, headers=auditor), 200))["items"]
    entries = sorted(page, key=lambda e: e["seq"])
    for first, second in zip(entries[0::2], entries[1::2]):
        problems.extend(f"audit entries {first['seq']}/{second['seq']}: {p}" for p in differences(
            {k: first[k] for k in ("action", "actor", "actor_role")} | {"details": sorted(first["details"])},
            {k: second[k] for k in ("action", "actor", "actor_role")} | {"details": sorted(second["details"])}))
    if problems:
        raise SystemExit("product and ceiling disagree:\n  " + "\n  ".join(problems))
    await verify_chain(product, auditor)
    return compared


async def verify_chain(product: Target, auditor: dict[str, str]) -> dict[str, Any]:
    verified = await fetch(product, lambda c: c.get("/api/v1/audit/verify", headers=auditor), 200)
    if not verified["ok"]:
        raise SystemExit(f"the audit chain does not verify: {verified}")
    return verified


# --- the runs -------------------------------------------------------------------------------


def requests_of(path: str, args: argparse.Namespace) -> int:
    return args.stats_requests if path == "stats" else args.requests



async def benchmark(urls: dict[str, str], setup: StaffSetup, received: list[str], args: argparse.Namespace) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with (
        httpx.AsyncClient(base_url=urls["product"], limits=limits, timeout=60) as product_client,
        httpx.AsyncClient(base_url=urls["ceiling"], limits=limits, timeout=60) as ceiling_client,
    ):
        targets = {
            "product": Target("product", product_client, server_process(int(urls["product"].rsplit(":", 1)[1]))),
            "ceiling": Target("ceiling", ceiling_client, server_process(int(urls["ceiling"].rsplit(":", 1)[1]))),
        }
        tokens = {}
        for username in (cases_bench.TRIAGE_USERNAME, AUDITOR_USERNAME):
            login = await product_client.post("/api/v1/auth/token", data={"username": username, "password": cases_bench.PASSWORD})
            login.raise_for_status()
            tokens[username] = {"Authorization": f"Bearer {login.json()['access_token']}"}
        triage, auditor = tokens[cases_bench.TRIAGE_USERNAME], tokens[AUDITOR_USERNAME]

        keyed = list(setup.key_pool)
        detail = keyed[: args.detail_cases]
        rest = keyed[args.detail_cases :]
        pools = Pools(detail=detail, history=[], received=list(received), messages=rest[0::2], grants=rest[1::2],
                      grantee_fingerprint=setup.grantee_fingerprint)
        # Cases with a history: acknowledged through the product, untimed.
        for _ in range(HISTORY_CASES):
            case = pools.take(pools.received, "history")
            answer = await product_client.post(f"/api/v1/cases/{case}/transitions", headers=triage,
                                               json={"action": "acknowledge", "expected_version": 1})
            answer.raise_for_status()
            pools.history.append(case)

        log("checking that product and ceiling answer the same")
        compared = await check_equal(targets, pools, triage, auditor)
        log("same answers: " + "; ".join(compared))

        runs: dict[str, dict[str, list[Run]]] = {path: {name: [] for name in SERVERS} for path in args.paths}
        log("warming up")
        for path in args.paths:
            for name in SERVERS:
                sends = [request_for(path, pools, triage, auditor) for _ in range(min(WARM_UP, requests_of(path, args)))]
                await run_path(targets[name], sends, args.concurrency, EXPECTED.get(path, 200))
        for round_number in range(1, args.rounds + 1):
            order = SERVERS if round_number % 2 else tuple(reversed(SERVERS))
            log(f"round {round_number} of {args.rounds} ({' then '.join(order)} first)")
            for path in args.paths:
                for name in order:
                    sends = [request_for(path, pools, triage, auditor) for _ in range(requests_of(path, args))]
                    runs[path][name].append(await run_path(targets[name], sends, args.concurrency, EXPECTED.get(path, 200)))
        verified = await verify_chain(targets["product"], auditor)
        log(f"audit chain verifies: {verified['entries']:,} entries")
    return {"runs": runs, "compared": compared, "verified": verified}


# --- the report -----------------------------------------------------------------------------


def rate(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def table(runs: dict[str, dict[str, list[Run]]]) -> list[str]:
    lines = [
        "| path | product req/s | ceiling req/s | product/ceiling (min-max) | p50 ms product / ceiling "
        "| p99 ms product / ceiling | CPU ms/req product / ceiling | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for path, by_server in runs.items():
        product, ceiling = by_server["product"], by_server["ceiling"]
        ratios = [p.requests_per_second / c.requests_per_second for p, c in zip(product, ceiling)]

        def median(runs: list[Run], name: str) -> float:
            return statistics.median(getattr(run, name) for run in runs)

        lines.append(
            f"| {LABELS[path]} | {rate(median(product, 'requests_per_second'))} "
            f"| {rate(median(ceiling, 'requests_per_second'))} "
            f"| {statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) "
            f"| {median(product, 'p50_ms'):.1f} / {median(ceiling, 'p50_ms'):.1f} "
            f"| {median(product, 'p99_ms'):.1f} / {median(ceiling, 'p99_ms'):.1f} "
            f"| {median(product, 'cpu_ms_per_request'):.2f} / {median(ceiling, 'cpu_ms_per_request'):.2f} "
            f"| {sum(r.errors for r in product + ceiling)} |"
        )
    errors = []
    for path, by_server in runs.items():
        for name, server_runs in by_server.items():
            kinds: Counter[str] = Counter()
            for run in server_runs:
                kinds.update(run.error_kinds)
            if kinds:
                errors.append(f"errors in {LABELS[path]} ({name}): "
                              + ", ".join(f"{kind} x{n}" for kind, n in sorted(kinds.items())))
    return lines + ([""] + errors if errors else [])


def stop(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second TERM must not interrupt the cleanup
    raise SystemExit(f"stopped by signal {signum}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="a loopback PostgreSQL server where the bench may create and drop "
                        "a database (e.g. postgresql://postgres@127.0.0.1:5432/postgres); default: an embedded one")
    parser.add_argument("--cases", type=int, default=1_000_000, help="cases to generate (default 1,000,000)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--requests", type=int, default=200, help="requests per path per server per round (default 200)")
    parser.add_argument("--stats-requests", type=int, default=16,
                        help="requests of GET /stats per server per round (default 16: three scans of all cases each)")
    parser.add_argument("--concurrency", type=int, default=8, help="clients at once (default 8)")
    parser.add_argument("--detail-cases", type=int, default=200, help="cases the detail reads cycle over (default 200)")
    parser.add_argument("--paths", type=lambda value: [p.strip() for p in value.split(",") if p.strip()],
                        help=f"comma-separated subset of {','.join(PATHS)} (default: all)")
    parser.add_argument("--json", type=Path, help="also write the per-round results here")
    args = parser.parse_args()
    if not 1_000 <= args.cases <= 10_000_000:
        raise SystemExit("keep --cases within 1000..10000000")
    if not 1 <= args.rounds <= 50 or not 1 <= args.requests <= 100_000 or not 1 <= args.concurrency <= 256:
        raise SystemExit("keep --rounds within 1..50, --requests within 1..100000, --concurrency within 1..256")
    if not 1 <= args.stats_requests <= 100_000:
        raise SystemExit("keep --stats-requests within 1..100000")
    args.paths = args.paths or list(PATHS)
    unknown = sorted(set(args.paths) - set(PATHS))
    if unknown:
        raise SystemExit(f"unknown path(s) {', '.join(unknown)}; choose from {', '.join(PATHS)}")
    args.paths = [path for path in PATHS if path in args.paths]
    if args.database_url:
        cases_bench.refuse_non_loopback_database(args.database_url)

    # A TERM (or an INT, which a shell's background job ignores) must still stop both
    # servers and drop the database: the `finally` blocks below do that on SystemExit.
    signal.signal(signal.SIGTERM, stop)
    writes = 2 * (args.rounds * args.requests + WARM_UP) + 2  # both servers, the check's one each
    zone = organisation_zone(os.environ.get("CLEANWINDOW_TIMEZONE", DEFAULT_TIMEZONE))
    today = organisation_date(utc_now(), zone)
    started = time.perf_counter()
    with cases_bench.database_server(args.database_url) as server:
        name = f"cw_bench_{secrets.token_hex(4)}"
        asyncio.run(cases_bench.admin(server, f'CREATE DATABASE "{name}"'))
        log(f"created database {name}")
        try:
            url = cases_bench.database_url_named(server, name)
            prepared = asyncio.run(cases_bench.prepare_database(url, argparse.Namespace(cases=args.cases), today))
            generate_seconds = prepared.generate_seconds

            async def staff() -> StaffSetup:
                engine = create_async_engine(url)
                try:
                    return await prepare_staff(engine, cases_bench.TRIAGE_USERNAME, cases_bench.PASSWORD,
                                               args.detail_cases + 2 * writes)
                finally:
                    await engine.dispose()

            setup = asyncio.run(staff())
            if len(setup.key_pool) < args.detail_cases + 2 * writes or len(prepared.received_pool) < writes + HISTORY_CASES:
                raise SystemExit(
                    f"{len(prepared.received_pool):,} received and {len(setup.key_pool):,} other cases; the runs need "
                    f"{writes + HISTORY_CASES:,} and {args.detail_cases + 2 * writes:,}: generate more --cases or "
                    "ask for fewer --requests or --rounds"
                )
            with (
                own_server(sys.executable, 8, extra_env={"DATABASE_URL": url}, create_admin=False) as product_url,
                ceiling_server(url) as ceiling_url,
            ):
                result = asyncio.run(benchmark({"product": product_url, "ceiling": ceiling_url}, setup,
                                               prepared.received_pool, args))
        finally:
            asyncio.run(cases_bench.admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            log(f"dropped database {name}")

    summary = prepared.summary
    lines = [
        f"{summary['cases']:,} generated cases ({summary['size']}, generated in {generate_seconds:.0f} s); "
        f"{args.rounds} interleaved rounds, {args.requests} requests per path per server per round "
        f"({args.stats_requests} for /stats) at concurrency "
        f"{args.concurrency}; medians over rounds; ratio = median over rounds of product req/s / ceiling req/s "
        f"(min-max); CPU = the server process's user+system time per request",
        "same JSON checked first: " + "; ".join(result["compared"]),
        f"audit chain verifies at the end: {result['verified']['entries']:,} entries",
        "",
        *table(result["runs"]),
        "",
        f"whole run {time.perf_counter() - started:.0f} s",
    ]
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps({
            "date": today.isoformat(),
            "cases": summary["cases"],
            "generate_seconds": generate_seconds,
            "args": {key: value for key, value in vars(args).items() if key != "json"},
            "runs": {path: {name: [vars(run) for run in runs] for name, runs in by.items()}
                     for path, by in result["runs"].items()},
            "compared": result["compared"],
            "verified": result["verified"],
        }, indent=2, default=str))


if __name__ == "__main__":
    main()
