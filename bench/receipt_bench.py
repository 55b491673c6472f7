"""Intake against the bare receipt KDF, interleaved in the same run, to size the
receipt-hashing budget (`CLEANWINDOW_INTAKE__MAX_CONCURRENT_RECEIPT_HASHES`).

    .venv/bin/python bench/receipt_bench.py                       # budgets 2 and 4, 5 rounds
    .venv/bin/python bench/receipt_bench.py --slots 1 2 3 4 --rounds 7

For each budget N it starts a `cleanwindow serve` (http_bench's own server: development
mode, a throwaway embedded PostgreSQL, proof of work at 8 bits) with the budget set to N.
Each round then measures, for every N in a rotating order:

- **bare**: production's receipt KDF alone, N at once in threads of this process
  (kdf_bench.py's measurement), for `--seconds`;
- **intake**: `POST /api/v1/reports` on the server with budget N, at 2 x N requests in
  flight (so the budget is always full and the queue in front of it never empty), for
  `--submissions` reports whose proofs of work were solved beforehand (client work, not
  timed).

The table quotes medians over rounds (min-max), intake's rate against the best bare rate
of the run, and the server's peak resident memory (VmHWM), which the budget bounds: each
hash in flight holds a 64 MiB Argon2 buffer. Loopback only; the servers and their
databases are gone at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import http_bench  # noqa: E402  (sibling scripts, not a package)
import kdf_bench  # noqa: E402

from app.domain import pow  # noqa: E402

POW_BITS = 8


async def solved_submissions(client: httpx.AsyncClient, template: dict[str, object], count: int) -> list[bytes]:
    bodies = []
    for _ in range(count):
        issued = await client.post("/api/v1/intake/challenges")
        issued.raise_for_status()
        challenge = issued.json()
        nonce = pow.solve(challenge["challenge"], challenge["difficulty"])
        body = {**template, "pow": {"challenge": challenge["challenge"], "nonce": nonce}}
        bodies.append(json.dumps(body, ensure_ascii=False).encode())
    return bodies


async def intake_rate(base_url: str, slots: int, submissions: int) -> tuple[float, int]:
    """Reports per second at 2 x slots in flight, and how many were not 201."""
    in_flight = 2 * slots
    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=120) as client:
        template = await http_bench.report_template(client)
        bodies = iter(await solved_submissions(client, template, submissions))
        refused = 0

        async def worker() -> None:
            nonlocal refused
            for body in bodies:
                response = await client.post("/api/v1/reports", content=body, headers={"Content-Type": "application/json"})
                refused += response.status_code != 201

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        return submissions / (time.perf_counter() - started), refused


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def serve_pid(port: int) -> int:
    """The pid of the `cleanwindow serve` listening on this loopback port."""
    for status in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            command = status.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve" in command and str(port).encode() in command:
            return int(status.parent.name)
    raise SystemExit(f"no serve process found on port {port}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slots", type=int, nargs="+", default=[2, 4], help="budgets to compare")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4.0, help="bare KDF: wall time per budget per round")
    parser.add_argument("--submissions", type=int, default=40, help="intake: reports per budget per round")
    args = parser.parse_args()
    if not args.slots or min(args.slots) < 1 or len(set(args.slots)) != len(args.slots):
        parser.error("--slots takes distinct budgets of at least 1")
    if args.rounds < 1 or args.submissions < 1 or args.seconds <= 0:
        parser.error("--rounds and --submissions must be at least 1, --seconds positive")

    bare: dict[int, list[float]] = {n: [] for n in args.slots}
    intake: dict[int, list[float]] = {n: [] for n in args.slots}
    refused: dict[int, int] = dict.fromkeys(args.slots, 0)
    with ExitStack() as servers:
        urls = {
            n: servers.enter_context(http_bench.own_server(
                sys.executable, POW_BITS, create_admin=False,
                extra_env={"CLEANWINDOW_INTAKE__MAX_CONCURRENT_RECEIPT_HASHES": str(n)},
            ))
            for n in args.slots
        }
        pids = {n: serve_pid(int(url.rsplit(":", 1)[1])) for n, url in urls.items()}
        for n, url in urls.items():  # warm-up: imports, pools, the first hashes
            asyncio.run(intake_rate(url, n, 2 * n))
        for round_number in range(args.rounds):
            shift = round_number % len(args.slots)
            for n in args.slots[shift:] + args.slots[:shift]:
                bare[n].append(kdf_bench.rate(n, args.seconds))
                rate, not_created = asyncio.run(intake_rate(urls[n], n, args.submissions))
                intake[n].append(rate)
                refused[n] += not_created
            print(f"round {round_number + 1}/{args.rounds} done", file=sys.stderr)
        peaks = {n: peak_rss_mib(pid) for n, pid in pids.items()}

    bare_medians = {n: statistics.median(values) for n, values in bare.items()}
    best_bare = max(bare_medians.values())
    print(f"{args.rounds} interleaved rounds; bare: {args.seconds:g} s per budget per round; intake: "
          f"{args.submissions} reports per budget per round at 2 x budget in flight, proof of work "
          f"({POW_BITS} bits) solved beforehand\n")
    print("| budget | bare KDF hashes/s (min-max) | intake reports/s (min-max) | intake / best bare | "
          "intake / bare at this budget | server peak RSS MiB | not 201 |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n in args.slots:
        ratios = [i / b for i, b in zip(intake[n], bare[n], strict=True)]
        print(
            f"| {n} | {bare_medians[n]:.2f} ({min(bare[n]):.2f}-{max(bare[n]):.2f}) "
            f"| {statistics.median(intake[n]):.2f} ({min(intake[n]):.2f}-{max(intake[n]):.2f}) "
            f"| {statistics.median(intake[n]) / best_bare:.2f} | {statistics.median(ratios):.2f} "
            f"| {peaks[n]:.0f} | {refused[n]} |"
        )


if __name__ == "__main__":
    main()
