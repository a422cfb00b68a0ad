"""The parser ``parse_args`` uses fills in only the subcommand a command line names (``--help``
and every command start faster), and parses every command line exactly as the full parser
(every subcommand built) does: the same values, the same help, the same errors and exit codes."""

from __future__ import annotations

import argparse
import contextlib
import io

import pytest

from assetd.cli_parser import build_parser


def _walk(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    words = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                words.append((*prefix, name))
                words += _walk(sub, (*prefix, name))
    return words


EVERY_COMMAND = _walk(build_parser())
COMMAND_LINES = [
    [],
    ["--help"],
    ["-h"],
    ["--version"],
    ["nope"],
    ["status"],
    ["status", "--json", "--all-hosts"],
    ["--root", "/a", "status", "--root", "/b", "--json"],
    ["--config=/etc/x.toml", "why", "some/path"],
    ["--conf", "status", "status"],  # an abbreviated --config whose value is a command name
    ["--ro", "/r", "ls", "-l", "--missing", "sub/dir"],
    ["ls", "--missing", "--all"],
    ["ls", "--bogus"],
    ["cleanup"],
    ["cleanup", "--older-than", "0s", "--dry-run", "--json"],
    ["logs", "-", "--level", "WARNING", "--event", "batch", "--event", "root.*", "-f"],
    ["logs", "--color", "sometimes"],
    ["roots"],
    ["roots", "move", "lib", "/new", "--sample", "5"],
    ["roots", "move", "lib", "/new", "--sample", "five"],
    ["roots", "retire", "old", "--host", "h2", "--yes"],
    ["db"],
    ["db", "upgrade", "--config", "c.toml"],
    ["check-config", "--offline"],
    ["hash", "--in-root", "lib", "--dry-run"],
    ["run", "extra"],
    *[[*words, "--help"] for words in EVERY_COMMAND],
]


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[object, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            result: object = vars(parser.parse_args(argv))
        except SystemExit as stop:
            result = ("exit", stop.code)
    return result, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("argv", COMMAND_LINES, ids=" ".join)
def test_the_lazy_parser_parses_as_the_full_one(argv: list[str]) -> None:
    assert _parse(build_parser(lazy=True), argv) == _parse(build_parser(), argv)


def test_only_the_named_subcommand_gets_its_arguments() -> None:
    parser = build_parser(lazy=True)
    _parse(parser, ["roots", "move", "lib", "/new"])
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    filled = sorted(name for name, p in sub.choices.items() if len(p._actions) > 1)
    assert filled == ["roots"]  # the others hold their -h alone
    assert len(EVERY_COMMAND) > 12 and ("roots", "move") in EVERY_COMMAND
