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


def test_json_figures_are_rounded_alike_and_small_ones_keep_their_digits(capsys):
    """Every float a command prints as JSON: 3 decimals, or 4 significant digits when that keeps more
    (issue 18: 6299.605249474366 next to 2.361 next to 22 was three precisions in one answer)."""
    out.emit_json({"rate": 6299.605249474366, "share": 0.00012345, "price": 0.0416, "count": 22, "rps": 22.0,
                   "observed_s": 4.088697, "rows": [{"p95": 1259921.049894873}], "none": None, "neg": -2.36111})
    import json

    assert json.loads(capsys.readouterr().out) == {
        "rate": 6299.605, "share": 0.0001234, "price": 0.0416, "count": 22, "rps": 22.0, "observed_s": 4.089,
        "rows": [{"p95": 1259921.05}], "none": None, "neg": -2.361}


def test_json_instants_are_utc_with_a_z():
    import datetime as dt

    plus_two = dt.timezone(dt.timedelta(hours=2))
    assert out.to_jsonable({"at": dt.datetime(2026, 12, 6, 1, 0, tzinfo=plus_two)}) == {"at": "2026-12-05T23:00:00Z"}
    assert out.to_jsonable(dt.datetime(2026, 12, 5, 23, 0, tzinfo=dt.UTC)) == "2026-12-05T23:00:00Z"
    # an instant a journal recorded as +00:00 is printed the same way
    assert out.figures({"ts": "2026-12-05T23:33:22.902797+00:00", "text": "at 2026-12-05T23:33:22+00:00"}) == {
        "ts": "2026-12-05T23:33:22.902797Z", "text": "at 2026-12-05T23:33:22+00:00"}
