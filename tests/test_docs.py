"""The documentation matches the code: every subcommand has help text and a row in the README,
and docs/log-events.md lists exactly the log events the package emits, with their levels."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import assetd
from assetd.cli_parser import build_parser

REPO = Path(__file__).resolve().parent.parent
PACKAGE = Path(assetd.__file__).parent
LEVELS = ("debug", "info", "warning", "error", "critical", "exception")
# A logger call with a literal event name: `_log.info("name"`, `log.warning(\n    "name"`.
LOG_CALL = re.compile(
    r"\b(?:_log|log|logger)\.(" + "|".join(LEVELS) + r")\(\s*\"([^\"]+)\"", re.MULTILINE
)
DOC_ROW = re.compile(r"^\| `([^`]+)` \| ([a-z, ]+) \|", re.MULTILINE)


def subcommands(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], str | None, argparse.ArgumentParser]]:
    """(words, help, parser) of every subcommand, nested ones (``db upgrade``) included."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                words = (*prefix, name)
                yield words, helps.get(name), sub
                yield from subcommands(sub, words)


def test_every_subcommand_has_help_text_and_a_readme_row() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    found = list(subcommands(build_parser()))
    names = {" ".join(words) for words, _, _ in found}
    assert {"run", "status", "why", "missing", "logs", "roots move", "db upgrade"} <= names
    for words, help_text, sub in found:
        command = " ".join(words)
        assert help_text and len(help_text) > 10, f"`assetd {command}` has no help text"
        leaf = not any(isinstance(a, argparse._SubParsersAction) for a in sub._actions)
        if leaf:
            row = re.search(rf"^\| `assetd {re.escape(command)}\b[^\n]*", readme, re.MULTILINE)
            assert row, f"`assetd {command}` has no row in the README's Commands table"
            missing = [flag for flag in _own_flags(sub) if flag not in row.group(0)]
            assert not missing, f"the README row of `assetd {command}` lacks {missing}"


GLOBAL_FLAGS = {"-h", "--help", "--config", "--root"}  # explained once, under the table


def _own_flags(parser: argparse.ArgumentParser) -> list[str]:
    """The long form of each option of a subcommand (its short form when it has no long one)."""
    flags = []
    for action in parser._actions:
        if not action.option_strings or set(action.option_strings) & GLOBAL_FLAGS:
            continue
        longs = [o for o in action.option_strings if o.startswith("--")]
        flags.append(longs[0] if longs else action.option_strings[0])
    return flags


def emitted_events() -> dict[str, set[str]]:
    """Event name -> levels, from every logger call in the package's source."""
    found: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for level, name in LOG_CALL.findall(path.read_text(encoding="utf-8")):
            found.setdefault(name, set()).add("error" if level == "exception" else level)
    return found


def documented_events() -> dict[str, set[str]]:
    text = (REPO / "docs" / "log-events.md").read_text(encoding="utf-8")
    table = text[text.index("| event | level |") :]
    return {
        name: {level.strip() for level in levels.split(",")}
        for name, levels in DOC_ROW.findall(table)
    }


def test_log_events_doc_lists_exactly_the_events_the_code_emits() -> None:
    code, doc = emitted_events(), documented_events()
    assert len(code) > 30  # the regex does find the calls
    assert sorted(set(code) - set(doc)) == [], "emitted but not in docs/log-events.md"
    assert sorted(set(doc) - set(code)) == [], "in docs/log-events.md but never emitted"
    wrong = {n: (sorted(doc[n]), sorted(code[n])) for n in code if doc[n] != code[n]}
    assert wrong == {}, "levels in the doc (first) differ from the code (second)"


def test_design_event_names_are_kept() -> None:
    """The names DESIGN §6 promises operators."""
    promised = {
        "cache_state.missing",
        "cache_state.restored",
        "cache_state.moved",
        "batch.applied",
        "reconcile.finished",
        "root.unavailable",
        "root.restored",
        "watch.overflow",
        "database.unavailable",
        "database.restored",
    }
    assert promised <= set(emitted_events())


@pytest.mark.parametrize(
    "heading",
    [
        "Installing as a system service",
        "Installing as a user service",
        "Choosing roots",
        "inotify limits",
        "Network filesystems",
        "Reading the logs",
        "Backing up and moving the catalog",
        "Permissions for readers",
        "Upgrading",
    ],
)
def test_operations_guide_has_each_section(heading: str) -> None:
    text = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    assert re.search(rf"^##+ {re.escape(heading)}$", text, re.MULTILINE)
