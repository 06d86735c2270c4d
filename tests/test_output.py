from __future__ import annotations

import math
import os
import stat

import pytest

from opskit import output as out


def test_table_prints_cells_as_data_not_markup(capsys):
    out.table(["query", "value"], [["up[prometheus]", 1], ["[bold]x[/bold]", None]], title="t [1]")
    text = capsys.readouterr().out
    assert "up[prometheus]" in text
    assert "[bold]x[/bold]" in text
    assert "t [1]" in text


def test_markdown_table_escapes_pipes():
    md = out.markdown_table(["a", "b"], [["x|y", None]])
    assert md.splitlines() == ["| a | b |", "|---|---|", "| x\\|y |  |"]


def test_json_turns_nan_into_null():
    assert out.dumps({"v": math.nan, "w": [1.5]}) == '{\n  "v": null,\n  "w": [\n    1.5\n  ]\n}'


def test_write_atomic_replaces_whole_file_with_normal_permissions(tmp_path):
    target = tmp_path / "sub" / "r.json"
    out.write_atomic(target, "one")
    out.write_atomic(target, b"two")
    assert target.read_text() == "two"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in target.parent.iterdir()] == ["r.json"]


def test_write_atomic_under_a_file_is_a_usage_error_naming_it(tmp_path):
    from opskit.errors import UsageError

    (tmp_path / "afile").write_text("keep")
    with pytest.raises(UsageError, match=r"afile/x.xml: cannot write: .*afile is a file, not a folder"):
        out.write_atomic(tmp_path / "afile" / "x.xml", "data")
    assert (tmp_path / "afile").read_text() == "keep"


def test_write_atomic_onto_a_folder_is_a_usage_error_and_leaves_no_temp_file(tmp_path):
    from opskit.errors import UsageError

    (tmp_path / "d").mkdir()
    with pytest.raises(UsageError, match="d: cannot write: it is a folder"):
        out.write_atomic(tmp_path / "d", "data")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]
    assert list((tmp_path / "d").iterdir()) == []


def test_ensure_dir_refuses_a_file(tmp_path):
    from opskit.errors import UsageError

    (tmp_path / "f").write_text("")
    with pytest.raises(UsageError, match="f: cannot create the folder: .*f is a file, not a folder"):
        out.ensure_dir(tmp_path / "f")
