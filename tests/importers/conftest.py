"""The chaser command for importer tests that show what the user sees (as tests/cli does)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.importers.makers import write_csv

from tests.conftest import Chaser


@pytest.fixture
def tracker(chaser: Chaser, tmp_path: Path) -> Chaser:
    """The command, with one small plan already imported (so "unchanged" means something)."""
    plan = write_csv(tmp_path / "existing.csv", [["Ref", "Action", "Owner"], ["E1", "Keep me", "HR Lead"]])
    chaser("import", str(plan), "--plan", "Existing")
    return chaser


def assert_refused(chaser: Chaser, path: Path, *wanted: str) -> str:
    """``chaser import PATH`` exits 2 with one ``chaser: PATH: ...`` line and changes nothing."""
    before = json.loads(chaser("actions", "--format", "json").stdout)
    result = chaser("import", str(path), expect=2)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"chaser: {path}: ")
    for text in wanted:
        assert text in lines[0]
    assert json.loads(chaser("actions", "--format", "json").stdout) == before
    return lines[0]
