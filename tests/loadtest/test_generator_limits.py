"""What the generator needs for many keep-alive users (issue 16's 10,000): one open file per connection,
and a loop that keeps up. Real runs, a few seconds each, with the process limits set on a real child."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from opskit.loadtest import fdlimit, health

pytestmark = pytest.mark.slow
ROOT = Path(__file__).parents[2]

# users that each hold one connection and come back every second
HOLDING = (
    "from locust import constant, task\n"
    "from locust.contrib.fasthttp import FastHttpUser\n\n"
    "class Holder(FastHttpUser):\n"
    "    wait_time = constant(1)\n\n"
    "    @task\n"
    "    def get(self):\n"
    "        self.client.get('/', name='/')\n"
)


def _opskit(args: list[str], nofile: tuple[int, int]) -> subprocess.CompletedProcess[str]:
    def limit() -> None:  # in the child only: the test process keeps its own limit
        resource.setrlimit(resource.RLIMIT_NOFILE, nofile)

    return subprocess.run([sys.executable, "-m", "opskit", *args], capture_output=True, text=True, cwd=ROOT,
                          preexec_fn=limit, timeout=120, check=False)


def test_shortfall_names_the_processes_that_fit() -> None:
    assert fdlimit.shortfall("10,000 users", 10_000, 1, 20_000) is None
    assert fdlimit.shortfall("10,000 users", 10_000, 2, None) is None
    text = fdlimit.shortfall("10,000 users", 10_000, 1, 4_096)
    assert text is not None
    assert "needs about 10,050 open files" in text and "hard limit here is 4,096" in text
    assert "use `processes` 3 (or more)" in text  # 3,334 + 50 each fits under 4,096; 2 processes would not
    assert fdlimit.shortfall("10,000 users", 10_000, 3, 4_096) is None


def test_users_that_cannot_fit_under_the_hard_limit_are_refused_before_anything_starts(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = _opskit(["loadtest", "run", "users-10k", "--users", "400", "--duration", "5s", "--out", str(out)],
                   (256, 256))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "opskit: error: 400 users: the generator process needs about 450 open files (one per connection, plus "
        "50), and the hard limit here is 256 per process: use --processes 2 (or more), or raise the hard limit "
        "(ulimit -Hn; LimitNOFILE= under systemd)")
    assert "Traceback" not in proc.stderr and "starting the embedded" not in proc.stderr
    assert not out.exists()


def test_the_generator_lifts_its_soft_limit_and_keeps_one_connection_per_user(fast_server, tmp_path: Path) -> None:
    """300 users holding a connection each, started with a soft limit of 100 open files: the runner lifts
    it to the hard limit, so none fails for want of a file and none reconnects."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 1_000:
        pytest.skip(f"the hard limit here ({hard}) leaves no room above the soft one")
    lf = tmp_path / "holding.py"
    lf.write_text(HOLDING)
    out = tmp_path / "run"
    proc = _opskit(["loadtest", "run", "users-10k", "--locustfile", str(lf), "--host", fast_server.url,
                    "--users", "300", "--duration", "4s", "--out", str(out)], (100, hard))
    assert proc.returncode == 0, proc.stderr
    r = json.loads((out / "results.json").read_text())
    assert r["aggregate"]["failures"] == 0, r["aggregate"]["failures_by_kind"]
    assert r["aggregate"]["requests"] >= 300 and r["run"]["valid"]
    assert fast_server.connections == 300  # each user kept its one connection
    assert r["generator"]["lag_max_ms"] > 0  # the closed model's loop is probed


