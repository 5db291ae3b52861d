"""docs/reliability.md and the suite stay in step: every test the table names exists, and every test in
tests/reliability/ (but this file's) is named in the table."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "reliability.md"
NAMED = re.compile(r"`(tests/[\w/]+\.py)::(test_\w+)`")


def _tests_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def test_every_test_named_in_the_table_exists():
    named = NAMED.findall(DOC.read_text())
    assert len(named) >= 40
    missing = [f"{file}::{name}" for file, name in named
               if not (ROOT / file).is_file() or name not in _tests_in(ROOT / file)]
    assert not missing, f"docs/reliability.md names tests that do not exist: {missing}"


def test_every_reliability_test_is_in_the_table():
    named = {(file, name) for file, name in NAMED.findall(DOC.read_text())}
    here = Path(__file__).resolve().parent
    absent = [f"{path.name}::{name}" for path in sorted(here.glob("test_*.py")) if path.name != Path(__file__).name
              for name in sorted(_tests_in(path)) if (f"tests/reliability/{path.name}", name) not in named]
    assert not absent, f"tests missing from the table in docs/reliability.md: {absent}"


def test_the_c_section_is_there_for_the_c_half():
    text = DOC.read_text()
    assert "## C runtime" in text and "reliability-c.md" in text
