"""`opskit alerts test`: every proof about the committed rule files, as a list of check results."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from opskit.alerts import lint, tools
from opskit.errors import ConfigError

if TYPE_CHECKING:
    from opskit.spec.schema import Spec


@dataclass(frozen=True)
class Check:
    check: str
    target: str
    ok: bool
    detail: str


class RuleDoc(TypedDict, total=False):
    """One rule of a Prometheus rule file, as read (only what the checks look at)."""

    alert: str
    record: str
    expr: str
    labels: dict[str, str] | None


class RuleGroupDoc(TypedDict, total=False):
    name: str
    rules: list[RuleDoc] | None


class RuleFileDoc(TypedDict, total=False):
    groups: list[RuleGroupDoc] | None


class AlertCaseDoc(TypedDict, total=False):
    """One `alert_rule_test` case of a promtool test file."""

    alertname: str
    eval_time: str
    exp_alerts: list[dict[str, dict[str, str] | None]] | None  # exp_labels / exp_annotations


class TestGroupDoc(TypedDict, total=False):
    alert_rule_test: list[AlertCaseDoc] | None


class TestFileDoc(TypedDict, total=False):
    rule_files: list[str]
    tests: list[TestGroupDoc] | None


def _load(path: Path) -> Any:
    from opskit.spec.loader import parse_yaml

    return parse_yaml(path.read_text(encoding="utf-8"), str(path)).data


def coverage(rule_docs: dict[str, RuleFileDoc | None], test_docs: dict[str, TestFileDoc | None]) -> list[Check]:
    """Each alert (per severity) must fire in some test and stay silent in another."""
    fired: set[tuple[str, str]] = set()
    silent: set[str] = set()
    for tests in test_docs.values():
        for group in (tests or {}).get("tests") or []:
            for case in group.get("alert_rule_test") or []:
                name = case.get("alertname", "")
                alerts = case.get("exp_alerts") or []
                if not alerts:
                    silent.add(name)
                for alert in alerts:
                    fired.add((name, str((alert.get("exp_labels") or {}).get("severity", ""))))
    out = []
    for file, rules in rule_docs.items():
        for rule_group in (rules or {}).get("groups") or []:
            for rule in rule_group.get("rules") or []:
                if "alert" not in rule:
                    continue
                name, severity = rule["alert"], str((rule.get("labels") or {}).get("severity", ""))
                missing = []
                if (name, severity) not in fired:
                    missing.append("no test where it fires")
                if name not in silent:
                    missing.append("no test where it stays silent")
                out.append(Check("coverage", f"{file}: {name} ({severity or 'no severity'})", not missing,
                                 "; ".join(missing) or "fires on a breach, silent at normal load"))
    return out


def _unit_tests(directory: Path, test_files: list[Path]) -> list[Check]:
    """One promtool run per test file, side by side: each file is independent and promtool uses one core."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    def one(path: Path) -> Check:
        ok, output = tools.test_rules([path.relative_to(directory)], directory)
        failed = [line.strip() for line in output.splitlines() if "FAILED" in line or "alertname:" in line]
        return Check("promtool test rules", f"tests/{path.name}", ok,
                     "passed" if ok else "; ".join(failed[:6]) or output[-400:])

    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        return list(pool.map(one, test_files))


def run_checks(spec: Spec, directory: Path) -> list[Check]:
    from opskit.alerts.render import render_all

    ruleset, _ = render_all(spec)
    expected = {f.name: f.rule_count for f in ruleset.files}
    results: list[Check] = []
    rule_files = sorted(directory.glob("*.rules.yml"))
    for name in sorted(set(expected) - {p.name for p in rule_files}):
        results.append(Check("present", name, False, "missing: run opskit alerts render"))

    rule_docs: dict[str, RuleFileDoc | None] = {}
    for path in rule_files:
        try:
            rule_docs[path.name] = _load(path)
        except ConfigError as exc:
            results.append(Check("yaml", path.name, False, exc.message))
            continue
        ok, count, output = tools.check_rules(path)
        want = expected.get(path.name, lint.count_rules(rule_docs[path.name]))
        if not ok:
            results.append(Check("promtool check rules", path.name, False, output.splitlines()[-1] if output else ""))
        elif count != want or not count:
            results.append(Check("promtool check rules", path.name, False,
                                 f"promtool found {count} rules, the spec renders {want}"))
        else:
            results.append(Check("promtool check rules", path.name, True, f"{count} rules"))
        problems = lint.lint_document(path.name, rule_docs[path.name], spec.alerts.scrape_interval)
        results.append(Check("lint", path.name, not problems,
                             "; ".join(f"{p.rule}: [{p.check}] {p.message}" for p in problems) or "clean"))

    test_files = sorted((directory / "tests").glob("*.yml"))
    test_docs: dict[str, TestFileDoc | None] = {}
    for path in test_files:
        try:
            test_docs[path.name] = _load(path)
        except ConfigError as exc:
            results.append(Check("yaml", f"tests/{path.name}", False, exc.message))
    results += coverage(rule_docs, test_docs)
    if test_files:
        results += _unit_tests(directory, test_files)
    else:
        results.append(Check("promtool test rules", "tests/", False, "no unit tests"))

    am = directory / "alertmanager.yml"
    if not am.exists():
        results.append(Check("amtool check-config", am.name, False, "missing: run opskit alerts render"))
    else:
        ok, output = tools.check_alertmanager(am)
        results.append(Check("amtool check-config", am.name, ok, "valid" if ok else output.splitlines()[-1]))
        if ok:
            for severity, receiver in (("critical", "pager"), ("warning", "tickets"), ("info", "tickets")):
                ok, got = tools.route(am, {"severity": severity, "alertname": "Example"})
                results.append(Check("amtool route", f"severity={severity}", ok and got == receiver,
                                     f"-> {got} (want {receiver})"))
    return results
