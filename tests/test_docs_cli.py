"""The command lines in README.md and docs/ use commands and options that exist.

Every line of a shell block that runs `secateurs ...` is split like a shell would; its
subcommands are followed through the CLI's command tree, and every `--option` must be an
option of the command it reaches. A renamed command or option leaves the docs behind here.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import typer.main
from typer.core import TyperGroup

from secateurs.cli import app

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
SHELL = {"", "bash", "console", "sh", "shell"}


def _shell_blocks(text: str) -> list[str]:
    """The bodies of fenced blocks whose language is a shell (or not given)."""
    blocks, body, lang = [], [], None
    for line in text.splitlines():
        if line.startswith("```"):
            if lang is None:
                lang, body = line[3:].strip(), []
            else:
                if lang in SHELL:
                    blocks.append("\n".join(body))
                lang = None
        elif lang is not None:
            body.append(line)
    return blocks


def _command_lines() -> list[tuple[str, str]]:
    out = []
    for page in PAGES:
        for block in _shell_blocks(page.read_text(encoding="utf-8")):
            for line in block.replace("\\\n", " ").splitlines():
                text = line.strip().removeprefix("$ ")
                for part in text.split("&&"):  # the set-up commands chain several
                    part = part.strip()
                    if part.startswith("secateurs "):
                        out.append((page.relative_to(ROOT).as_posix(), part))
    return out


def _options(command: object) -> set[str]:
    return {opt for p in command.params for opt in p.opts if opt.startswith("-")}


@pytest.mark.parametrize(("where", "line"), _command_lines())
def test_documented_command_lines_exist(where: str, line: str) -> None:
    words = shlex.split(line.split("  #")[0])[1:]
    command: object = typer.main.get_command(app)
    path = ["secateurs"]
    while words and hasattr(command, "commands") and words[0] in command.commands:
        path.append(words[0])
        command = command.commands[words.pop(0)]
    if hasattr(command, "commands") and words and not words[0].startswith(("-", "[")):
        # only a group that routes other words to a default command (`sweep CONFIG`) may
        # take a word that is not one of its commands
        routes = type(command).parse_args is not TyperGroup.parse_args
        assert routes, (
            f"{where}: `{line}`: {' '.join(path)} has no command {words[0]!r} "
            f"(it has {sorted(command.commands)})"
        )
    known = _options(command) | {"--help"}
    for sub in getattr(command, "commands", {}).values():
        known |= _options(sub)  # a group that runs a default subcommand takes its options
    for word in words:
        word = word.strip("[]")  # usage lines: [--option VALUE]
        if word.startswith("--"):
            name = word.split("=", 1)[0]
            assert name in known, f"{where}: `{line}`: {' '.join(path)} has no option {name}"


def test_the_docs_show_command_lines() -> None:
    assert len(_command_lines()) >= 8
