"""``[watch] quiet_ms`` and ``max_delay_ms`` take durations ("50ms", "1s") like every other
duration key; integers stay valid (milliseconds); the ranges still hold, and a string without a
unit is refused (it would be ambiguous)."""

from __future__ import annotations

from pathlib import Path

import pytest

from assetd.config import load_config
from assetd.errors import ConfigError
from cli_world import Cli, isolate


def _load(tmp_path: Path, watch: str) -> tuple[int, int]:
    path = tmp_path / "c.toml"
    path.write_text(f"[watch]\n{watch}\n", encoding="utf-8")
    config = load_config(str(path), env={"HOME": str(tmp_path)})
    return config.watch.quiet_ms, config.watch.max_delay_ms


@pytest.mark.parametrize(
    ("watch", "expected"),
    [
        ('quiet_ms = "50ms"\nmax_delay_ms = "1s"', (50, 1000)),
        ('quiet_ms = "0.2s"\nmax_delay_ms = "1.5s"', (200, 1500)),
        ('quiet_ms = "0ms"\nmax_delay_ms = "0s"', (0, 0)),
        ('quiet_ms = "10s"\nmax_delay_ms = "1m"', (10_000, 60_000)),
        ("quiet_ms = 20\nmax_delay_ms = 800", (20, 800)),  # integers: milliseconds, as before
        ('quiet_ms = 20\nmax_delay_ms = "2s"', (20, 2000)),
    ],
)
def test_durations_and_integers(tmp_path: Path, watch: str, expected: tuple[int, int]) -> None:
    assert _load(tmp_path, watch) == expected


@pytest.mark.parametrize(
    ("watch", "key", "says"),
    [
        ('quiet_ms = "11s"', "watch.quiet_ms", "must be between 0ms and 10s, got '11s'"),
        ('max_delay_ms = "2m"', "watch.max_delay_ms", "must be between 0ms and 1m, got '2m'"),
        ("quiet_ms = 10001", "watch.quiet_ms", "must be between 0 and 10000, got 10001"),
        ('quiet_ms = "50"', "watch.quiet_ms", "give a unit"),
        ('quiet_ms = "soon"', "watch.quiet_ms", "invalid duration 'soon'"),
        ('quiet_ms = "1s"\nmax_delay_ms = "500ms"', "watch.max_delay_ms", "at least"),
    ],
)
def test_ranges_still_hold(tmp_path: Path, watch: str, key: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, watch)
    assert caught.value.key == key and says in str(caught.value), str(caught.value)


def test_check_config_accepts_a_duration(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    isolate(monkeypatch, tmp_path)
    lib = tmp_path / "lib"
    lib.mkdir()
    path = tmp_path / "c.toml"
    path.write_text(
        f'[watch]\nquiet_ms = "50ms"\nmax_delay_ms = "1s"\n[[roots]]\nname = "l"\npath = "{lib}"\n'
    )
    run = Cli(capsys)("check-config", "--config", path)
    assert run.code == 0, run.err
