"""The systemd units: `systemd-analyze verify` says nothing about them, and they carry the contract.

`systemd-analyze verify` exits 0 on an unknown key (it only warns) and fails when ExecStart's
binary is missing (DESIGN §8): each unit is verified as a copy whose ExecStart points at the
installed `assetd`, with a temporary XDG_RUNTIME_DIR for the user unit, and any output fails.
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parent.parent / "systemd"
SYSTEM_UNIT = UNITS / "assetd.service"
USER_UNIT = UNITS / "assetd-user.service"

# (section, key) -> required value (None: present with any value)
COMMON: dict[tuple[str, str], str | None] = {
    ("Service", "Type"): "notify",
    ("Service", "NotifyAccess"): "main",
    ("Service", "ExecReload"): "/bin/kill -HUP $MAINPID",
    ("Service", "WatchdogSec"): None,
    ("Service", "Restart"): "on-failure",
    ("Service", "RestartPreventExitStatus"): "65 78",
    ("Service", "TimeoutStopSec"): None,
    ("Service", "NoNewPrivileges"): "yes",
    ("Service", "UMask"): "0027",
    ("Service", "Environment"): "PYTHONUTF8=1",
}
SYSTEM_ONLY: dict[tuple[str, str], str | None] = {
    ("Service", "ExecStart"): "/usr/local/bin/assetd run",
    ("Service", "ProtectSystem"): "strict",
    ("Service", "ProtectHome"): "read-only",
    ("Service", "PrivateTmp"): "yes",
    ("Service", "StateDirectory"): "assetd",
    ("Service", "StateDirectoryMode"): "0750",
    ("Service", "User"): "assetd",
    ("Service", "Group"): "assetd",
    ("Service", "RestrictAddressFamilies"): "AF_UNIX AF_INET AF_INET6",
    ("Service", "CapabilityBoundingSet"): "CAP_SYS_ADMIN CAP_DAC_READ_SEARCH",
    ("Service", "AmbientCapabilities"): "CAP_SYS_ADMIN CAP_DAC_READ_SEARCH",
    ("Service", "RestrictRealtime"): "yes",
    ("Service", "RestrictSUIDSGID"): "yes",
    ("Service", "ProtectClock"): "yes",
    ("Service", "ProtectHostname"): "yes",
    ("Service", "ProtectKernelLogs"): "yes",
    ("Service", "ProtectProc"): "invisible",
    ("Install", "WantedBy"): "multi-user.target",
}
USER_ONLY: dict[tuple[str, str], str | None] = {
    ("Service", "ExecStart"): "%h/.local/bin/assetd run",
    ("Install", "WantedBy"): "default.target",
}
# What a user manager cannot do, or where it would put the state dir under ~/.config (< v254).
NOT_IN_USER = (
    "User",
    "Group",
    "StateDirectory",
    "ProtectSystem",
    "ProtectHome",
    "PrivateTmp",
    "CapabilityBoundingSet",
    "AmbientCapabilities",  # the user unit stays on inotify
)
MAX_EXPOSURE = 2.5


def read_unit(path: Path) -> configparser.ConfigParser:
    """A unit file as sections of keys (case kept; `$` and `%` left alone; repeats allowed)."""
    parser = configparser.ConfigParser(
        strict=False, interpolation=None, comment_prefixes=("#", ";"), delimiters=("=",)
    )
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(path, encoding="utf-8")
    return parser


def installed_assetd() -> str:
    found = shutil.which("assetd") or str(Path(sys.executable).parent / "assetd")
    assert os.access(found, os.X_OK), f"no executable assetd at {found}: pip install -e ."
    return found


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.skip("systemd-analyze is not installed (CI installs it)")
    return found


def verifiable_copy(unit: Path, directory: Path, *, extra: str = "") -> Path:
    """``unit`` with ExecStart's program replaced by the installed assetd (arguments kept)."""
    program = installed_assetd()
    lines = []
    for line in unit.read_text(encoding="utf-8").splitlines():
        if line.startswith("ExecStart="):
            _, _, arguments = line.partition("=")[2].partition(" ")
            line = f"ExecStart={program} {arguments}".rstrip()
        lines.append(line)
    directory.mkdir(parents=True, exist_ok=True)
    copy = directory / unit.name
    copy.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    return copy


def verify(unit: Path, *, user: bool, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    command = [systemd_analyze()]
    env = dict(os.environ)
    if user:
        runtime = tmp_path / "runtime"
        runtime.mkdir(mode=0o700, exist_ok=True)
        env["XDG_RUNTIME_DIR"] = str(runtime)
        command.append("--user")
    command += ["verify", str(unit)]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60, check=False)


@pytest.mark.parametrize(("unit", "user"), [(SYSTEM_UNIT, False), (USER_UNIT, True)])
def test_systemd_analyze_verify_is_silent(unit: Path, user: bool, tmp_path: Path) -> None:
    copy = verifiable_copy(unit, tmp_path / "units")
    done = verify(copy, user=user, tmp_path=tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_the_check_would_catch_a_warning(tmp_path: Path) -> None:
    """An unknown key exits 0 with a warning: only the 'no output at all' rule catches it."""
    copy = verifiable_copy(SYSTEM_UNIT, tmp_path / "units", extra="[Service]\nWatchdogSecs=1\n")
    done = verify(copy, user=False, tmp_path=tmp_path)
    assert done.returncode == 0
    assert "WatchdogSecs" in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("unit", "required"),
    [(SYSTEM_UNIT, {**COMMON, **SYSTEM_ONLY}), (USER_UNIT, {**COMMON, **USER_ONLY})],
)
def test_units_carry_the_operating_contract(
    unit: Path, required: dict[tuple[str, str], str | None]
) -> None:
    parsed = read_unit(unit)
    for (section, key), value in required.items():
        assert parsed.has_option(section, key), f"{unit.name}: [{section}] {key}= missing"
        if value is not None:
            assert parsed.get(section, key) == value, f"{unit.name}: [{section}] {key}="
    interval = parsed.get("Service", "WatchdogSec")
    assert interval.isdigit() and int(interval) >= 10


def test_the_user_unit_leaves_out_what_a_user_manager_cannot_do() -> None:
    parsed = read_unit(USER_UNIT)
    assert [key for key in NOT_IN_USER if parsed.has_option("Service", key)] == []


def test_the_system_unit_is_hardened(tmp_path: Path) -> None:
    """`systemd-analyze security --offline=true` scores the shipped unit at most 2.5 (OK)."""
    done = subprocess.run(
        [systemd_analyze(), "security", "--offline=true", str(SYSTEM_UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", done.stdout + done.stderr)
    assert found, done.stdout + done.stderr
    assert float(found.group(1)) <= MAX_EXPOSURE, done.stdout


def test_the_system_unit_allows_the_fanotify_calls_and_no_other_privileged_one() -> None:
    """fanotify_init, fanotify_mark, open_by_handle_at are in @privileged, not in
    @system-service: the filter takes @privileged out and puts exactly these three back."""
    lines = [
        line.partition("=")[2].split()
        for line in SYSTEM_UNIT.read_text(encoding="utf-8").splitlines()
        if line.startswith("SystemCallFilter=")
    ]
    assert lines == [
        ["@system-service"],
        ["~@privileged"],
        ["fanotify_init", "fanotify_mark", "open_by_handle_at"],
    ]
