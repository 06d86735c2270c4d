"""The closed scaling loop, end to end, all real (issue 8, "The closed loop, end to end"):

the reference service with 1 worker -> `opskit loadtest run` (open model) -> `opskit scale check --source
results --act --yes` says scale_up for the api p95 and hands over to `local-horizontal-scale` -> the playbook
adds a worker and verifies it -> the same load again has a lower p95. Every step goes through the CLI.

The load is offered at 1.1x what one worker serves (measured just before with a short closed-model run;
raised to 1.25x, 1.4x, then 1.55x, while the threshold holds), so the test adapts to the machine's speed: one worker
falls behind for the whole run (p95 0.7-1 s and growing), two keep up (p95 30-260 ms on an idle machine).
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "closed-loop"
SPEC = EXAMPLE / "opskit.yaml"
LOAD = EXAMPLE / "load.yaml"
OVERLOAD = (1.1, 1.25, 1.4, 1.55)  # offered rate / one worker's capacity, tried in turn (why: examples/closed-loop)


def _results(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text())


def _workers(url: str) -> int:
    return int(httpx.get(f"{url}/health", timeout=5, trust_env=False).json()["workers"])


def _capacity(invoke, load: list[str], env: dict[str, str], out: Path) -> float:
    result = invoke(*load, "--users", "4", "--duration", "4s", "--out", str(out), env=env)
    assert result.exit_code == 0, result.stdout + result.stderr
    return float(_results(out)["aggregate"]["rps"])


def test_closed_loop_scales_the_local_service_and_lowers_p95(invoke, tmp_path):
    from opskit.localservice import LocalService

    with LocalService(workers=1, seed_assets=2000, tenants=1, extra_args=["--no-page-cache"], spec=SPEC) as svc:
        env = {"OPSKIT_API_KEYS": f"company-1={svc.key}"}
        load = ["loadtest", "run", str(LOAD), "--spec", str(SPEC), "--host", svc.url]
        assert _workers(svc.url) == 1

        # the rate: above what one worker serves, measured here and now with a short closed-model run that
        # keeps it busy (4 requests in flight), so the machine's speed and load set it, not a constant
        one = _capacity(invoke, load, env, tmp_path / "capacity-1")
        assert one > 20, f"one worker served only {one:.0f} req/s"

        # 1-2. load the one worker until the api p95 threshold is breached: the check reads each run, and once
        # it says scale_up it hands over to the bound playbook and applies it (--act --yes). The first level
        # nearly always breaches; the next ones are for a calibration taken while other work held the CPU.
        for level, factor in enumerate(OVERLOAD):
            rate = str(round(factor * one))
            before_dir, state = tmp_path / f"before-{level}", tmp_path / f"state-{level}"
            before = invoke(*load, "--rate", rate, "--duration", "10s", "--out", str(before_dir), env=env)
            assert before.exit_code == 0, before.stdout + before.stderr
            run_before = _results(before_dir)
            assert run_before["run"]["valid"] is True, run_before["run"]
            p95_before = run_before["aggregate"]["latency_ms"]["p95"]
            check = invoke("scale", "check", "--spec", str(SPEC), "--source", "results", "--from", str(before_dir),
                           "--act", "--yes", "--state-dir", str(state), "--output", "json")
            doc = json.loads(check.stdout)
            [row] = [d for d in doc["decisions"] if d["metric"] == "response_time_p95"]
            assert row["value"] == pytest.approx(p95_before)
            if row["decision"] == "scale_up":
                break
            assert _workers(svc.url) == 1, "scaled although the threshold held"
        else:
            pytest.fail(f"one worker kept its p95 under 500ms up to {rate} req/s ({p95_before:.0f} ms)")

        assert check.exit_code == 1, check.stdout + check.stderr  # 1 = "should scale" (and it was handed over)
        assert row["value"] > row["scale_up"] == 500
        api = doc["resources"]["api"]
        assert (api["decision"], api["current"], api["recommended"]) == ("scale_up", 1, 2)
        [handoff] = doc["handoffs"]
        assert handoff["playbook"] == "local-horizontal-scale" and handoff["status"] == "handed over", handoff
        assert handoff["params"]["workers"] == 2 and handoff["params"]["target"] == svc.url

        # 3. the service really has two workers now
        assert _workers(svc.url) == 2

        # 4. the journal holds the whole run: start, the step's outcome, verification samples, end
        [run_dir] = (state / "runs").iterdir()
        events = [json.loads(line) for line in (run_dir / "journal.jsonl").read_text().splitlines()]
        kinds = [e["event"] for e in events]
        assert kinds[0] == "run_start" and kinds[-1] == "run_end", kinds
        assert events[0]["playbook"] == "local-horizontal-scale"
        assert events[0]["params"]["workers"] == 2
        [scale_end] = [e for e in events if e["event"] == "step_end" and e["step"] == "scale"]
        assert scale_end["outcome"] == "ok", scale_end
        assert scale_end["captures"]["previous_workers"] == 1 and scale_end["captures"]["workers"] == 2
        samples = [e for e in events if e["event"] == "verify_sample"]
        assert {s["check"] for s in samples} == {"workers-match", "workers-exported"}
        assert len(samples) >= 5 and all(s["result"] == "pass" and s["value"] == 2 for s in samples), samples
        assert all(e["result"] == "pass" for e in events if e["event"] == "verify_end")
        assert events[-1]["status"] == "succeeded", events[-1]

        # 5. the same load again: lower p95
        after = invoke(*load, "--rate", rate, "--duration", "10s", "--out", str(tmp_path / "after"), env=env)
        assert after.exit_code == 0, after.stdout + after.stderr
        run_after = _results(tmp_path / "after")
        assert run_after["run"]["valid"] is True, run_after["run"]
        assert run_after["run"]["intended_rate"] == run_before["run"]["intended_rate"]
        p95_after = run_after["aggregate"]["latency_ms"]["p95"]
        # margin: pairs measured on the otherwise idle 2-core VM: 983 -> 261, 663 -> 29, 727 -> 119 ms (3.8-23x
        # lower). With other suites running (load average 2.5-3.8), still 1.7-2.3x (1633 -> 854, 2826 -> 1638,
        # 2560 -> 1097 ms), unless that work took the second worker's CPU entirely. 1.5x is below every pair
        # in which the second worker got a core, and far above run-to-run noise.
        assert p95_after < p95_before / 1.5, (p95_before, p95_after)
