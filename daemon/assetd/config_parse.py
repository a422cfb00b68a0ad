"""TOML values to checked, typed values: the validation half of the config loader.

Every fault is a :class:`~assetd.errors.ConfigError` whose one-line message names the dotted key.
The defaults table and the rules each field carries (``min``, ``choices``, ``path``, ...) are the
dataclasses of :mod:`assetd.config`; :func:`read_table` applies them to one TOML table.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import MISSING, Field, dataclass, fields
from typing import Any

from assetd.errors import ConfigError


def config_error(key: str, message: str) -> ConfigError:
    """A ConfigError whose text stays on one line whatever the user wrote."""
    return ConfigError(_one_line(key), _one_line(message))


def _one_line(text: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def describe_value(value: object) -> str:
    names = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array"}
    kind = "table" if isinstance(value, dict) else names.get(type(value), "date/time")
    shown = str(value).lower() if isinstance(value, bool) else repr(value)
    return f"{kind} {shown if len(shown) <= 40 else shown[:37] + '...'}"


def parse_duration(text: object, key: str, *, allow_zero: bool = False) -> float:
    """Seconds from ``"500ms"``, ``"15s"``, ``"30m"``, ``"1h30m"``, ``"7d"`` or a number (TOML or
    text, in seconds). The result is finite and > 0 (>= 0 with ``allow_zero``); anything else
    raises ``ConfigError(key, ...)``.
    """
    if isinstance(text, bool) or not isinstance(text, int | float | str):
        raise config_error(key, f"expected a duration such as '30m', got {describe_value(text)}")
    if isinstance(text, str):
        spec = text.strip()
        if re.fullmatch(r"\d+(?:\.\d+)?", spec):
            seconds = float(spec)
        elif re.fullmatch(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+", spec):
            units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
            parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", spec)
            seconds = sum(float(number) * units[unit] for number, unit in parts)
        else:
            example = "seconds or e.g. '500ms', '15s', '30m', '1h30m', '7d'"
            raise config_error(key, f"invalid duration {text!r}; use {example}")
    else:
        seconds = float(text)
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        least = "zero or more" if allow_zero else "greater than zero"
        raise config_error(key, f"must be a duration {least}, got {text!r}")
    return seconds


def check_table(data: object, key: str, allowed: Sequence[str]) -> dict[str, object]:
    """``data`` as a TOML table whose keys are all ``allowed``."""
    if not isinstance(data, dict):
        raise config_error(key, f"expected a table, got {describe_value(data)}")
    for name in data:
        if name not in allowed:
            close = difflib.get_close_matches(name, allowed, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise config_error(f"{key}.{name}" if key else name, f"unknown key{hint}")
    return data


def read_table(cls: type, data: object, key: str) -> dict[str, Any]:
    """The checked values of one table for the dataclass ``cls`` (absent keys: its defaults)."""
    specs = fields(cls)
    table = check_table(data, key, [f.name for f in specs])
    values: dict[str, Any] = {}
    for spec in specs:
        if spec.name in table:
            values[spec.name] = _value(spec, table[spec.name], f"{key}.{spec.name}")
        elif spec.default is MISSING:
            raise config_error(
                f"{key}.{spec.name}", "missing; every [[roots]] needs a name and a path"
            )
    return values


def _value(spec: Field[Any], value: object, key: str) -> object:
    """One checked value: TOML types are strict (a boolean is not an integer)."""
    kind, checks = str(spec.type), spec.metadata
    if kind == "float":
        seconds = parse_duration(value, key)
        _check_range(seconds, checks, key, shown=repr(value), unit=_seconds)
        return seconds
    if checks.get("ms") and isinstance(value, str):
        return _milliseconds(value, checks, key)
    wanted = {"bool": bool, "int": int, "str": str}.get(kind, list)
    if not isinstance(value, wanted) or (wanted is int and isinstance(value, bool)):
        what = {bool: "true or false", int: "an integer", str: "a string"}.get(wanted, "an array")
        raise config_error(key, f"expected {what}, got {describe_value(value)}")
    if isinstance(value, int) and not isinstance(value, bool):
        _check_range(value, checks, key, shown=str(value), unit=str)
    if isinstance(value, list):
        if not all(isinstance(item, str) and item for item in value):
            raise config_error(
                key, f"expected an array of non-empty strings, got {describe_value(value)}"
            )
        if checks.get("component") and any("/" in item for item in value):
            raise config_error(key, "a pattern matches one path component and cannot contain '/'")
        return tuple(value)
    if isinstance(value, str) and "choices" in checks:
        if value.lower() not in checks["choices"]:
            raise config_error(key, f"must be one of {', '.join(checks['choices'])}, got {value!r}")
        return value.lower()
    if isinstance(value, str) and checks.get("name") and (not value or "/" in value):
        raise config_error(key, f"must be non-empty and contain no '/', got {value!r}")
    if isinstance(value, str) and checks.get("path") and (value or spec.default is MISSING):
        if not os.path.isabs(value):
            raise config_error(key, f"must be an absolute path, got {value!r}")
        return os.path.normpath(value)
    return value


def _milliseconds(text: str, checks: Any, key: str) -> int:
    """A millisecond key given as a duration ("50ms", "1s"): whole milliseconds, in range. A
    string needs a unit (a bare number is an integer in TOML: ``quiet_ms = 50``)."""
    if re.fullmatch(r"\s*\d+(?:\.\d+)?\s*", text):
        raise config_error(key, f'{text!r} has no unit: give a unit ("50ms", "1s") or an integer')
    seconds = parse_duration(text, key, allow_zero=True)
    _check_range(seconds * 1000, checks, key, shown=repr(text), unit=lambda ms: _seconds(ms / 1000))
    return round(seconds * 1000)


def _seconds(value: float) -> str:
    """``86400.0`` -> ``'1d'``, ``1.0`` -> ``'1s'`` (for a range in a message)."""
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if value >= size and value % size == 0:
            return f"{int(value // size)}{unit}"
    if value < 1:
        return f"{value * 1000:g}ms"
    return f"{value:g}s"


def _check_range(
    value: float, checks: Any, key: str, *, shown: str, unit: Callable[[Any], str]
) -> None:
    """The field's ``min``/``max`` (and ``zero_ok``: 0 is allowed below ``min``)."""
    low, high = checks.get("min"), checks.get("max")
    if checks.get("zero_ok") and value == 0:
        return
    if (low is None or value >= low) and (high is None or value <= high):
        return
    zero = "0 or " if checks.get("zero_ok") else ""
    if high is None:
        raise config_error(key, f"must be {zero}at least {unit(low)}, got {shown}")
    if low is None:
        raise config_error(key, f"must be at most {unit(high)}, got {shown}")
    raise config_error(key, f"must be {zero}between {unit(low)} and {unit(high)}, got {shown}")


