"""`opskit scale check` with bad sources and options: the documented exit code, one message, valid JSON."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from .test_file_results import results_doc

SPEC = """
service: {name: asset-service}
thresholds:
  - {resource: api, metric: response_time_p95, scale_up: 5ms, scale_down: 1ms,
     queries: {results: aggregate.latency_ms.p95, prometheus: 'histogram_quantile(0.95, x)', host: cpu}}
resources: {api: {min: 1, max: 8, current: 2}}
"""


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    p = tmp_path / "opskit.yaml"
    p.write_text(SPEC)
    return p


@pytest.mark.parametrize("body, words", [
    ('{"schema_version": 1,\n "run": ', "r.json:2: not valid JSON: truncated"),
    ("", "r.json: the file is empty"),
    ('{"schema_version": 7}', "schema_version is 7"),
    ('{"schema_version": 1, "run": {}}', "run.started_at and run.ended_at must be ISO-8601 times"),
])
def test_a_results_file_that_cannot_answer_exits_3(invoke, tmp_path, spec, body, words):
    (tmp_path / "r.json").write_text(body)
    result = invoke("scale", "check", "--spec", str(spec), "--source", "results", "--from",
                    str(tmp_path / "r.json"), "-o", "json")
    assert result.exit_code == 3, result.output
    assert words in result.stderr and "internal error" not in result.stderr
    assert result.stdout == ""


def test_a_missing_results_file_cannot_answer(invoke, tmp_path, spec):
    # like gate and capacity: results that are not there cannot answer the question (exit 3)
    result = invoke("scale", "check", "--spec", str(spec), "--source", "results", "--from", str(tmp_path / "no.json"))
    assert result.exit_code == 3 and "no such results file" in result.stderr


def test_run_valid_must_be_a_boolean(invoke, tmp_path, spec):
    (tmp_path / "r.json").write_text(json.dumps(results_doc(valid="yes")))
    result = invoke("scale", "check", "--spec", str(spec), "--source", "results", "--from", str(tmp_path / "r.json"))
    assert result.exit_code == 3, result.output
    assert "run.valid: expected true or false, got 'yes'" in result.stderr


def test_from_with_the_host_source_is_refused(invoke, spec):
    result = invoke("scale", "check", "--spec", str(spec), "--source", "host", "--from", "/x")
    assert result.exit_code == 2
    assert "--from does not apply to --source host" in result.stderr


@pytest.mark.parametrize("option", ["--interval", "--timeout", "--watch"])
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_seconds_options_must_be_finite(invoke, spec, option, value):
    result = invoke("scale", "check", "--spec", str(spec), "--source", "host", option, value)
    assert result.exit_code == 2
    assert f"{value!r} is not a finite number" in result.stderr


class _Answer(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def odd_prometheus() -> Iterator[tuple[str, type[_Answer]]]:
    """A real loopback server answering in Prometheus's envelope with bodies of the wrong shape."""
    handler = type("Handler", (_Answer,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.parametrize("data", [
    {"resultType": "matrix", "result": "x"},
    {"resultType": "vector", "result": [{"metric": {}}]},
    {"resultType": "vector", "result": [{"value": [1e400, "1"]}]},
    {"resultType": "matrix", "result": [{"values": [[1, 2, 3]]}]},
])
def test_a_malformed_prometheus_result_is_no_data_not_an_internal_error(invoke, tmp_path, spec, odd_prometheus, data):
    url, handler = odd_prometheus
    handler.body = json.dumps({"status": "success", "data": data}).encode()
    result = invoke("scale", "check", "--spec", str(spec), "--prometheus", url, "--state-dir", str(tmp_path / "st"),
                    "-o", "json")
    assert result.exit_code == 3, result.output
    doc = json.loads(result.stdout)
    assert doc["decisions"][0]["decision"] == "no_data"
    assert "malformed" in doc["decisions"][0]["reason"]
    assert "internal error" not in result.stderr
