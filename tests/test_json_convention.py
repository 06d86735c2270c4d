"""Every `--output json` follows one convention (docs/guide/json.md), checked mechanically.

The commands are found in the Click tree, so a new command with `--output json` fails
`test_every_json_command_is_exercised` until it gets an invocation in INVOCATIONS. Each invocation runs
for real, in-process, on small real inputs: a short load test against the embedded service (its
results.json also feeds gate, scale, capacity), a real probe, Prometheus, the local stack, a playbook
run with an exec step. The checks: the top level is an object; field names are snake_case; a number
whose name speaks of a share, a duration or a change carries its unit in the name (`_pct`, `_ratio`,
`_ms`, `_s`, ...); a percentile key sits in a block named with its unit (`latency_ms.p95`); every float
is rounded as opskit rounds figures. The few deliberate exceptions are listed with their reasons.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from opskit.output import figure

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "opskit.yaml"

# --- the convention ------------------------------------------------------------------------------------------

TIME_UNITS = ("_ms", "_us", "_s", "_min", "_h", "_days", "_months")
SHARE_UNITS = ("_pct", "_ratio")
UNITS = TIME_UNITS + SHARE_UNITS + ("_rps", "_monthly", "_usd", "_bytes", "_gb")
SHARE_WORDS = {"percent", "pct", "percentage", "ratio", "fraction", "share", "utilization", "usage"}
TIME_WORDS = {"latency", "duration", "elapsed", "timeout", "delay", "lag", "wait", "age", "uptime", "recovery",
              "window", "period", "stall", "seconds", "time"}
CHANGE_WORDS = {"change", "delta", "tolerance", "allowed", "diff", "growth", "margin", "headroom"}
PERCENTILE = re.compile(r"^p\d+$")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SNAKE = re.compile(r"^[a-z0-9_]+$")
INSTANT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d")

# key -> why it keeps a name the rules would flag (every one a deliberate, documented exception)
KEY_EXCEPTIONS = {
    "cpu_max": "generator.cpu_max (percent of one core) is a key design.md's contract names",
    "cpu_mean": "generator.cpu_mean: the pair of cpu_max, same unit",
}
# (command, key path) whose subtree is data as the user wrote it, not opskit's field names
DATA_PATHS = {
    ("playbook show", "playbook"): "the playbook document as written (Kubernetes-style apiVersion)",
    ("playbook plan", "steps[].args"): "each step's `with:` arguments as the playbook gives them to its provider",
}


def problems(doc: Any, command: str = "") -> list[str]:
    """What in one JSON answer breaks the convention, one line each (empty: it follows it)."""
    found: list[str] = []
    if not isinstance(doc, dict):
        return [f"top level is a {type(doc).__name__}, not an object (a list command answers {{\"items\": [...]}})"]

    def number(v: Any) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool)

    def check_key(key: str, value: Any, path: str, holder: str) -> None:
        if IDENTIFIER.match(key) and not SNAKE.match(key):
            found.append(f"{path}: not snake_case")
        numeric = number(value) or (isinstance(value, list) and value and all(number(x) for x in value))
        if not numeric or key in KEY_EXCEPTIONS:
            return
        words, named = set(key.split("_")), "_" + key  # "ratio" alone is named by its unit too
        if words & SHARE_WORDS and not named.endswith(SHARE_UNITS):
            found.append(f"{path}: a share without _pct (0..100) or _ratio (0..1) in its name")
        if words & TIME_WORDS and not named.endswith(TIME_UNITS):
            found.append(f"{path}: a duration without its unit (_ms, _s, ...) in its name")
        if words & CHANGE_WORDS and not named.endswith(UNITS):
            found.append(f"{path}: a change or tolerance without its scale (_pct, _ratio, _ms, ...) in its name")
        if PERCENTILE.match(key) and not holder.endswith(TIME_UNITS):
            found.append(f"{path}: a percentile outside a block named with its unit (latency_ms.{key})")

    def walk(node: Any, path: str, holder: str) -> None:
        if isinstance(node, float) and figure(node) != node:
            found.append(f"{path}: {node!r} is not rounded like every figure ({figure(node)!r})")
        if isinstance(node, str) and INSTANT.match(node) and not node.endswith("Z"):
            found.append(f"{path}: {node!r} is not an ISO 8601 instant in UTC with a Z")
        if isinstance(node, list):
            for item in node:
                walk(item, f"{path}[]", holder)
        elif isinstance(node, dict):
            for key, value in node.items():
                sub = f"{path}.{key}" if path else str(key)
                if (command, sub) in DATA_PATHS:
                    continue
                check_key(str(key), value, sub, holder)
                walk(value, sub, str(key))

    walk(doc, "", "")
    return found


def test_the_checker_catches_each_inconsistency_issue_18_names() -> None:
    assert problems([{"name": "smoke"}])  # the old `loadtest list -o json`
    old_gate = {"tolerance_pct": 10, "comparisons": [{"allowed": 0.1, "change": 29.86, "ci_low": 1.0}]}
    assert [p.split(":")[0] for p in problems(old_gate)] == ["comparisons[].allowed", "comparisons[].change"]
    assert problems({"rows": [{"delta": 1.5, "percent": 207.7}]}) == [
        "rows[].delta: a change or tolerance without its scale (_pct, _ratio, _ms, ...) in its name",
        "rows[].percent: a share without _pct (0..100) or _ratio (0..1) in its name"]
    assert problems({"timeline": [{"t": 0, "p95": 3.0}]}) == [
        "timeline[].p95: a percentile outside a block named with its unit (latency_ms.p95)"]
    assert problems({"observed_s": 4.088697}) == [
        "observed_s: 4.088697 is not rounded like every figure (4.089)"]
    assert problems({"now": "2026-12-05T23:17:34.238068+00:00"}) == [
        "now: '2026-12-05T23:17:34.238068+00:00' is not an ISO 8601 instant in UTC with a Z"]
    assert problems({"recovery": 1.5, "lagMaxMs": 2}) == [
        "recovery: a duration without its unit (_ms, _s, ...) in its name", "lagMaxMs: not snake_case"]
    good = {"scenarios": [{"name": "x", "peak_rate_rps": 2.361}], "change_pct": 2986.0, "allowed_pct": 10.0,
            "timeline": [{"t": 0, "latency_ms": {"p95": 3.0}}], "error_budget": 0.01, "cpu_max": 41.0,
            "endpoints": {"GET /api/assets": {"rps": 1.0}}, "ratio": 0.000125}
    assert problems(good) == []


# --- running every command -----------------------------------------------------------------------------------


def json_commands() -> list[str]:
    """Every command (or group that answers itself) with an --output option offering json."""
    from opskit.cli import cli

    ctx = click.Context(cli)
    found = []

    def visit(cmd: click.Command, path: list[str]) -> None:
        opt = next((p for p in cmd.params if isinstance(p, click.Option) and "--output" in p.opts), None)
        if opt is not None and isinstance(opt.type, click.Choice) and "json" in opt.type.choices:
            found.append(" ".join(path))
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                if sub is not None:
                    visit(sub, [*path, name])

    visit(cli, [])
    return sorted(found)


@dataclass
class Env:
    tmp: Path
    answers: dict[str, list[Any]] = field(default_factory=dict)
    results: Path | None = None  # a real short run's results.json
    stack_dir: str = ""  # searchable by the stack's unprivileged user (pytest's tmp_path is root's 0700)

    @property
    def state(self) -> str:
        return str(self.tmp / "state")


USL_CSV = "concurrency,throughput\n1,64.9\n18,995.9\n36,1652.4\n72,1853.2\n108,1828.9\n144,1775.0\n216,1702.2\n"
SAMPLES = {"now": "2026-01-01T00:00:00Z", "resources": {"api": {"replicas": 3}},
           "samples": [{"resource": "api", "metric": "cpu_utilization", "value": 50, "at": "2026-01-01T00:00:00Z"}]}
PY = sys.executable


def playbook_text(flag: Path) -> str:
    """A playbook whose second step fails until `flag` exists: apply halts there, resume finishes it."""
    need = [PY, "-c", "import os, sys; sys.exit(0 if os.path.exists(sys.argv[1]) else 1)", str(flag)]
    return f"""apiVersion: opskit/v1