@pytest.mark.parametrize("processes", [1, 2])  # the local runner, and Locust workers
def test_connections_with_descriptors_above_1023_are_kept(invoke, fast_server, tmp_path: Path,
                                                          processes: int) -> None:
    """Past ~1,000 users a process's sockets get descriptors above 1,023, which select() cannot take:
    FastHttpUser's pool took each such connection for dead and reconnected on every request. Here the
    locustfile holds 1,100 files first, so every user's socket is above 1,023 with only 10 users."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 1_500:
        pytest.skip(f"the hard limit here ({hard}) leaves no room for 1,100 extra files")
    lf = tmp_path / "high_fds.py"
    lf.write_text("import os\nHELD = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]\n"
                  + HOLDING.replace("constant(1)", "constant(0.5)"))
    out = tmp_path / "run"
    result = invoke("loadtest", "run", "users-10k", "--locustfile", str(lf), "--host", fast_server.url,
                    "--users", "10", "--duration", "3s", "--processes", str(processes), "--out", str(out))
    assert result.exit_code == 0, result.stderr
    r = json.loads((out / "results.json").read_text())
    assert r["aggregate"]["failures"] == 0 and r["aggregate"]["requests"] >= 40  # several requests per user
    assert fast_server.connections == 10  # one each, kept between requests


def test_a_closed_model_generator_whose_loop_stalls_makes_the_run_invalid(invoke, fast_server, tmp_path: Path) -> None:
    """A user that holds the generator's loop for 1.5 s (as a starved or blocked process would): every
    user's timing waited on it, so the run is the generator's, not the service's."""
    lf = tmp_path / "stalling.py"
    lf.write_text(HOLDING + "\n    def on_start(self):\n"
                  "        import time\n"
                  "        t = time.perf_counter()\n"
                  "        while time.perf_counter() - t < 1.5:  # busy: no other greenlet runs meanwhile\n"
                  "            pass\n")
    out = tmp_path / "run"
    result = invoke("loadtest", "run", "users-10k", "--locustfile", str(lf), "--host", fast_server.url,
                    "--users", "1", "--duration", "3s", "--out", str(out))
    assert result.exit_code == 3, result.stderr
    r = json.loads((out / "results.json").read_text())
    assert r["run"]["valid"] is False and r["run"]["limited_by"] == "generator"
    assert "its loop woke 1." in r["run"]["invalid_reason"] and r["generator"]["lag_max_ms"] >= 1400


def test_failures_are_named_by_what_happened() -> None:
    # in a child: importing locust monkey-patches the interpreter (gevent), as only the runner may
    code = (
        "import errno, json\n"
        "from geventhttpclient.useragent import RetriesExceeded\n"
        "from opskit.loadtest.openmodel import failure_kind\n"
        "emfile = OSError(errno.EMFILE, 'Too many open files')\n"
        "url = 'http://127.0.0.1:1/'\n"
        "print(json.dumps([failure_kind(emfile, None),\n"
        "                  failure_kind(RetriesExceeded(url, 0, original=TimeoutError('timed out')), None),\n"
        "                  failure_kind(RetriesExceeded(url, 0, original=ConnectionResetError()), None),\n"
        "                  failure_kind(RetriesExceeded(url, 0, original=emfile), None)]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60,
                          check=True)
    # FastHttpUser's "retries exceeded" says nothing by itself: the error it wraps does
    assert json.loads(proc.stdout) == [health.OUT_OF_FILES, "timeout", "connection_reset", health.OUT_OF_FILES]
    assert health.OUT_OF_FILES == "generator: too many open files"


def test_requests_the_generator_failed_for_want_of_files_make_the_run_invalid() -> None:
    h = health.assess(cpu=[("0", [20.0] * 6)], duration_s=10.0, intended=None, sent=100, out_of_files=3)
    assert h.valid is False and h.limited_by == "generator"
    assert "3 requests failed with EMFILE in the generator itself" in (h.invalid_reason or "")


@pytest.mark.parametrize(("lag_ms", "valid"), [(900.0, True), (1200.0, False)])
def test_closed_model_loop_lag_over_a_second_is_the_generators(lag_ms: float, valid: bool) -> None:
    h = health.assess(cpu=[("0", [20.0] * 6)], duration_s=10.0, intended=None, sent=100, lag_max_ms=lag_ms)
    assert h.valid is valid and h.limited_by == ("none" if valid else "generator")
