"""The one subprocess wrapper: argv only, captured output, a timeout that kills, and a clear error when a
binary is missing. The playbooks' own edge cases (Ctrl-C, process groups) are in tests/playbooks."""

from __future__ import annotations

import sys

import pytest

from opskit.errors import RuntimeFailure
from opskit.proc import find_binary, run_argv, run_tool


def test_output_is_stdout_then_stderr_and_the_exit_status_is_kept() -> None:
    done = run_argv([sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(4)"],
                    timeout=30)
    assert (done.returncode, done.ok, done.output) == (4, False, "out\nerr")


def test_argv_must_be_a_list_not_a_command_line() -> None:
    with pytest.raises(ValueError, match="argv must be a non-empty list of strings"):
        run_argv("echo hi", timeout=5)  # type: ignore[arg-type]


def test_a_missing_binary_is_an_answer_for_run_argv_and_a_failure_for_run_tool(tmp_path) -> None:
    done = run_argv([str(tmp_path / "no-such-tool")], timeout=5)
    assert done.returncode is None and not done.ok and "cannot run" in (done.error or "")
    assert done.output == done.error
    with pytest.raises(RuntimeFailure, match="cannot run .*no-such-tool"):
        run_tool([str(tmp_path / "no-such-tool")], timeout=5)


def test_run_tool_stops_a_tool_that_hangs() -> None:
    with pytest.raises(RuntimeFailure, match=r"did not finish within 0.5s"):
        run_tool([sys.executable, "-c", "import time; time.sleep(60)"], timeout=0.5)


def test_find_binary_says_how_to_install_what_is_missing() -> None:
    assert find_binary(sys.executable, "n/a") == sys.executable
    with pytest.raises(RuntimeFailure, match=r"opskit-no-such-tool not found on PATH \(is it installed\? apt-get"):
        find_binary("opskit-no-such-tool", "apt-get install it")
