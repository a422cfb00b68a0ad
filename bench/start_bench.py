"""How long a command takes to start: `assetd --version`, `--help`, `status`, `ls` on a small
scanned catalog, each as a fresh process, against `python -c pass` (the interpreter's own
start-up) measured in the same run, and the interpreter's floor without its site packages'
`.pth` files (`python -S -c pass`: no site at all; `python -I -c pass`: isolated mode, which
still runs them), and SQLAlchemy's imports (Core, ORM). Prints a Markdown table (median and max
of --runs, CPU), the in-process time of `cli_parser.parse_args` and, with --importtime, the
slowest imports of `assetd status`, `--help` and `--version` (`python -X importtime`).

    python bench/start_bench.py [--runs 15] [--importtime] [--compare OTHER/daemon]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CPU: dict[str, list[float]] = {}  # key -> CPU seconds (user + system) of each timed run


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: list[str], env: dict[str, str], key: str = "") -> float:
    """Wall seconds of one run; its CPU seconds (user + system, which a loaded machine inflates
    far less than the wall time) are kept under ``key``."""
    cpu0 = _children_cpu()
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode()[-500:]}")
    if key:
        CPU.setdefault(key, []).append(_children_cpu() - cpu0)
    return elapsed


def slowest_imports(
    argv: list[str], env: dict[str, str], top: int = 8, *, own: bool = False
) -> list[tuple[int, str]]:
    """The ``top`` imports (any depth) by cumulative time, what each costs with what it imports;
    ``own``: by their own time, without what they import."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *argv], env=env, capture_output=True, check=False
    )
    rows = []
    for line in done.stderr.decode().splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        self_us, cumulative, name = line.removeprefix("import time:").split("|")
        rows.append((int(self_us if own else cumulative), name.strip()))
    return sorted(rows, reverse=True)[:top]


PARSE_PROBE = """
import contextlib, io, sys, time
from assetd.cli_parser import parse_args
for argv in (["--help"], ["status", "--json"]):
    runs = []
    for _ in range(50):
        started = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
            parse_args(argv)
        runs.append(time.perf_counter() - started)
    runs.sort()
    print(" ".join(argv), runs[0] * 1000, runs[25] * 1000)
"""


