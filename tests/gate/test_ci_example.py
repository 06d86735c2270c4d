"""The example GitHub Actions workflow in docs/ stays in step with the command it calls."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from opskit.commands.gate import gate

WORKFLOW = Path(__file__).resolve().parents[2] / "docs" / "github-actions-gate.yml"


def test_workflow_is_valid_yaml_with_the_expected_steps() -> None:
    doc = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    steps = doc["jobs"]["smoke-gate"]["steps"]
    names = [s.get("name", s.get("uses", "")) for s in steps]
    assert any("Start the asset service" in n for n in names)
    run = next(s["run"] for s in steps if s.get("name") == "Load test and gate")
    assert "opskit loadtest run smoke" in run and "--gate" in run
    uses = [s.get("uses", "") for s in steps]
    assert any(u.startswith("actions/upload-artifact@") for u in uses)
    assert any(u.startswith("actions/cache/restore@") for u in uses)
    assert any(u.startswith("actions/cache/save@") for u in uses)
    # the service is always stopped, the reports are always uploaded
    for name in ("Upload the reports", "Stop the asset service"):
        assert next(s for s in steps if s.get("name") == name)["if"] == "always()"


def test_every_gate_option_the_workflow_uses_exists() -> None:
    known = {opt for p in gate.params for opt in getattr(p, "opts", [])}
    text = WORKFLOW.read_text(encoding="utf-8")
    run = text[text.index("- name: Load test and gate"):text.index("- name: Publish the JUnit report")]
    used = set(re.findall(r"(--(?:baseline|save-baseline|junit|markdown|tolerance|criteria|strict))\b", run))
    assert used and used <= known