kind: Playbook
metadata: {{name: convention, description: the JSON convention test's own playbook}}
lock: convention
steps:
  - {{id: a, action: exec, with: {{argv: {json.dumps([PY, "-c", "print('a')"])}}}}}
  - {{id: b, action: exec, with: {{argv: {json.dumps(need)}}}}}
on_failure: halt
"""


# command -> the argv lists it is run with, in order (each an answer checked); Env carries what earlier
# commands made. Commands run in the order of this table: producers first.
Invocation = Callable[[Env], list[list[str]]]
INVOCATIONS: dict[str, Invocation] = {
    "loadtest list": lambda e: [[]],
    "loadtest run": lambda e: [["smoke", "--duration", "3s", "--out", str(e.tmp / "run")]],
    "loadtest verify": lambda e: [["--period", "1s", "--stall", "0.2s", "--duration", "2s", "--rate", "50",
                                   "--out", str(e.tmp / "verify")]],
    "gate": lambda e: [[str(e.results)], [str(e.results), "--baseline", str(e.results)]],
    "scale check": lambda e: [["--source", "results", "--from", str(e.results)],
                              ["--source", "file", "--from", str(e.tmp / "samples.json")],
                              # --watch: one compact document per line and evaluation
                              ["--source", "file", "--from", str(e.tmp / "samples.json"), "--watch", "0.01",
                               "--count", "2"]],
    "capacity fit": lambda e: [["--data", str(e.tmp / "usl.csv")]],
    "capacity probe": lambda e: [["--start", "5", "--max-rate", "6", "--step", "2s", "--out", str(e.tmp / "probe")]],
    "capacity recommend": lambda e: [["--results", str(e.tmp / "probe")]],
    "capacity forecast": lambda e: [[]],
    "capacity plan": lambda e: [[]],
    "capacity report": lambda e: [["--out", str(e.tmp / "report.html")]],
    "cost estimate": lambda e: [["--all"]],
    "cost diff": lambda e: [["phase-1", "phase-2"]],
    "cost catalog": lambda e: [["--grep", "t3."]],
    "spec validate": lambda e: [[]],
    "alerts render": lambda e: [["--out", str(e.tmp / "alerts")]],
    "alerts test": lambda e: [["--dir", str(e.tmp / "alerts")]],
    "alerts lint": lambda e: [[]],
    "dashboards render": lambda e: [["--out", str(e.tmp / "dashboards")]],
    "dashboards validate": lambda e: [[str(e.tmp / "dashboards" / "loadtest.json")]],
    "service keys create": lambda e: [["--company", "acme", "--tier", "internal", "--db", str(e.tmp / "a.db")]],
    "service seed": lambda e: [["--assets", "5", "--companies", "2", "--db", str(e.tmp / "a.db")]],
    "stack up": lambda e: [["--state-dir", e.stack_dir]],
    "stack status": lambda e: [["--state-dir", e.stack_dir]],
    "stack down": lambda e: [["--state-dir", e.stack_dir]],
    "monitor up": lambda e: [["--port", "0", "--state-dir", e.state]],
    "monitor status": lambda e: [["--state-dir", e.state]],
    "monitor down": lambda e: [["--state-dir", e.state]],
    "playbook list": lambda e: [[]],
    "playbook show": lambda e: [["api-horizontal-scale"]],
    "playbook plan": lambda e: [["api-horizontal-scale", "-p", "replicas=4", "-p", "reason=capacity review 2027"]],
    "playbook apply": lambda e: [[str(e.tmp / "convention.yaml"), "--yes", "--state-dir", e.state]],
    "playbook runs": lambda e: [["--state-dir", e.state]],
    "playbook resume": lambda e: [[_run_id(e), "--yes", "--state-dir", e.state]],
}
# command -> why it is not run here (each must say where its JSON is built and checked instead)
NOT_RUN: dict[str, str] = {
    "playbook approve": "answers with the outcome document of apply and resume (commands/playbook.py _finish), "
                        "both checked here; a queued run needs `playbook serve` and an alert "
                        "(tests/playbooks/test_serve.py)",
}


def documents(stdout: str) -> list[Any]:
    """stdout as one JSON document, or (a watch loop) one document per line; anything else fails."""
    try:
        return [json.loads(stdout)]
    except json.JSONDecodeError:
        return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def _run_id(e: Env) -> str:
    (e.tmp / "flag").touch()  # what made step b fail is fixed: resume finishes the run
    return str(e.answers["playbook apply"][0]["run_id"])


@pytest.fixture(scope="module")
def answers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, list[Any]]]:
    import os
    import shutil
    import tempfile

    from opskit.cli import cli

    env = Env(tmp_path_factory.mktemp("json-convention"), stack_dir=tempfile.mkdtemp(prefix="opskit-json-"))
    os.chmod(env.stack_dir, 0o711)
    (env.tmp / "usl.csv").write_text(USL_CSV)
    (env.tmp / "samples.json").write_text(json.dumps(SAMPLES))
    (env.tmp / "convention.yaml").write_text(playbook_text(env.tmp / "flag"))
    runner = CliRunner()
    started: list[list[str]] = []
    try:
        for command, argvs in INVOCATIONS.items():
            for argv in argvs(env):
                args = [*command.split(), *argv, "--output", "json"]
                res = runner.invoke(cli, args, env={"OPSKIT_SPEC": str(SPEC), "GITHUB_STEP_SUMMARY": ""},
                                    catch_exceptions=False)
                if command in ("stack up", "monitor up"):
                    started.append([*command.split()[:1], "down", "--state-dir", args[args.index("--state-dir") + 1]])
                # 1 is an answer too ("no": the halted playbook, a failing dashboard); its JSON is checked
                assert res.exit_code in (0, 1), f"opskit {' '.join(args)}: exit {res.exit_code}: {res.stderr[-600:]}"
                env.answers.setdefault(command, []).extend(documents(res.stdout))
            if command == "loadtest run":
                env.results = env.tmp / "run" / "results.json"
                env.answers["results.json"] = [json.loads(env.results.read_text())]
            if command == "capacity probe":
                env.answers["probe results.json"] = [json.loads((env.tmp / "probe" / "results.json").read_text())]
            if command in ("stack down", "monitor down"):
                started = [s for s in started if s[0] != command.split()[0]]
        yield env.answers
    finally:
        for argv in started:  # a failed step above must not leave PostgreSQL or Prometheus running
            runner.invoke(cli, argv)
        shutil.rmtree(env.stack_dir, ignore_errors=True)


def test_every_json_command_is_exercised() -> None:
    missing = [c for c in json_commands() if c not in INVOCATIONS and c not in NOT_RUN]
    assert missing == [], f"add an invocation to INVOCATIONS for {missing} (its JSON must follow the convention)"
    assert set(INVOCATIONS) <= set(json_commands()), "INVOCATIONS names a command that is gone"


@pytest.mark.parametrize("command", [*json_commands(), "results.json", "probe results.json"])
def test_json_follows_the_convention(answers: dict[str, list[Any]], command: str) -> None:
    if command in NOT_RUN:
        pytest.skip(NOT_RUN[command])
    docs = answers[command]
    assert docs, command
    for doc in docs:
        assert problems(doc, command) == [], f"{command}: {json.dumps(doc)[:300]}"
