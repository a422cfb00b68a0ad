"""Security checks on real parts (issue 12): the daemon never writes inside a root, the modes of
what assetd creates, roots that would swallow the state, and names that try to break out of their
field (terminal escapes, quotes, invalid UTF-8) in every human-readable output."""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import signal
import stat
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_world import subprocess_env, write_config
from daemon_harness import Daemon
from helpers import wait_until

# --- a second inotify watcher, raw (ctypes), on every directory of the roots -----------------

IN_MODIFY = 0x002
IN_CLOSE_WRITE = 0x008
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
WRITES = (
    IN_MODIFY
    | IN_CLOSE_WRITE
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_CREATE
    | IN_DELETE
    | IN_DELETE_SELF
    | IN_MOVE_SELF
)
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
_EVENT = struct.Struct("iIII")


class RawInotify:
    """Watches each directory below the given tops for create/delete/modify/move events."""

    def __init__(self, tops: list[Path]) -> None:
        self.libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self.fd = self.libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        assert self.fd >= 0, os.strerror(ctypes.get_errno())
        self.dirs: dict[int, str] = {}
        for top in tops:
            for d, _, _ in os.walk(top):
                wd = self.libc.inotify_add_watch(self.fd, os.fsencode(d), WRITES)
                assert wd >= 0, os.strerror(ctypes.get_errno())
                self.dirs[wd] = d

    def read(self) -> list[str]:
        """The events seen so far, as ``"MASK dir/name"``."""
        out: list[str] = []
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return out
            i = 0
            while i < len(data):
                wd, mask, _, size = _EVENT.unpack_from(data, i)
                name = data[i + _EVENT.size : i + _EVENT.size + size].rstrip(b"\0")
                out.append(f"{mask:#x} {self.dirs.get(wd, '?')}/{os.fsdecode(name)}")
                i += _EVENT.size + size

    def close(self) -> None:
        os.close(self.fd)


def _roots(tmp_path: Path) -> dict[str, Path]:
    roots = {"a": tmp_path / "a", "b": tmp_path / "b"}
    for name, top in roots.items():
        for sub in ("", "x", "x/y", "z"):
            (top / sub).mkdir(parents=True, exist_ok=True)
            for i in range(5):
                (top / sub / f"{name}{i}.bin").write_bytes(os.urandom(3000 + i))
    (roots["a"] / "big.bin").write_bytes(os.urandom(3 << 20))  # hashed by the child process
    return roots


def _events(d: Daemon, name: str) -> int:
    return sum(1 for e in d.log_events() if e.get("event") == name)


def test_the_daemon_never_writes_inside_a_root(tmp_path: Path) -> None:
    roots = _roots(tmp_path)
    files = sum(len(f) for top in roots.values() for _, _, f in os.walk(top))
    watcher = RawInotify(list(roots.values()))
    d = Daemon(tmp_path, roots)
    try:
        d.start()
        # start-up reconcile, then hashing of every file
        wait_until(lambda: _events(d, "reconcile.finished") >= 1, 30, what="start-up reconcile")
        wait_until(
            lambda: (
                d.query(
                    "SELECT count(*) FROM asset_cache_states c JOIN assets a ON a.id = c.asset_id "
                    "WHERE a.hash IS NOT NULL AND c.is_missing = 0"
                )
                == [(files,)]
            ),
            60,
            what="every file hashed",
        )
        d.send(signal.SIGHUP)
        wait_until(lambda: d.notify is not None and d.notify.has("RELOADING=1"), 15)
        before = _events(d, "reconcile.finished")
        d.send(signal.SIGUSR1)
        wait_until(lambda: _events(d, "reconcile.finished") > before, 30, what="reconcile")
        seen = watcher.read()
        assert seen == [], seen
        assert d.stop() == 0
        assert watcher.read() == []
    finally:
        d.close()
        watcher.close()


