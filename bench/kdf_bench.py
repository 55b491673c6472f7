"""The receipt KDF alone: Argon2id with production's receipt parameters, N at once in
threads (argon2-cffi releases the GIL), to size the receipt-hashing budget.

    .venv/bin/python bench/kdf_bench.py                     # 1 to 6 at once, 5 interleaved rounds
    .venv/bin/python bench/kdf_bench.py --max 8 --rounds 7

Each round runs every concurrency once, in a rotating order, for `--seconds` of wall time
each; the table quotes the median hashes per second over rounds (min-max) and the ratio to
the best median. `CLEANWINDOW_INTAKE__MAX_CONCURRENT_RECEIPT_HASHES` should be the smallest
concurrency within a few percent of the best: more only holds more 64 MiB buffers.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.domain.kdf import PRODUCTION_RECEIPT_SCHEME  # noqa: E402
from app.domain.receipts import derive_receipt_secrets  # noqa: E402


def rate(concurrency: int, seconds: float) -> float:
    stop = time.monotonic() + seconds
    done = [0] * concurrency
    salt = secrets.token_bytes(16)

    def work(index: int) -> None:
        while time.monotonic() < stop:
            derive_receipt_secrets("".join(secrets.choice("0123456789") for _ in range(20)), salt, PRODUCTION_RECEIPT_SCHEME)
            done[index] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=work, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done) / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max", type=int, default=6, help="largest concurrency tried")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4.0, help="wall time per concurrency per round")
    args = parser.parse_args()
    levels = list(range(1, args.max + 1))
    rates: dict[int, list[float]] = {level: [] for level in levels}
    for round_number in range(args.rounds):
        order = levels[round_number % len(levels):] + levels[: round_number % len(levels)]
        for level in order:
            rates[level].append(rate(level, args.seconds))
        print(f"round {round_number + 1}/{args.rounds} done", file=sys.stderr)
    medians = {level: statistics.median(values) for level, values in rates.items()}
    best = max(medians.values())
    print(f"Argon2id receipt KDF ({PRODUCTION_RECEIPT_SCHEME.argon2}), {os.cpu_count()} cores, "
          f"{args.rounds} interleaved rounds of {args.seconds:g} s per concurrency\n")
    print("| at once | hashes/s (median) | min-max | vs. best |")
    print("|---:|---:|---:|---:|")
    for level in levels:
        values = rates[level]
        print(f"| {level} | {medians[level]:.2f} | {min(values):.2f}-{max(values):.2f} | {medians[level] / best:.2f} |")


if __name__ == "__main__":
    main()
