"""HTTP benchmark of a running Clean Window, loopback only, bounded, stops by itself.

    .venv/bin/python bench/http_bench.py                 # starts its own server (embedded PostgreSQL)
    .venv/bin/python bench/http_bench.py --repeats 7 --concurrency 16
    .venv/bin/python bench/http_bench.py --scenarios submit   # healthz (the baseline) always runs

Each scenario runs `--repeats` times, interleaved round-robin with the others so that the
noise of a shared machine falls on all of them alike; the table quotes the median over
the runs of each run's throughput and latency percentiles. `healthz` (no database) is the
baseline measured in the same run: compare the others against it, not against numbers
from another day. The load generator shares the machine with the server, so absolute
figures are a floor, not a capacity plan.

`submit` posts anonymous reports (`POST /api/v1/reports`): one Argon2id evaluation each
inside the receipt-hashing budget, plus HPKE sealing. Its proof of work is client work,
so before each run (untimed) the bench asks for one challenge per submission and solves
it; only the posts are timed. The bench's own server runs with POW_DIFFICULTY=8
(`--pow-difficulty`); the difficulty the challenges carried is printed with the table.
With `--url`, `submit` runs only when named in `--scenarios`, since it files real
(if obviously fake) reports in that server's database, at whatever difficulty it asks.

`submit-identified` is `submit` with a contact: the contact is sealed apart under an
identity key, sealed in turn to the reporter, the recovery key and each identity custodian.
The bench makes two custodians (auditor accounts with registered keys) before it runs, so
the comparison with `submit` is the cost of that sealing.
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
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from app.domain import pow

PASSWORD = "benchmark passphrase " + secrets.token_hex(4)
USERNAME = "bench-" + secrets.token_hex(3)


Send = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]

BASELINE = "healthz"
SCENARIO_KEYS = ("healthz", "readyz", "users-me", "login", "submit", "submit-identified")
IDENTITY_CUSTODIANS = 2
# Solving takes ~0.1 s at 16 bits and doubles with each bit (pure-Python reference
# solver); past this the bench would not finish in reasonable time, so it refuses.
MAX_SOLVED_BITS = 20


@dataclass
class RunResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int
    # What the errors were: unexpected status codes, or the transport error's class name.
    error_kinds: dict[str, int] = field(default_factory=dict)
    # submit only: the proof-of-work difficulties (bits) of the challenges this run solved.
    pow_difficulties: list[int] | None = None


@dataclass
class Prepared:
    send: Send
    pow_difficulties: list[int] | None = None


@dataclass
class Scenario:
    label: str
    total: int
    expected_status: int
    # Called with the run's request count before each run, outside the timed region.
    prepare: Callable[[int], Awaitable[Prepared]]
    # Clients at once for this scenario; None: the run's --concurrency.
    concurrency: int | None = None


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
def own_server(
    python: str, pow_difficulty: int, *, extra_env: dict[str, str] | None = None, create_admin: bool = True
):
    """A `cleanwindow serve` on a throwaway embedded PostgreSQL (or DATABASE_URL if set,
    in the environment or in `extra_env`). With `create_admin`, the admin account
    USERNAME/PASSWORD is created through the CLI once the server is ready."""
    with tempfile.TemporaryDirectory(prefix="cw-bench-") as data_dir:
        env = {
            **os.environ,
            "CLEANWINDOW_DATA_DIR": data_dir,
            "CLEANWINDOW_LOG_LEVEL": "WARNING",
            # Development mode, whatever the caller's environment says: it accepts any
            # POW_DIFFICULTY >= 0 and, when RECOVERY_PUBLIC_KEY is unset, seals reports to
            # a recovery key it generates in the throwaway data folder.
            "CLEANWINDOW_ENV": "development",
            "POW_DIFFICULTY": str(pow_difficulty),
            # The submission budget is shared through PostgreSQL: past this many
            # submissions in a window, every new challenge asks for more bits. Far above
            # what a bench run submits, so the difficulty stays at POW_DIFFICULTY
            # throughout and runs measure the server, not a rising client-side cost.
            "CLEANWINDOW_INTAKE__SUBMISSIONS_PER_WINDOW": str(10**9),
            # Development runs the background jobs inside serve; a bench measures requests.
            "CLEANWINDOW_JOBS__IN_SERVE": "false",
            **(extra_env or {}),
        }
        env.pop("CLEANWINDOW_ENVIRONMENT", None)  # the other name for CLEANWINDOW_ENV
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
            if create_admin:
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
    client: httpx.AsyncClient, send: Send, total: int, concurrency: int, expected_status: int,
) -> RunResult:
    latencies: list[float] = []
    error_kinds: Counter[str] = Counter()
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            try:
                response = await send(client)
                if response.status_code != expected_status:
                    error_kinds[str(response.status_code)] += 1
            except httpx.HTTPError as error:
                error_kinds[type(error).__name__] += 1
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return RunResult(
        requests_per_second=len(latencies) / elapsed,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        errors=sum(error_kinds.values()),
        error_kinds=dict(error_kinds),
    )


def fixed(send: Send) -> Callable[[int], Awaitable[Prepared]]:
    async def prepare(count: int) -> Prepared:
        return Prepared(send)

    return prepare


async def report_template(client: httpx.AsyncClient) -> dict[str, object]:
    """A plausible report built from the server's own form, so that `--url` works with
    any configured catalogue; marked as a benchmark in case anyone ever reads it."""
    form = await client.get("/api/v1/intake/form")
    form.raise_for_status()
    options = form.json()
    body: dict[str, object] = {
        "channel": options["channels"][0]["code"],
        "category": options["categories"][0]["code"],
        "language": "ko",
        "content": {
            "summary": "벤치마크 제보 (실제 제보 아님) / benchmark report, not a real report",
            "details": "The permit officer asked for an envelope before signing. "
                       "Written by bench/http_bench.py to measure intake.",
            "where": "Building permits desk, 3rd floor",
        },
    }
    if options["org_units"]:
        body["org_unit"] = options["org_units"][0]["code"]
    return body


async def benchmark(base_url: str, args: argparse.Namespace) -> dict[str, tuple[str, list[RunResult]]]:
    """Runs the selected scenarios; returns scenario key -> (label, runs)."""
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:
        scenarios: dict[str, Scenario] = {
            "healthz": Scenario("healthz (baseline, no database)", args.requests, 200,
                                fixed(lambda c: c.get("/healthz"))),
            "readyz": Scenario("readyz (one query)", args.requests, 200, fixed(lambda c: c.get("/readyz"))),
        }
        if {"users-me", "login"} & set(args.scenarios):
            login = await client.post(
                "/api/v1/auth/token", data={"username": args.username, "password": args.password}
            )
            login.raise_for_status()
            auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
            scenarios["users-me"] = Scenario(
                "users/me (token lookup)", args.requests, 200,
                fixed(lambda c: c.get("/api/v1/users/me", headers=auth)),
            )
        if "login" in args.scenarios:
            # One account per worker: attempts on one account in flight at once count as
            # failures until they succeed (so parallel guesses all count), and more than the
            # free attempts at once would lock it by design.
            accounts = [f"bench-login-{secrets.token_hex(3)}-{n}" for n in range(args.concurrency)]
            for account in accounts:
                created = await client.post(
                    "/api/v1/users", headers=auth,
                    json={"username": account, "role": "triage", "password": args.password},
                )
                created.raise_for_status()
            rotation = iter(range(10**9))

            def login_many(c: httpx.AsyncClient) -> Awaitable[httpx.Response]:
                account = accounts[next(rotation) % len(accounts)]
                return c.post("/api/v1/auth/token", data={"username": account, "password": args.password})

            scenarios["login"] = Scenario(
                "auth/token, many accounts (Argon2id)", args.login_requests, 200, fixed(login_many)
            )
        if {"submit", "submit-identified"} & set(args.scenarios):
            anonymous = await report_template(client)
            if "submit-identified" in args.scenarios:
                await make_custodians(client, args)

            def prepare_submissions_of(template: dict[str, object]) -> Callable[[int], Awaitable[Prepared]]:
                return lambda count: prepare_submissions(template, count)

            async def prepare_submissions(template: dict[str, object], count: int) -> Prepared:
                # Client work, outside the timed region: one fresh challenge per submission
                # (each is single-use), solved here. Challenges live 600 s by default; a
                # run posts them within seconds of asking.
                bodies = []
                difficulties = set()
                for _ in range(count):
                    issued = await client.post("/api/v1/intake/challenges")
                    issued.raise_for_status()
                    challenge = issued.json()
                    if challenge["difficulty"] > MAX_SOLVED_BITS:
                        raise SystemExit(
                            f"the server asks for {challenge['difficulty']} bits of proof of work; the bench "
                            f"solves at most {MAX_SOLVED_BITS} (run that server with a lower POW_DIFFICULTY)"
                        )
                    difficulties.add(challenge["difficulty"])
                    nonce = pow.solve(challenge["challenge"], challenge["difficulty"])
                    body = {**template, "pow": {"challenge": challenge["challenge"], "nonce": nonce}}
                    bodies.append(json.dumps(body, ensure_ascii=False).encode())
                queue = iter(bodies)

                def submit(c: httpx.AsyncClient) -> Awaitable[httpx.Response]:
                    return c.post("/api/v1/reports", content=next(queue),
                                  headers={"Content-Type": "application/json"})

                return Prepared(submit, sorted(difficulties))

            scenarios["submit"] = Scenario(
                "submit: POST /reports (Argon2id + HPKE)", args.submit_requests, 201, prepare_submissions_of(anonymous)
            )
            identified = {**anonymous, "contact": {"name": "벤치마크 / benchmark", "phone": "010-0000-0000"}}
            scenarios["submit-identified"] = Scenario(
                f"submit with a contact ({IDENTITY_CUSTODIANS} custodians)", args.submit_requests, 201,
                prepare_submissions_of(identified),
            )
        scenarios = {key: scenarios[key] for key in SCENARIO_KEYS if key in args.scenarios}
        return await run_interleaved(client, scenarios, args.repeats, args.concurrency)


async def make_custodians(client: httpx.AsyncClient, args: argparse.Namespace) -> None:
    """Auditor accounts flagged as identity custodians, each with a registered key."""
    from app.domain.crypto import PrivateKey

    login = await client.post("/api/v1/auth/token", data={"username": args.username, "password": args.password})
    login.raise_for_status()
    admin = {"Authorization": f"Bearer {login.json()['access_token']}"}
    for number in range(IDENTITY_CUSTODIANS):
        username = f"bench-custodian-{secrets.token_hex(3)}-{number}"
        created = await client.post(
            "/api/v1/users", headers=admin, json={"username": username, "role": "auditor", "password": args.password}
        )
        created.raise_for_status()
        token = await client.post("/api/v1/auth/token", data={"username": username, "password": args.password})
        token.raise_for_status()
        own = {"Authorization": f"Bearer {token.json()['access_token']}"}
        key = PrivateKey.generate()
        registered = await client.put("/api/v1/users/me/public-key", headers=own, json={"public_key": key.public_key.to_text()})
        registered.raise_for_status()
        flagged = await client.put(
            f"/api/v1/users/{created.json()['id']}/identity-custodian", headers=admin, json={"custodian": True}
        )
        flagged.raise_for_status()


WARM_UP_REQUESTS = 20


async def run_interleaved(
    client: httpx.AsyncClient,
    scenarios: dict[str, Scenario],
    repeats: int,
    concurrency: int,
    on_round: Callable[[int], None] | None = None,
) -> dict[str, tuple[str, list[RunResult]]]:
    """A warm-up of each scenario (not recorded), then `repeats` rounds, each running every
    scenario once in order, so that a noisy moment falls on all of them alike. `on_round`
    hears 0 before the warm-up and n before round n."""
    results: dict[str, tuple[str, list[RunResult]]] = {
        key: (scenario.label, []) for key, scenario in scenarios.items()
    }
    if on_round:
        on_round(0)
    for scenario in scenarios.values():  # warm-up, not recorded
        warm_up = min(scenario.total, WARM_UP_REQUESTS)
        prepared = await scenario.prepare(warm_up)
        await run_once(client, prepared.send, warm_up, scenario.concurrency or concurrency, scenario.expected_status)
    for round_number in range(1, repeats + 1):
        if on_round:
            on_round(round_number)
        for key, scenario in scenarios.items():
            prepared = await scenario.prepare(scenario.total)  # untimed
            result = await run_once(
                client, prepared.send, scenario.total, scenario.concurrency or concurrency, scenario.expected_status
            )
            result.pow_difficulties = prepared.pow_difficulties
            results[key][1].append(result)
    return results


def report(results: dict[str, tuple[str, list[RunResult]]], args: argparse.Namespace) -> str:
    sizes = {"healthz": args.requests, "readyz": args.requests, "users-me": args.requests,
             "login": args.login_requests, "submit": args.submit_requests,
             "submit-identified": args.submit_requests}
    per_run = ", ".join(f"{key} {sizes[key]}" for key in results)
    lines = [
        f"concurrency {args.concurrency}, {args.repeats} interleaved runs per scenario; medians over runs",
        f"requests per run: {per_run}; vs. baseline = median over runs of requests/s divided by "
        f"{BASELINE}'s in the same round; errors = all answers other than the expected status, summed over runs",
    ]
    if "submit" in results:
        difficulties = sorted({bits for run in results["submit"][1] for bits in run.pow_difficulties or []})
        server = (
            "the server's own POW_DIFFICULTY and submission budget" if args.url
            else f"server POW_DIFFICULTY={args.pow_difficulty}, submission budget raised so it cannot add bits"
        )
        shown = (
            f"{difficulties[0]} bits in every run" if len(difficulties) == 1
            else f"VARIED between runs: {', '.join(map(str, difficulties))} bits"
        )
        lines.append(
            f"submit: proof-of-work difficulty {shown} ({server}); challenges fetched and solved "
            f"before each run, outside the timed region"
        )
    lines += ["", *results_table(results, BASELINE)]
    return "\n".join(lines)


def results_table(results: dict[str, tuple[str, list[RunResult]]], baseline: str) -> list[str]:
    """The markdown table of medians over runs (and a line per scenario that had errors)."""
    lines = [
        "| scenario | requests/s | p50 ms | p99 ms | vs. baseline | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    baseline_runs = results[baseline][1]
    details = []
    for key, (label, runs) in results.items():
        ratio = statistics.median(
            run.requests_per_second / base.requests_per_second for run, base in zip(runs, baseline_runs)
        )
        rate = statistics.median(r.requests_per_second for r in runs)
        lines.append(
            f"| {label} | {rate:.{0 if rate >= 100 else 1}f} "
            f"| {statistics.median(r.p50_ms for r in runs):.1f} "
            f"| {statistics.median(r.p99_ms for r in runs):.1f} "
            f"| {ratio:.{2 if ratio >= 0.1 else 3}f} "
            f"| {sum(r.errors for r in runs)} |"
        )
        kinds: Counter[str] = Counter()
        for run in runs:
            kinds.update(run.error_kinds)
        if kinds:
            details.append(f"errors in {key}: " + ", ".join(f"{kind} x{n}" for kind, n in sorted(kinds.items())))
    if details:
        lines += [""] + details
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="benchmark this running server instead of starting one (loopback only)")
    parser.add_argument("--username", help="with --url: an existing admin account")
    parser.add_argument("--password", help="with --url: its password")
    parser.add_argument("--requests", type=int, default=400, help="requests per run (default 400)")
    parser.add_argument("--login-requests", type=int, default=40, help="logins per run (default 40)")
    parser.add_argument("--submit-requests", type=int, default=40, help="report submissions per run (default 40)")
    parser.add_argument("--pow-difficulty", type=int,
                        help="POW_DIFFICULTY of the bench's own server (default 8; not with --url)")
    parser.add_argument(
        "--scenarios", type=lambda text: [part.strip() for part in text.split(",") if part.strip()],
        help=f"comma-separated subset of {','.join(SCENARIO_KEYS)} (default: all; with --url, all but "
             f"the submit ones); {BASELINE}, the baseline, always runs",
    )
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write raw per-run results here")
    args = parser.parse_args()
    if not 1 <= args.requests <= 100_000 or not 1 <= args.repeats <= 50:
        raise SystemExit("keep --requests within 1..100000 and --repeats within 1..50")
    if not 1 <= args.login_requests <= 10_000 or not 1 <= args.submit_requests <= 10_000:
        raise SystemExit("keep --login-requests and --submit-requests within 1..10000")
    if not 1 <= args.concurrency <= 256:
        raise SystemExit("keep --concurrency within 1..256")
    if args.url and args.pow_difficulty is not None:
        raise SystemExit("--pow-difficulty sets the bench's own server; with --url the server's own applies")
    if args.pow_difficulty is None:
        args.pow_difficulty = 8
    if not 0 <= args.pow_difficulty <= MAX_SOLVED_BITS:
        raise SystemExit(f"keep --pow-difficulty within 0..{MAX_SOLVED_BITS}: solving is client work, not measured")
    if args.scenarios is None:
        args.scenarios = [key for key in SCENARIO_KEYS if not (args.url and key.startswith("submit"))]
    unknown = sorted(set(args.scenarios) - set(SCENARIO_KEYS))
    if unknown:
        raise SystemExit(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIO_KEYS)}")
    args.scenarios = [BASELINE, *(key for key in args.scenarios if key != BASELINE)]

    if args.url:
        refuse_non_loopback(args.url)
        if {"users-me", "login", "submit-identified"} & set(args.scenarios) and not (args.username and args.password):
            raise SystemExit(
                "--url needs --username and --password of an admin account for users-me, login and submit-identified"
            )
        results = asyncio.run(benchmark(args.url.rstrip("/"), args))
    else:
        args.username, args.password = USERNAME, PASSWORD
        with own_server(sys.executable, args.pow_difficulty) as base_url:
            results = asyncio.run(benchmark(base_url, args))

    print(report(results, args))
    if args.json:
        raw = {label: [vars(r) for r in runs] for label, runs in results.values()}
        args.json.write_text(json.dumps(raw, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
