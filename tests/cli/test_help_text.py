"""Help texts wrap whole sentences: docstring line breaks inside a paragraph are removed, so a
narrow terminal never shows a sentence cut at the source's line ends."""

import typer
from typer.testing import CliRunner

from secateurs.cli import app
from secateurs.cli.common import reflow


def _commands(t: typer.Typer, prefix: tuple[str, ...] = ()):
    for info in t.registered_commands:
        name = info.name or (info.callback.__name__.replace("_", "-") if info.callback else "")
        yield (*prefix, name), info
    for group in t.registered_groups:
        yield from _commands(group.typer_instance, (*prefix, group.name))


def test_reflow_joins_lines_keeps_paragraphs_and_list_items():
    text = """First line
        continues here.

        Second paragraph
        goes on.
        - an item
          wrapped
        - another item
    """
    assert reflow(text) == (
        "First line continues here.\n\nSecond paragraph goes on.\n- an item wrapped\n"
        "- another item"
    )


def test_every_command_help_is_reflowed_and_renders_narrow():
    seen = 0
    for path, info in _commands(app):
        shown = info.help or (info.callback.__doc__ if info.callback else "") or ""
        for para in shown.split("\n\n"):
            lines = para.split("\n")
            assert all(line.startswith("- ") for line in lines[1:]), (path, para)
        result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "60"})
        assert result.exit_code == 0, (path, result.output)
        seen += 1
    assert seen >= 7