# --- modes of what assetd creates, under a permissive umask ---------------------------------


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def _world_writable(top: Path) -> list[str]:
    out = []
    for d, dirs, files in os.walk(top):
        for n in [*dirs, *files]:
            st = os.lstat(os.path.join(d, n))
            if not stat.S_ISLNK(st.st_mode) and st.st_mode & stat.S_IWOTH:
                out.append(f"{oct(st.st_mode)} {d}/{n}")
    return out


def _mode(p: Path) -> int:
    return stat.S_IMODE(os.lstat(p).st_mode)


def test_modes_of_what_the_daemon_creates_under_umask_0(tmp_path: Path, open_umask: None) -> None:
    root = tmp_path / "r"
    root.mkdir(mode=0o755)
    (root / "f").write_bytes(b"x")
    d = Daemon(tmp_path, {"r": root})
    try:
        d.start()
        d.barrier(root)
        sock = d.state / "api.sock"
        wait_until(sock.exists, 15, what="the API socket")
        assert _mode(d.state) == 0o750
        for name in ("catalog.db", "catalog.db-wal", "catalog.db-shm", "host-id"):
            assert _mode(d.state / name) == 0o640, name
        assert _mode(sock) == 0o660
        assert _world_writable(d.state) == []
        assert d.stop() == 0
        assert _world_writable(d.state) == []
    finally:
        d.close()


def test_modes_of_what_scan_creates_under_umask_0(tmp_path: Path, open_umask: None) -> None:
    root = tmp_path / "r"
    root.mkdir(mode=0o755)
    (root / "f").write_bytes(b"x")
    state = tmp_path / "deep" / "state"
    cfg = write_config(tmp_path / "c.toml", roots={"r": root}, state_dir=state)
    run = _assetd(tmp_path, "scan", "--config", cfg)
    assert run.returncode == 0, run.stderr
    assert _mode(state) == 0o750
    assert _mode(state / "catalog.db") == 0o640
    assert _world_writable(tmp_path / "deep") == []


# --- roots that would swallow the state ------------------------------------------------------


def _assetd(
    tmp_path: Path, *args: str | Path, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "assetd", *map(str, args)],
        capture_output=True,
        env=subprocess_env(tmp_path),
        input=stdin,
        timeout=60,
    )


@pytest.mark.parametrize("command", ["check-config", "scan"])
def test_a_root_at_slash_is_refused(tmp_path: Path, command: str) -> None:
    cfg = write_config(tmp_path / "c.toml", roots={"all": Path("/")}, state_dir=tmp_path / "s")
    run = _assetd(tmp_path, command, "--config", cfg)
    assert run.returncode == 78, run.stderr
    err = run.stderr.decode()
    assert "roots[0].path" in err and "Traceback" not in err
    assert not (tmp_path / "s").exists()


def test_a_root_containing_the_state_directory_or_the_catalog_is_refused(tmp_path: Path) -> None:
    top = tmp_path / "top"
    top.mkdir()
    cfg = write_config(tmp_path / "c.toml", roots={"t": top}, state_dir=top / "state")
    run = _assetd(tmp_path, "check-config", "--config", cfg)
    assert run.returncode == 78 and b"daemon.state_dir" in run.stderr, run.stderr
    url = f"sqlite:///{top / 'db' / 'c.db'}"
    cfg = write_config(tmp_path / "c.toml", roots={"t": top}, state_dir=tmp_path / "s", url=url)
    run = _assetd(tmp_path, "scan", "--config", cfg)
    assert run.returncode == 78 and b"database.url" in run.stderr, run.stderr
    assert not (top / "db").exists()


@pytest.mark.parametrize("command", ["check-config", "scan", "run"])
def test_a_root_inside_the_state_directory_is_refused(tmp_path: Path, command: str) -> None:
    state = tmp_path / "state"
    inner = state / "files"
    inner.mkdir(parents=True)
    cfg = write_config(tmp_path / "c.toml", roots={"in": inner}, state_dir=state)
    run = _assetd(tmp_path, command, "--config", cfg)
    assert run.returncode == 78, run.stderr
    err = run.stderr.decode()
    assert "roots[0].path" in err and "state directory" in err, err
    assert "Traceback" not in err
    assert sorted(os.listdir(state)) == ["files"]


