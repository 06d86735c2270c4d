"""Atomic file writes: a reader never sees half a file, and a path that cannot be written is one clear error."""

from __future__ import annotations

import os
import stat

import pytest

from opskit import atomicio


def test_write_atomic_replaces_whole_file_with_normal_permissions(tmp_path):
    target = tmp_path / "sub" / "r.json"
    atomicio.write_atomic(target, "one")
    atomicio.write_atomic(target, b"two")
    assert target.read_text() == "two"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in target.parent.iterdir()] == ["r.json"]


def test_write_atomic_under_a_file_is_a_usage_error_naming_it(tmp_path):
    from opskit.errors import UsageError

    (tmp_path / "afile").write_text("keep")
    with pytest.raises(UsageError, match=r"afile/x.xml: cannot write: .*afile is a file, not a folder"):
        atomicio.write_atomic(tmp_path / "afile" / "x.xml", "data")
    assert (tmp_path / "afile").read_text() == "keep"


def test_write_atomic_onto_a_folder_is_a_usage_error_and_leaves_no_temp_file(tmp_path):
    from opskit.errors import UsageError

    (tmp_path / "d").mkdir()
    with pytest.raises(UsageError, match="d: cannot write: it is a folder"):
        atomicio.write_atomic(tmp_path / "d", "data")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]
    assert list((tmp_path / "d").iterdir()) == []


def test_ensure_dir_refuses_a_file(tmp_path):
    from opskit.errors import UsageError

    (tmp_path / "f").write_text("")
    with pytest.raises(UsageError, match="f: cannot create the folder: .*f is a file, not a folder"):
        atomicio.ensure_dir(tmp_path / "f")