# --- [api] listen addresses ------------------------------------------------------------------

UNIX_PATH_MAX = 107  # AF_UNIX's sun_path holds 108 bytes, one of them the final NUL


@dataclass(frozen=True, slots=True)
class ListenAddress:
    """One ``[api] listen`` entry: a unix socket path (absolute) or a TCP host and port."""

    text: str
    path: str = ""
    host: str = ""
    port: int = 0

    @property
    def is_unix(self) -> bool:
        return bool(self.path)

    @property
    def is_loopback(self) -> bool:
        if self.is_unix or self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False  # a host name other than localhost may resolve anywhere


def parse_listen(
    text: str, state_dir: str, key: str = "api.listen", *, strict_paths: bool = True
) -> ListenAddress:
    """``"unix:PATH"`` (relative: under ``state_dir``) or ``"HOST:PORT"`` (``[::1]:8080``).
    ``strict_paths``: a socket path too long for AF_UNIX is an error (else binding fails later,
    which the daemon logs as ``api.unavailable``)."""
    if text.startswith("unix:"):
        path = text[5:]
        if not path:
            raise config_error(key, f"{text!r}: give a socket path after 'unix:'")
        path = os.path.normpath(os.path.join(state_dir, path))
        if strict_paths and len(os.fsencode(path)) > UNIX_PATH_MAX:
            raise config_error(
                key,
                f"socket path {path} is {len(os.fsencode(path))} bytes, more than the "
                f"{UNIX_PATH_MAX} AF_UNIX allows; use a shorter path",
            )
        return ListenAddress(text, path=path)
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise config_error(
            key,
            f"{text!r}: expected 'unix:PATH' or 'HOST:PORT' (port 1-65535), e.g. '127.0.0.1:8188'",
        )
    return ListenAddress(text, host=host, port=int(port))


def check_api_listen(
    listen: Sequence[str], token_file: str, state_dir: str, *, strict_paths: bool = True
) -> list[ListenAddress]:
    """The parsed addresses; a TCP address that is not loopback needs ``api.token_file``."""
    addresses = [parse_listen(t, state_dir, strict_paths=strict_paths) for t in listen]
    exposed = [a.text for a in addresses if not a.is_loopback]
    if exposed and not token_file:
        raise config_error(
            "api.token_file",
            f"required when api.listen has an address that is not loopback ({exposed[0]}): "
            "set a file holding a bearer token",
        )
    return addresses
