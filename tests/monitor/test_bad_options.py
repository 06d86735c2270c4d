"""`opskit monitor up` refuses bad options before it starts anything (no Prometheus, no state written)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    p = tmp_path / "opskit.yaml"
    p.write_text("service: {name: asset-service, url: 'http://127.0.0.1:9'}\n")
    return p


@pytest.mark.parametrize("args, words", [
    (["--retention", "abc"], "--retention: expected a duration like 12h, 7d or 4w, got 'abc'"),
    (["--retention", "7 days"], "--retention: expected a duration like 12h, 7d or 4w, got '7 days'"),
    (["--target", "not a url"], "--target: expected a URL like http://127.0.0.1:8000, got 'not a url'"),
    (["--target", "http://127.0.0.1:99999"], "--target: bad port in 'http://127.0.0.1:99999'"),
    (["--port", "99999"], "99999 is not in the range 0<=x<=65535"),
    (["--scrape-interval", "-3s"], "--scrape-interval: expected a duration"),
])
def test_bad_up_options_start_nothing(invoke, tmp_path, spec, args, words):
    state = tmp_path / "state"
    result = invoke("monitor", "up", "--spec", str(spec), "--state-dir", str(state), "--port", "0", *args)
    assert result.exit_code == 2, result.output
    assert words in result.stderr
    assert not state.exists()


@pytest.mark.parametrize("text", ['{"pid": "x"', "[1, 2]", '{"pid": 1}'])
def test_a_damaged_state_file_is_reported_not_taken_for_not_running(invoke, tmp_path, text):
    home = tmp_path / "state" / "prometheus"
    home.mkdir(parents=True)
    (home / "state.json").write_text(text)
    status = invoke("monitor", "status", "--state-dir", str(tmp_path / "state"), "-o", "json")
    assert status.exit_code == 1
    assert "state.json is unreadable" in status.stderr and "may still be running" in status.stderr
    assert "state.json is unreadable" in json.loads(status.stdout)["state_error"]
    down = invoke("monitor", "down", "--state-dir", str(tmp_path / "state"))
    assert down.exit_code == 0
    assert "nothing stopped: the state file is unreadable" in down.stdout
    assert (home / "state.json").read_text() == text  # left for the person to look at
