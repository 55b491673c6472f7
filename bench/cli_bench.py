"""How long the `cleanwindow` command takes to start, against a bare Python start.

    .venv/bin/python bench/cli_bench.py                 # 15 interleaved rounds
    .venv/bin/python bench/cli_bench.py --repeats 31 --json cli.json

Each round runs every scenario once as a process of its own, in the same order, so the
noise of a shared machine falls on all of them alike; the table quotes medians over the
rounds. `python -c pass` (the same interpreter, nothing imported) is the baseline, and
"own" is the median over rounds of a command's figure minus the baseline's in the same
round: what the command itself costs, nearly all of it imports. Wall time is what a person
waits; CPU time (user + system) is what the command costs even when the machine is busy
and the wall time mostly measures the wait for a core. Every scenario runs once untimed
first, so the first round does not pay for cold caches or writing bytecode.

Nothing here talks to a real server or a database: the client commands are pointed at a
loopback port nothing listens on (they fail at once, after all their imports), and the
keys are written to a temporary folder that is removed at the end.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

BASELINE = "baseline"
KEY_FILE = "{key_file}"  # replaced by a fresh path in the temporary folder on every run


@dataclass
class Scenario:
    label: str
    arguments: list[str]
    expected_exit: int
    # Whether the output shows the command really did its work (and not, say, a usage error).
    looks_right: Callable[[subprocess.CompletedProcess[str]], bool]
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Timings:
    label: str
    seconds: list[float] = field(default_factory=list)
    # User and system CPU time of the process: on a loaded machine the wall time mostly
    # measures the wait for a core, the CPU time what the command itself costs.
    cpu_seconds: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def free_port() -> int:
    """A loopback port nothing listens on (bound, read, released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def default_command() -> Path:
    return Path(sys.executable).with_name("cleanwindow")


def scenarios(command: Path) -> dict[str, Scenario]:
    cli = str(command)
    no_server = {
        "CLEANWINDOW_URL": f"http://127.0.0.1:{free_port()}",
        "CLEANWINDOW_TOKEN": "bench-token",
        "CLEANWINDOW_TIMEOUT": "10",
    }
    return {
        BASELINE: Scenario(
            "`python -c pass` (baseline)", [sys.executable, "-c", "pass"], 0, lambda run: True
        ),
        "help": Scenario(
            "`cleanwindow --help`", [cli, "--help"], 0, lambda run: "Usage" in run.stdout
        ),
        "cases-help": Scenario(
            "`cleanwindow cases --help`",
            [cli, "cases", "--help"],
            0,
            lambda run: "list" in run.stdout and "download" in run.stdout,
        ),
        "cases-list": Scenario(
            "`cleanwindow cases list`, server down",
            [cli, "cases", "list"],
            1,
            lambda run: "cannot reach the server" in run.stderr and "Traceback" not in run.stderr,
            env=no_server,
        ),
        "users-list": Scenario(
            "`cleanwindow users list`, server down",
            [cli, "users", "list"],
            1,
            lambda run: "cannot reach the server" in run.stderr and "Traceback" not in run.stderr,
            env=no_server,
        ),
        "keys-generate": Scenario(
            "`cleanwindow keys generate --out FILE`",
            [cli, "keys", "generate", "--out", KEY_FILE],  # a new file each run
            0,
            lambda run: run.stdout.startswith("cwpk1_"),
        ),
    }


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(
    scenario: Scenario, key_folder: Path, serial: Iterator[int]
) -> tuple[float, float, str | None]:
    key_file = key_folder / f"bench-{next(serial)}.key"
    arguments = [
        str(key_file) if part == KEY_FILE else part
        for part in scenario.arguments
    ]
    # Nothing from the developer's shell (a real token, a real server, a database) leaks in.
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("CLEANWINDOW_") and name != "DATABASE_URL"
    } | scenario.env
    cpu_before = children_cpu_seconds()
    started = time.perf_counter()
    run = subprocess.run(
        arguments, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120
    )
    elapsed = time.perf_counter() - started
    cpu = children_cpu_seconds() - cpu_before  # the child is reaped: its usage is counted
    if run.returncode != scenario.expected_exit or not scenario.looks_right(run):
        last = (run.stderr.strip().splitlines() or ["(nothing on standard error)"])[-1]
        return elapsed, cpu, f"exit {run.returncode}: {last}"
    return elapsed, cpu, None