def test_a_root_inside_the_state_directory_given_by_root_flag_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    inner = state / "files"
    inner.mkdir(parents=True)
    cfg = write_config(tmp_path / "c.toml", roots={}, state_dir=state)
    run = _assetd(tmp_path, "scan", "--config", cfg, "--root", inner)
    assert run.returncode == 78 and b"--root" in run.stderr, run.stderr


# --- names that try to break out of their field ----------------------------------------------

EVIL = "evil\x1b[2J\x1b]0;pwned\x07-\x08\x08-\u009b31m-end.txt"
ODD = ["quote\"'s.txt", "100%d%s%n.txt", "back\\slash\\x41.txt", "new\nline.txt"]
RAW_BAD = b"bad-\xff\xfe-utf8.txt"
CONTROL = {chr(c) for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)]}


def _no_control(text: str, allowed: str = "\n") -> None:
    found = sorted({c for c in text if c in CONTROL} - set(allowed))
    assert found == [], f"raw control characters {found!r} in {text[:300]!r}"


def _world(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "r"
    root.mkdir()
    for name in [EVIL, *ODD]:
        (root / name).write_bytes(name.encode())
    (root / "gone").mkdir()
    for name in [EVIL, *ODD]:
        (root / "gone" / name).write_bytes(b"g")
    os.mkdir(os.path.join(os.fsencode(root), b"raw"))
    with open(os.path.join(os.fsencode(root), b"raw", RAW_BAD), "wb") as f:
        f.write(b"r")
    cfg = write_config(tmp_path / "c.toml", roots={"r": root}, state_dir=tmp_path / "s")
    run = _assetd(tmp_path, "scan", "--config", cfg)
    assert run.returncode == 0, run.stderr
    for name in [EVIL, *ODD]:
        (root / "gone" / name).unlink()
    run = _assetd(tmp_path, "scan", "--config", cfg)
    assert run.returncode == 0, run.stderr
    return root, cfg


@pytest.mark.slow
def test_human_outputs_escape_control_characters_and_json_stays_exact(tmp_path: Path) -> None:
    root, cfg = _world(tmp_path)
    for args in (["ls"], ["ls", "--all", "--long"], ["missing"], ["status"]):
        run = _assetd(tmp_path, *args, "--config", cfg)
        assert run.returncode == 0, run.stderr
        out = run.stdout.decode()
        _no_control(out, "\n\t" if "--long" in args else "\n")  # --long: tab-separated
        assert "\\x1b[2J" in out or args == ["status"], out
    out = _assetd(tmp_path, "ls", "--config", cfg).stdout.decode()
    assert "\\x9b31m" in out and "\\x08\\x08" in out and "new\\nline.txt" in out
    for name in ODD[:3]:
        assert str(root / name) in out.splitlines()
    for path in (root / EVIL, root / "gone" / EVIL):
        run = _assetd(tmp_path, "why", path, "--config", cfg)
        assert run.returncode == 0, run.stderr
        _no_control(run.stdout.decode())
        assert "evil\\x1b[2J" in run.stdout.decode()
    # --json: exact
    listed = {
        json.loads(x)["path"]
        for x in _assetd(tmp_path, "ls", "--all", "--json", "--config", cfg).stdout.splitlines()
    }
    for name in [EVIL, *ODD]:
        assert str(root / name) in listed and str(root / "gone" / name) in listed
    assert str(root / "raw") + "/bad-\\xff\\xfe-utf8.txt" in listed
    missing = json.loads(_assetd(tmp_path, "missing", "--json", "--config", cfg).stdout)
    got = {f["path"] for r in missing["roots"] for d in r["directories"] for f in d["files"]}
    assert got == {str(root / "gone" / n) for n in [EVIL, *ODD]}
    why = json.loads(_assetd(tmp_path, "why", root / EVIL, "--json", "--config", cfg).stdout)
    assert why["path"] == str(root / EVIL)


@pytest.mark.slow
def test_odd_names_go_through_why_intact(tmp_path: Path) -> None:
    root, cfg = _world(tmp_path)
    for name in ODD[:3]:
        run = _assetd(tmp_path, "why", root / name, "--config", cfg)
        assert run.returncode == 0, run.stderr
        out = run.stdout.decode()
        assert out.splitlines()[0] == str(root / name)
        assert "not in the catalog" not in out
    bad = os.path.join(os.fsencode(root), b"raw", RAW_BAD)
    run = subprocess.run(
        [sys.executable.encode(), b"-m", b"assetd", b"why", bad, b"--config", bytes(cfg)],
        capture_output=True,
        env=subprocess_env(tmp_path),
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert b"not in the catalog" not in run.stdout
    assert b"bad-\\xff\\xfe-utf8.txt" in run.stdout


def test_logs_escape_control_characters_of_every_field(tmp_path: Path) -> None:
    record = {
        "timestamp": "2026-11-29T10:00:00Z",
        "level": "info",
        "event": "cache_state.missing\x1b[2J",
        "logger": "other\x9b1m",
        "paths": [f"/r/{EVIL}"],
        "path": f"/r/{EVIL}",
        "count": 1,
        "k\x1bey": "v",
        "exception": "Traceback\n  x\x1b]0;t\x07",
    }
    text = json.dumps(record) + "\n" + f"plain {EVIL}\n" + json.dumps(record, ensure_ascii=False)
    log = tmp_path / "log"
    log.write_text(text + "\n", encoding="utf-8")
    for colour in ("never", "always"):
        run = _assetd(tmp_path, "logs", log, "--color", colour)
        assert run.returncode == 0, run.stderr
        out = run.stdout.decode()
        if colour == "always":
            out = out.replace("\x1b[", "<CSI>")
            assert "<CSI>2J" not in out, out
        else:
            _no_control(out)
        assert "\\x1b[2J" in out and "\\x9b31m" in out
    run = _assetd(tmp_path, "logs", log, "--json")
    lines = run.stdout.decode().splitlines()
    assert json.loads(lines[0]) == record and json.loads(lines[2]) == record
    assert json.loads(lines[1])["text"] == f"plain {EVIL}"


def test_logs_fed_junk_show_it_as_is_and_never_crash(tmp_path: Path) -> None:
    record = json.dumps({"timestamp": "2026-11-29T10:00:00Z", "level": "info", "event": "x.y"})
    junk = bytes(range(256)) * 4
    long_line = b"A" * (10 << 20)
    truncated = record[: len(record) // 2].encode()
    data = b"\n".join([record.encode(), junk, long_line, truncated, b"\x00\x00", record.encode()])
    log = tmp_path / "log"
    log.write_bytes(data + b"\n")
    for src, stdin in ((log, None), ("-", data)):
        run = _assetd(tmp_path, "logs", src, stdin=stdin)
        assert run.returncode == 0, run.stderr[-2000:]
        assert b"Traceback" not in run.stderr
        out = run.stdout.decode()
        assert out.count("x.y") == 2
        assert ("A" * (10 << 20)) in out
        assert truncated.decode() in out
        _no_control(out)
        run = _assetd(tmp_path, "logs", src, "--json", stdin=stdin)
        assert run.returncode == 0, run.stderr[-2000:]
        texts = [
            x.get("text") for x in json.loads(f"[{','.join(run.stdout.decode().splitlines())}]")
        ]
        assert "A" * (10 << 20) in texts and truncated.decode() in texts


def test_a_name_that_fakes_a_log_record_never_makes_a_second_record(tmp_path: Path) -> None:
    root = tmp_path / "r"
    root.mkdir()
    fake = 'x\n{"event": "root.unavailable", "level": "error"}\n.txt'
    (root / fake).write_bytes(b"f")
    cfg = write_config(tmp_path / "c.toml", roots={"r": root}, state_dir=tmp_path / "s")
    _assetd(tmp_path, "scan", "--config", cfg)
    (root / fake).unlink()
    run = _assetd(tmp_path, "scan", "--config", cfg)
    assert run.returncode == 0
    events = [json.loads(x)["event"] for x in run.stderr.decode().splitlines() if x]
    assert "root.unavailable" not in events
