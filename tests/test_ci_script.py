"""The CI script runs the README's test command, unchanged, as its last step."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST_COMMAND = (
    'python3 -m venv .venv && . .venv/bin/activate && pip install -q -c constraints.txt -e ".[dev]"'
    " && python -m pytest -q"
)


def test_readme_test_command_is_the_last_step_of_ci() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert TEST_COMMAND in readme.splitlines()
    steps = [line for line in ci.splitlines() if line.strip() and not line.startswith("#")]
    assert steps[-1] == TEST_COMMAND


def test_ci_checks_lint_types_and_docs_before_the_tests() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "set -euo pipefail" in ci
    tests_at = ci.index(TEST_COMMAND)
    for check in ("ruff check src tests", "\nmypy\n", "mkdocs build --strict"):
        assert -1 < ci.index(check) < tests_at, check


def test_every_documentation_page_is_in_the_site_navigation() -> None:
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = sorted(p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md"))
    assert pages
    missing = [p for p in pages if f": {p}" not in nav]
    assert not missing, f"pages not in mkdocs.yml nav: {missing}"
