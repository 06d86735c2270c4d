"""`opskit cost diff --base REV`: the spec at a git revision against the working tree, in a real git repository."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from opskit.cli import cli
from opskit.cost.diff import parse_fail_above

SPEC = Path(__file__).resolve().parents[2] / "opskit.yaml"

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false",
                           *args], cwd=repo, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path) -> Path:
    root = tmp_path / "repo"
    (root / "ops").mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    (root / "README").write_text("x\n", encoding="utf-8")
    git(root, "add", "README")
    git(root, "commit", "-q", "-m", "no spec yet")
    git(root, "tag", "before-spec")
    # the spec below the repository root, as a monorepo keeps it
    (root / "ops" / "opskit.yaml").write_text(SPEC.read_text(encoding="utf-8"), encoding="utf-8")
    git(root, "add", "ops/opskit.yaml")
    git(root, "commit", "-q", "-m", "spec")
    return root


def edit(repo: Path, old: str, new: str) -> None:
    spec = repo / "ops" / "opskit.yaml"
    text = spec.read_text(encoding="utf-8")
    assert old in text
    spec.write_text(text.replace(old, new), encoding="utf-8")


def run(repo: Path, *args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, ["cost", "diff", "--spec", str(repo / "ops" / "opskit.yaml"), *args], env=env)


def test_per_resource_and_component_changes_against_head(repo):
    # phase-1: 3 -> 6 API instances, a NAT gateway added; phase-2 untouched
    edit(repo, "{name: api, kind: compute, instance: t3.medium, count: 3,",
         "{name: api, kind: compute, instance: t3.medium, count: 6,")
    edit(repo, "      - {name: lb, kind: load_balancer, count: 1}\n",
         "      - {name: lb, kind: load_balancer, count: 1}\n      - {name: nat, kind: nat_gateway}\n")
    r = run(repo, "--base", "HEAD", "-o", "json")
    assert r.exit_code == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["base"] == "HEAD" and [p["plan"] for p in d["plans"]] == ["phase-1", "phase-2", "phase-3"]
    p1 = d["plans"][0]
    rows = {(x["resource"], x["component"]): x for x in p1["rows"]}
    inst = rows[("api", "Instance usage (Linux, on-demand, t3.medium)")]
    assert inst["delta_monthly"] == pytest.approx(3 * 730 * 0.0416, abs=0.01)
    assert rows[("api", "")]["delta_monthly"] == pytest.approx(93.02, abs=0.02)  # instances + root volumes
    nat = rows[("nat", "")]
    assert nat["base_monthly"] is None and nat["head_monthly"] == pytest.approx(730 * 0.045, abs=0.01)
    assert p1["delta_monthly"] == pytest.approx(93.02 + 32.85, abs=0.02)
    assert p1["change_pct"] == pytest.approx(p1["delta_monthly"] / p1["base_monthly"] * 100, abs=0.1)
    assert d["plans"][1]["delta_monthly"] == 0 and d["plans"][1]["rows"] == []
    table = run(repo, "--base", "HEAD", "--plan", "phase-1")
    assert table.exit_code == 0 and "Plan phase-1: HEAD -> working tree" in table.stdout
    assert "phase-2" not in table.stdout and "+$125.88 (+44.2%)" in table.stdout


def test_fail_above_amount_and_percent_is_the_ci_guardrail(repo, tmp_path):
    edit(repo, "{name: api, kind: compute, instance: m5.xlarge, count: 8}",
         "{name: api, kind: compute, instance: m5.xlarge, count: 10}")  # phase-3: +2 x $140.16 + volumes
    increase = 2 * (730 * 0.192 + 8 * 0.08)
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n", encoding="utf-8")
    r = run(repo, "--base", "main", "--fail-above", "$200", "-o", "md", env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert r.exit_code == 1
    assert r.stderr.startswith(f"opskit: error: plan phase-3: +${increase:,.2f}/month")
    assert "above the --fail-above limit of $200.00" in r.stderr
    assert r.stdout.startswith("### Cost change vs `main` (USD/month)")
    assert "> **Over the limit:** plan phase-3" in r.stdout and "#### Plan `phase-3`" in r.stdout
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("earlier step\n### Cost change vs `main`") and "Over the limit" in text
    assert run(repo, "--base", "main", "--fail-above", f"${increase + 1:.0f}").exit_code == 0
    # phase-3 costs thousands: +$282 is a few percent
    assert run(repo, "--base", "main", "--fail-above", "25%").exit_code == 0
    assert run(repo, "--base", "main", "--fail-above", "1%").exit_code == 1
    # decreases never trip the guardrail
    edit(repo, "count: 10}", "count: 2}")
    assert run(repo, "--base", "main", "--fail-above", "$0").exit_code == 0


def test_a_spec_new_since_the_base_makes_every_plan_new(repo):
    r = run(repo, "--base", "before-spec", "--fail-above", "25%", "-o", "json")
    assert r.exit_code == 1  # from nothing, any increase is above any percentage
    d = json.loads(r.stdout)
    assert all(p["base_monthly"] is None and p["change_pct"] is None for p in d["plans"])
    assert len(d["breaches"]) == 3 and "(new plan)" in d["breaches"][0]


def test_usage_errors(repo, tmp_path):
    r = run(repo, "--base", "no-such-branch")
    assert r.exit_code == 2 and "--base no-such-branch: git cannot read opskit.yaml there" in r.stderr
    assert run(repo, "--base", "HEAD", "--fail-above", "lots").exit_code == 2
    r = run(repo, "--base", "HEAD", "--plan", "phase-9")
    assert r.exit_code == 2 and "no plan named 'phase-9'" in r.stderr
    r = run(repo, "phase-1", "phase-2", "--base", "HEAD")
    assert r.exit_code == 2 and "not both" in r.stderr
    r = run(repo, "--fail-above", "$5", "phase-1", "phase-2")
    assert r.exit_code == 2 and "go with --base" in r.stderr
    r = run(repo, "phase-1")
    assert r.exit_code == 2 and "give two plans" in r.stderr
    edit(repo, "service:", "service:\n  bogus: 1\n  x:")
    git(repo, "commit", "-q", "-am", "broken spec")
    edit(repo, "service:\n  bogus: 1\n  x:", "service:")
    r = run(repo, "--base", "HEAD")
    assert r.exit_code == 2 and "the spec at --base HEAD is not valid" in r.stderr
    outside = tmp_path / "plain"
    outside.mkdir()
    shutil.copy(SPEC, outside / "opskit.yaml")
    r = CliRunner().invoke(cli, ["cost", "diff", "--spec", str(outside / "opskit.yaml"), "--base", "HEAD"])
    assert r.exit_code == 2 and "is not inside a git repository" in r.stderr


def test_two_plan_diff_still_works(repo):
    r = run(repo, "phase-1", "phase-2", "-o", "json")
    assert r.exit_code == 0 and json.loads(r.stdout)["a"] == "phase-1"


def test_a_changed_instance_type_is_one_changed_component(repo):
    edit(repo, "{name: cache, kind: cache, instance: cache.t3.medium, count: 1,",
         "{name: cache, kind: cache, instance: cache.m5.large, count: 1,")
    d = json.loads(run(repo, "--base", "HEAD", "--plan", "phase-1", "-o", "json").stdout)
    rows = [r for r in d["plans"][0]["rows"] if r["component"]]
    assert [(r["component_id"], r["component"]) for r in rows] == [("nodes", "Cache nodes (Redis, 1 x cache.m5.large)")]
    assert rows[0]["delta_monthly"] == pytest.approx(730 * (0.156 - 0.068), abs=0.01)


def test_the_example_workflow_runs_cost_diff_with_options_that_exist():
    from opskit.commands.cost import diff

    workflow = Path(__file__).resolve().parents[2] / "docs" / "github-actions-gate.yml"
    job = yaml.safe_load(workflow.read_text(encoding="utf-8"))["jobs"]["cost-diff"]
    assert job["steps"][0]["with"]["fetch-depth"] == 0  # the base commit must be in the clone
    script = next(s["run"] for s in job["steps"] if s.get("name") == "Cost diff against the base branch")
    line = next(ln for ln in script.splitlines() if "opskit cost diff" in ln)
    known = {opt for p in diff.params for opt in getattr(p, "opts", [])}
    used = set(re.findall(r"(?<!\S)(--[a-z-]+)", line))
    assert {"--base", "--fail-above", "--output"} <= used <= known
    # the documented limit parses
    assert parse_fail_above(re.search(r"--fail-above (\S+)", line).group(1)).pct == 25
