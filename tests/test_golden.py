"""The one golden-file mechanism (`make golden`): compare by default, rewrite with OPSKIT_UPDATE_GOLDEN=1."""

from __future__ import annotations

import pytest


def test_golden_compares_and_only_the_update_switch_rewrites(golden, tmp_path, monkeypatch) -> None:
    path = tmp_path / "expected.txt"
    path.write_text("old\n")
    monkeypatch.delenv("OPSKIT_UPDATE_GOLDEN", raising=False)
    with pytest.raises(AssertionError, match="`make golden` rewrites it"):
        golden(path, "new\n")
    assert path.read_text() == "old\n"
    monkeypatch.setenv("OPSKIT_UPDATE_GOLDEN", "1")
    golden(path, "new\n")
    assert path.read_text() == "new\n"


def test_tests_using_golden_files_carry_the_marker(request, golden) -> None:
    assert request.node.get_closest_marker("golden") is not None
