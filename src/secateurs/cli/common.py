"""What every command shares: exit codes, error reporting, quiet output.

Exit codes that scripts can trust:
  0  success
  1  the work itself failed (for example a metric could not be computed)
  2  bad usage or bad input (wrong arguments, missing or corrupt files); nothing was written
"""

from __future__ import annotations

import contextlib
import inspect
import sys
from collections.abc import Iterator

import typer

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2

# Optional packages and the extra that installs each (pyproject.toml's optional-dependencies).
EXTRAS = {
    "optuna": "search",
    "sqlalchemy": "search",
    "psycopg2": "search",
    "matplotlib": "report",
    "onnx": "onnx",
    "onnxruntime": "onnx",
    "onnxscript": "onnx",
    "transformers": "hf",
    "sentence_transformers": "hf",
}

QuietOption = typer.Option(False, "--quiet", "-q", help="Print only errors and final paths.")


def fail(message: str, code: int = EXIT_BAD_INPUT) -> typer.Exit:
    """Print `message` on stderr and return the Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def reflow(text: str) -> str:
    """A docstring as help text: paragraphs kept, the lines of each joined into one, so that
    the terminal wraps whole sentences (typer would keep the source's line breaks and, in a
    narrow terminal, break lines mid-sentence). Lines starting with "-" stay list items."""
    paragraphs = inspect.cleandoc(text).split("\n\n")
    out = []
    for para in paragraphs:
        lines: list[str] = []
        for line in para.splitlines():
            if lines and not line.lstrip().startswith("- "):
                lines[-1] += " " + line.strip()
            else:
                lines.append(line.strip())
        out.append("\n".join(lines))
    return "\n\n".join(out)


def reflow_help(app: typer.Typer) -> None:
    """`reflow` the help of every command and command group registered on `app`."""
    for info in app.registered_commands:
        text = info.help or (info.callback.__doc__ if info.callback else None)
        if text:
            info.help = reflow(text)
    for group in app.registered_groups:
        if group.typer_instance is not None:
            reflow_help(group.typer_instance)


def missing_extra(error: ImportError) -> str | None:
    """'optuna is not installed: pip install "secateurs[search]"' for an optional package."""
    name = (error.name or "").split(".")[0]
    extra = EXTRAS.get(name)
    return f'{name} is not installed: pip install "secateurs[{extra}]"' if extra else None


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn the errors that bad input raises into a one-line message and exit code 2."""
    try:
        yield
    except ImportError as e:
        raise fail(missing_extra(e) or str(e) or type(e).__name__) from None
    except (ValueError, TypeError, FileNotFoundError, KeyError, PermissionError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        raise fail(str(msg) or type(e).__name__) from None
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
