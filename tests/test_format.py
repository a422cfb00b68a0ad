"""assetd.commands._format: one formatter set, binary units everywhere."""

from __future__ import annotations

import datetime as dt

import pytest

from assetd.commands._format import format_age, format_time, human_size


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (1000, "1,000 B"),
        (1023, "1,023 B"),
        (1024, "1.0 KiB"),
        (1024 * 1024 - 1, "1.0 MiB"),  # never "1,024.0 KiB"
        (3 * 1024**3 // 2, "1.5 GiB"),
        (5 * 1024**5, "5,120.0 TiB"),
    ],
)
def test_human_size_is_binary(n: int, text: str) -> None:
    assert human_size(n) == text


def test_ages_and_times() -> None:
    assert [format_age(s) for s in (-1, 45, 720, 3 * 3600 + 300, 4 * 86400 + 7200)] == [
        "0 s",
        "45 s",
        "12 min",
        "3 h 5 min",
        "4 d 2 h",
    ]
    now = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)
    assert format_time(None, now) == "never"
    assert format_time(now - dt.timedelta(minutes=3), now).endswith("(3 min ago)")