def benchmark(command: Path, repeats: int, chosen: list[str]) -> dict[str, Timings]:
    with tempfile.TemporaryDirectory(prefix="cleanwindow-cli-bench-") as folder:
        key_folder = Path(folder)
        every = scenarios(command)
        selected = {key: every[key] for key in chosen}
        results = {key: Timings(scenario.label) for key, scenario in selected.items()}
        serial = itertools.count()
        for scenario in selected.values():  # untimed: warm caches, write bytecode
            run_once(scenario, key_folder, serial)
        for _ in range(repeats):
            for key, scenario in selected.items():
                elapsed, cpu, error = run_once(scenario, key_folder, serial)
                results[key].seconds.append(elapsed)
                results[key].cpu_seconds.append(cpu)
                if error:
                    results[key].errors.append(error)
    return results


def own(values: list[float], baseline: list[float]) -> float:
    """Median over rounds of a command's figure minus the baseline's in the same round."""
    return statistics.median(value - base for value, base in zip(values, baseline))


def report(results: dict[str, Timings], repeats: int) -> str:
    base = results[BASELINE]
    lines = [
        f"{repeats} interleaved rounds; medians over rounds; own = median over rounds of the "
        "command's figure minus the baseline's in the same round; CPU = user + system time of "
        "the process; errors = runs with an unexpected exit code or output",
        "",
        "| command | wall ms | own wall ms | CPU ms | own CPU ms | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    details = []
    for key, timings in results.items():
        is_baseline = key == BASELINE
        lines.append(
            f"| {timings.label} "
            f"| {1000 * statistics.median(timings.seconds):.0f} "
            f"| {'-' if is_baseline else f'{1000 * own(timings.seconds, base.seconds):.0f}'} "
            f"| {1000 * statistics.median(timings.cpu_seconds):.0f} "
            f"| {'-' if is_baseline else f'{1000 * own(timings.cpu_seconds, base.cpu_seconds):.0f}'} "
            f"| {len(timings.errors)} |"
        )
        if timings.errors:
            details.append(f"errors in {key}: {timings.errors[0]} (x{len(timings.errors)})")
    if details:
        lines += ["", *details]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    keys = list(scenarios(default_command()))
    parser.add_argument("--repeats", type=int, default=15, help="rounds (default 15)")
    parser.add_argument(
        "--command",
        type=Path,
        default=default_command(),
        help="the `cleanwindow` executable (default: the one next to this Python)",
    )
    parser.add_argument(
        "--scenarios",
        type=lambda text: [part.strip() for part in text.split(",") if part.strip()],
        default=keys,
        help=f"comma-separated subset of {','.join(keys)} (default: all); "
        f"{BASELINE} always runs",
    )
    parser.add_argument("--json", type=Path, help="also write every run's seconds here")
    args = parser.parse_args()
    if not 1 <= args.repeats <= 200:
        raise SystemExit("keep --repeats within 1..200")
    unknown = sorted(set(args.scenarios) - set(keys))
    if unknown:
        raise SystemExit(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(keys)}")
    if not os.access(args.command, os.X_OK):
        raise SystemExit(
            f"{args.command} is not an executable `cleanwindow`: install the package "
            "(`pip install -e .`) or pass --command"
        )
    chosen = [BASELINE, *(key for key in args.scenarios if key != BASELINE)]
    results = benchmark(args.command, args.repeats, chosen)
    print(report(results, args.repeats))
    if args.json:
        raw = {
            timings.label: {
                "seconds": timings.seconds,
                "cpu_seconds": timings.cpu_seconds,
                "errors": timings.errors,
            }
            for timings in results.values()
        }
        args.json.write_text(json.dumps(raw, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
