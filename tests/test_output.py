from __future__ import annotations

import math

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
