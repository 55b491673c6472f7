"""HTTP benchmark of a running Clean Window, loopback only, bounded, stops by itself.

    .venv/bin/python bench/http_bench.py                 # starts its own server (embedded PostgreSQL)
    .venv/bin/python bench/http_bench.py --repeats 7 --concurrency 16

Each scenario runs `--repeats` times, interleaved round-robin with the others so that the
noise of a shared machine falls on all of them alike; the table quotes the median over
the runs of each run's throughput and latency percentiles. `healthz` (no database) is the
baseline measured in the same run: compare the others against it, not against numbers
from another day. The load generator shares the machine with the server, so absolute
figures are a floor, not a capacity plan.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

PASSWORD = "benchmark passphrase " + secrets.token_hex(4)
USERNAME = "bench-" + secrets.token_hex(3)


@dataclass
class RunResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int


def percentile(sorted_values: list[float], fraction: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def refuse_non_loopback(url: str) -> None:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise SystemExit(f"refusing to load {host!r}: benchmarks target loopback addresses only")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def own_server(python: str):
    """A `cleanwindow serve` on a throwaway embedded PostgreSQL (or DATABASE_URL if set)."""
    with tempfile.TemporaryDirectory(prefix="cw-bench-") as data_dir:
        env = {**os.environ, "CLEANWINDOW_DATA_DIR": data_dir, "CLEANWINDOW_LOG_LEVEL": "WARNING"}
        port = free_port()
        log = open(Path(data_dir) / "serve.log", "w")
        process = subprocess.Popen(
            [python, "-m", "app.cli", "serve", "--port", str(port)],
            env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        base_url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    raise SystemExit(f"server exited with {process.returncode}; see {log.name}")
                try:
                    if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.3)
            else:
                raise SystemExit("server did not become ready within 120 s")
            created = subprocess.run(
                [python, "-m", "app.cli", "users", "create", USERNAME, "--role", "admin"],
                env=env, input=PASSWORD + "\n", capture_output=True, text=True, timeout=120,
            )
            if created.returncode != 0:
                raise SystemExit(f"could not create the benchmark account: {created.stderr}")
            yield base_url
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
            log.close()


async def run_once(
    client: httpx.AsyncClient, send: Callable[[httpx.AsyncClient], Awaitable[httpx.Response]],
    total: int, concurrency: int, expected_status: int,
) -> RunResult:
    latencies: list[float] = []
    errors = 0
    remaining = total

    async def worker() -> None:
        nonlocal remaining, errors
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            try:
                response = await send(client)
                if response.status_code != expected_status:
                    errors += 1
            except httpx.HTTPError:
                errors += 1
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return RunResult(
        requests_per_second=len(latencies) / elapsed,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        errors=errors,
    )


async def benchmark(base_url: str, args: argparse.Namespace) -> dict[str, list[RunResult]]:
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:
        login = await client.post("/api/v1/auth/token", data={"username": args.username, "password": args.password})
        login.raise_for_status()
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}

        # One account per worker: attempts on one account in flight at once count as
        # failures until they succeed (so parallel guesses all count), and more than the
        # free attempts at once would lock it by design.
        accounts = [f"bench-login-{secrets.token_hex(3)}-{n}" for n in range(args.concurrency)]
        for account in accounts:
            created = await client.post(
                "/api/v1/users", headers=auth, json={"username": account, "role": "triage", "password": args.password}
            )
            created.raise_for_status()
        rotation = iter(range(10**9))

        def login_many(c: httpx.AsyncClient) -> Awaitable[httpx.Response]:
            account = accounts[next(rotation) % len(accounts)]
            return c.post("/api/v1/auth/token", data={"username": account, "password": args.password})

        scenarios = {
            "healthz (baseline, no database)": (lambda c: c.get("/healthz"), args.requests, 200),
            "readyz (one query)": (lambda c: c.get("/readyz"), args.requests, 200),
            "users/me (token lookup)": (lambda c: c.get("/api/v1/users/me", headers=auth), args.requests, 200),
            "auth/token, many accounts (Argon2id)": (login_many, args.login_requests, 200),
        }
        results: dict[str, list[RunResult]] = {name: [] for name in scenarios}
        for send, total, expected in scenarios.values():  # warm-up, not recorded
            await run_once(client, send, min(total, 20), args.concurrency, expected)
        for _ in range(args.repeats):
            for name, (send, total, expected) in scenarios.items():
                results[name].append(await run_once(client, send, total, args.concurrency, expected))
        return results


def report(results: dict[str, list[RunResult]], args: argparse.Namespace) -> str:
    lines = [
        f"concurrency {args.concurrency}, {args.repeats} interleaved runs per scenario; medians over runs",
        "",
        "| scenario | requests/s | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, runs in results.items():
        lines.append(
            f"| {name} | {statistics.median(r.requests_per_second for r in runs):.0f} "
            f"| {statistics.median(r.p50_ms for r in runs):.1f} "
            f"| {statistics.median(r.p99_ms for r in runs):.1f} "
            f"| {sum(r.errors for r in runs)} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="benchmark this running server instead of starting one (loopback only)")
    parser.add_argument("--username", help="with --url: an existing admin account")
    parser.add_argument("--password", help="with --url: its password")
    parser.add_argument("--requests", type=int, default=400, help="requests per run (default 400)")
    parser.add_argument("--login-requests", type=int, default=40, help="logins per run (default 40)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write raw per-run results here")
    args = parser.parse_args()
    if not 1 <= args.requests <= 100_000 or not 1 <= args.repeats <= 50:
        raise SystemExit("keep --requests within 1..100000 and --repeats within 1..50")

    if args.url:
        refuse_non_loopback(args.url)
        if not (args.username and args.password):
            raise SystemExit("--url needs --username and --password of an admin account")
        results = asyncio.run(benchmark(args.url.rstrip("/"), args))
    else:
        args.username, args.password = USERNAME, PASSWORD
        with own_server(sys.executable) as base_url:
            results = asyncio.run(benchmark(base_url, args))

    print(report(results, args))
    if args.json:
        args.json.write_text(json.dumps({k: [vars(r) for r in v] for k, v in results.items()}, indent=2))


if __name__ == "__main__":
    main()