def parse_times(env: dict[str, str]) -> dict[str, tuple[float, float]]:
    """In-process ``cli_parser.parse_args`` of ``--help`` and ``status --json``: (fastest,
    median) ms of 50 calls, what building the parser costs without the process around it."""
    done = subprocess.run(
        [sys.executable, "-c", PARSE_PROBE], env=env, capture_output=True, text=True, check=True
    )
    out = {}
    for line in done.stdout.splitlines():
        *words, fastest, median = line.split()
        out[" ".join(words)] = (float(fastest), float(median))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--importtime", action="store_true")
    parser.add_argument(
        "--compare",
        metavar="DIR",
        help="also time each assetd command with PYTHONPATH=DIR (another checkout's daemon/), "
        "interleaved run by run with this one, so the machine's load weighs on both alike",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="assetd-start-") as tmp:
        base = Path(tmp)
        lib = base / "lib"
        lib.mkdir()
        for i in range(100):
            (lib / f"f{i:03}.bin").write_bytes(b"x" * i)
        env = {**os.environ, "XDG_STATE_HOME": str(base / "state"), "HOME": str(base)}
        env.pop("ASSETD_CONFIG", None)
        # as on a user's machine: Python caches compiled modules (this sandbox sets
        # PYTHONDONTWRITEBYTECODE=1, which makes every run compile assetd's modules again)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        assetd = [sys.executable, "-m", "assetd"]
        timed([*assetd, "scan", "--root", str(lib)], env)
        cases = {
            "`python -S -c pass` (no site: the floor)": [sys.executable, "-S", "-c", "pass"],
            "`python -I -c pass` (isolated)": [sys.executable, "-I", "-c", "pass"],
            "`python -c pass` (baseline)": [sys.executable, "-c", "pass"],
            "`python -c 'import sqlalchemy'` (Core: what the read-only commands need)": [
                sys.executable,
                "-c",
                "import sqlalchemy",
            ],
            "`python -c 'import sqlalchemy.orm'` (the ORM: what a writer's session needs)": [
                sys.executable,
                "-c",
                "import sqlalchemy.orm",
            ],
            "`assetd --version`": [*assetd, "--version"],
            "`assetd --help`": [*assetd, "--help"],
            "`assetd status`": [*assetd, "status", "--root", str(lib)],
            "`assetd status --json`": [*assetd, "status", "--json", "--root", str(lib)],
            "`assetd ls`": [*assetd, "ls", "--root", str(lib)],
            "`assetd why FILE`": [*assetd, "why", str(lib / "f001.bin"), "--root", str(lib)],
        }
        other = {**env, "PYTHONPATH": args.compare} if args.compare else None
        results: dict[str, list[float]] = {name: [] for name in cases}
        compared: dict[str, list[float]] = {name: [] for name in cases if "assetd" in name}
        for name, argv in cases.items():
            timed(argv, env)  # warm the page cache
            if other is not None and name in compared:
                timed(argv, other)
        for _ in range(args.runs):
            for name, argv in cases.items():
                results[name].append(timed(argv, env, name))
                if other is not None and name in compared:
                    compared[name].append(timed(argv, other, "compare " + name))
        base_median = statistics.median(results["`python -c pass` (baseline)"])
        load = os.getloadavg()
        print("## Command start-up\n")
        flags = " --importtime" if args.importtime else ""
        if args.compare:
            flags += f" --compare {args.compare}"
        print(f"`python bench/start_bench.py --runs {args.runs}{flags}`\n")
        print(
            f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
            f"load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}. Each command a fresh "
            f"process, {args.runs} runs after one warm-up (which writes the bytecode cache, "
            "as a user's first run does).\n"
        )
        head = "| command | median ms | max ms | minus the interpreter's start-up | CPU ms |"
        rule = "| --- | ---: | ---: | ---: | ---: |"
        if other is not None:
            head += " --compare median ms | ratio | --compare CPU ms | CPU ratio |"
            rule += " ---: | ---: | ---: | ---: |"
        print(head)
        print(rule)
        for name, runs in results.items():
            median = statistics.median(runs)
            cpu = statistics.median(CPU[name])
            row = (
                f"| {name} | {median * 1000:.0f} | {max(runs) * 1000:.0f} | "
                f"{(median - base_median) * 1000:.0f} | {cpu * 1000:.0f} |"
            )
            if other is not None:
                before = compared.get(name)
                if before:
                    then = statistics.median(before)
                    cpu_then = statistics.median(CPU["compare " + name])
                    row += (
                        f" {then * 1000:.0f} | {median / then:.2f} | {cpu_then * 1000:.0f} | "
                        f"{cpu / cpu_then:.2f} |"
                    )
                else:
                    row += " | | | |"
            print(row)
        print("\nIn-process `parse_args` (fastest / median of 50 calls, ms):\n")
        mine = parse_times(env)
        theirs = parse_times(other) if other is not None else {}
        for line_args, (fastest, median) in mine.items():
            line = f"- `{line_args}`: {fastest:.1f} / {median:.1f}"
            if line_args in theirs:
                line += f"; --compare {theirs[line_args][0]:.1f} / {theirs[line_args][1]:.1f}"
            print(line)
        if args.importtime:
            print("\nSlowest imports of `assetd status` (cumulative µs):\n")
            for micros, name in slowest_imports(
                ["-m", "assetd", "status", "--root", str(lib)], env
            ):
                print(f"- {name}: {micros / 1000:.0f} ms")
            print("\nLargest own import times of `assetd status` (µs, any depth):\n")
            for micros, name in slowest_imports(
                ["-m", "assetd", "status", "--root", str(lib)], env, 12, own=True
            ):
                print(f"- {name}: {micros / 1000:.0f} ms")
            print("\nSlowest imports of `assetd --help` (cumulative µs):\n")
            for micros, name in slowest_imports(["-m", "assetd", "--help"], env):
                print(f"- {name}: {micros / 1000:.0f} ms")
            print("\nSlowest imports of `assetd --version` (cumulative µs):\n")
            for micros, name in slowest_imports(["-m", "assetd", "--version"], env):
                print(f"- {name}: {micros / 1000:.0f} ms")


if __name__ == "__main__":
    main()
