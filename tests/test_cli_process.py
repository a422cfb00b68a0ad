"""The CLI as a person meets it, in a real process: a closed pipe ends quietly, and what each
command imports (start-up time: --help and the read-only commands load no Alembic or watchdog)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cli_world import subprocess_env


def _assetd(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "assetd", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def scanned(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A root of 3,000 files (more output than a pipe holds), scanned into a fresh catalog."""
    lib = tmp_path / "lib"
    for d in range(30):
        (lib / f"directory-with-a-long-name-{d:03}").mkdir(parents=True)
        for f in range(100):
            (lib / f"directory-with-a-long-name-{d:03}" / f"file-{f:04}.bin").write_bytes(b"x")
    env = subprocess_env(tmp_path)
    done = _assetd("scan", "--root", str(lib), env=env)
    assert done.returncode == 0, done.stderr
    return lib, env


def test_ls_into_a_closed_pipe_ends_quietly(scanned: tuple[Path, dict[str, str]]) -> None:
    lib, env = scanned
    proc = subprocess.Popen(
        [sys.executable, "-m", "assetd", "ls", "--root", str(lib)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()  # like `head -1`: read a line, then hang up
    proc.stdout.close()
    err = proc.stderr.read().decode()
    code = proc.wait(timeout=60)
    assert first.startswith(str(lib).encode())
    assert code in (0, 141), err
    assert err == "", "nothing on stderr for a closed pipe (no traceback, no message)"


IMPORT_PROBE = """
import sys
from assetd.cli import main
code = main(sys.argv[1:])
heavy = sorted({m.split('.')[0] for m in sys.modules} & {'alembic', 'watchdog', 'blake3'})
print('HEAVY=' + ','.join(heavy), file=sys.stderr)
"""


@pytest.mark.parametrize("command", [["--version"], ["--help"], ["status"], ["ls"], ["missing"]])
def test_light_commands_import_no_alembic_or_watchdog(
    scanned: tuple[Path, dict[str, str]], command: list[str]
) -> None:
    lib, env = scanned
    args = [*command, "--root", str(lib)] if command[0][0] != "-" else command
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    heavy = [line for line in done.stderr.splitlines() if line.startswith("HEAVY=")]
    assert heavy == ["HEAVY="], done.stderr


MODULES_PROBE = """
import sys
from assetd.cli import main
code = main(sys.argv[1:])
print('CODE=%d' % code, file=sys.stderr)
print('MODULES=' + ','.join(sorted(sys.modules)), file=sys.stderr)
"""

# What no read-only command needs: the web stack, the logging library (nothing is logged), the
# writers' catalog modules, the live pipeline.
NOT_FOR_READERS = {
    "alembic",
    "watchdog",
    "blake3",
    "structlog",
    "fastapi",
    "uvicorn",
    "starlette",
    "pydantic",
    "prometheus_client",
    "assetd.catalog.content",
    "assetd.catalog.metadata",
    "assetd.catalog.cleanup",
    "assetd.catalog.roots",
    "assetd.catalog.seed",
    "assetd.reconcile",
    "assetd.live",
    "assetd.hashing",
    "assetd.service",
}


def _probe(args: list[str], env: dict[str, str]) -> tuple[set[str], str]:
    """The modules ``assetd ARGS`` loaded (it exited 0), and what it printed."""
    done = subprocess.run(
        [sys.executable, "-c", MODULES_PROBE, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = done.stderr.splitlines()
    assert "CODE=0" in lines, done.stderr
    listed = next(line for line in lines if line.startswith("MODULES="))
    return set(listed.removeprefix("MODULES=").split(",")), done.stdout


def _modules(args: list[str], env: dict[str, str]) -> set[str]:
    return _probe(args, env)[0]


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["--version"], ["assetd", "assetd.cli", "assetd.errors"]),
        (["--help"], ["assetd", "assetd.cli", "assetd.cli_parser", "assetd.errors"]),
    ],
)
def test_version_and_help_import_only_the_cli(
    tmp_path: Path, command: list[str], expected: list[str]
) -> None:
    modules = _modules(command, subprocess_env(tmp_path))
    ours = sorted(m for m in modules if m.split(".")[0] == "assetd")
    assert ours == expected
    assert "sqlalchemy" not in modules and "tomllib" not in modules
    assert ("argparse" in modules) == (command == ["--help"])  # --version skips the parser


@pytest.fixture(scope="module")
def small_catalog(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """Three files scanned, one of them then gone and scanned again (a missing row)."""
    base = tmp_path_factory.mktemp("small")
    lib = base / "lib"
    (lib / "d").mkdir(parents=True)
    for name in ("a.bin", "d/b.bin", "d/c.bin"):
        (lib / name).write_bytes(name.encode())
    env = subprocess_env(base)
    for _ in range(2):
        done = _assetd("scan", "--root", str(lib), env=env)
        assert done.returncode == 0, done.stderr
        (lib / "d" / "c.bin").unlink(missing_ok=True)  # missing once the catalog is told
    return lib, env


@pytest.mark.parametrize(
    "command",
    [
        ["status"],
        ["status", "--json"],
        ["ls"],
        ["ls", "--in-root", "lib"],
        ["missing"],
        ["why", "d/c.bin"],
        ["why", "x"],
    ],
    ids=" ".join,
)
def test_read_only_commands_on_a_sqlite_catalog_import_no_sqlalchemy(
    small_catalog: tuple[Path, dict[str, str]], command: list[str]
) -> None:
    """status, ls, missing and why (of a missing row, of a path never catalogued) read a SQLite
    catalog with the standard library's sqlite3 (issue 14: SQLAlchemy's import was most of their
    0.7 s): no ``sqlalchemy`` module at all, nor Alembic, watchdog and the rest of
    NOT_FOR_READERS, and what they print is the catalog's (the small catalog: 2 live files, 1
    missing)."""
    lib, env = small_catalog
    if command[0] == "why":
        command = ["why", str(lib / command[1])]
    modules, stdout = _probe([*command, "--root", str(lib)], env)
    assert {"assetd.catalog.lite", "sqlite3"} <= modules  # (the probe saw the catalog read)
    assert sorted(m for m in modules if m.split(".")[0] == "sqlalchemy") == []
    assert sorted(m for m in modules if {m, m.rpartition(".")[0]} & NOT_FOR_READERS) == []
    out = stdout.splitlines()
    if command == ["status"]:
        [row] = [line for line in out if line.endswith(f"  {lib}")]
        assert row.split()[-4:-2] == ["2", "1"], stdout  # LIVE, MISSING
    elif command == ["status", "--json"]:
        [root] = json.loads(stdout)["roots"]
        assert (root["live"], root["missing"], root["path"]) == (2, 1, str(lib))
    elif command[0] == "ls":
        assert out == [str(lib / "a.bin"), str(lib / "d" / "b.bin")]
    elif command[0] == "why":
        said = "  state:     MISSING since" if command[1].endswith("c.bin") else "  not in"
        assert any(line.startswith(said) for line in out), stdout
    else:
        assert out[-1] == "1 missing path(s) in 1 root(s)" and "c.bin" in stdout
