"""Offline checks where promtool is silent (it passes a broken histogram_quantile and an alert with no
runbook). Pure: takes parsed rule documents, returns problems named by file and rule."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from opskit.alerts.promql import range_windows
from opskit.units import parse_duration


@dataclass(frozen=True)
class Problem:
    file: str
    rule: str
    check: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.rule}: [{self.check}] {self.message}"


_BURN_WINDOW = re.compile(r":ratio_rate(\w+)")
_AGGREGATION = re.compile(r"\b(sum|avg|min|max|count|group|stddev|stdvar|topk|bottomk|quantile)\b")
_BY_LE = re.compile(r"\bby\s*\([^)]*\ble\b[^)]*\)")
_WITHOUT = re.compile(r"\bwithout\s*\(([^)]*)\)")
_RATE = re.compile(r"\b(rate|irate|increase)\s*\(")
_GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
FORBIDDEN_GROUPING = ("company_id",)


def is_burn_rate(expr: str) -> bool:
    """A multi-window burn-rate alert compares error ratios over two or more windows; its short window is
    what keeps it from flapping, so it needs no `for`."""
    return len(set(_BURN_WINDOW.findall(expr))) >= 2


def call_arguments(expr: str, function: str) -> list[list[str]]:
    """The top-level arguments of every call of `function` in `expr`."""
    calls = []
    for match in re.finditer(rf"\b{function}\s*\(", expr):
        depth, args, start = 1, [], match.end()
        i = start
        while i < len(expr) and depth:
            ch = expr[i]
            if ch in "([{":
                depth += 1
            elif ch in ")]}":
                depth -= 1
            elif ch == "," and depth == 1:
                args.append(expr[start:i].strip())
                start = i + 1
            elif ch == '"':  # skip string literals: they may hold parentheses and commas
                i = expr.find('"', i + 1)
                while i > 0 and expr[i - 1] == "\\":
                    i = expr.find('"', i + 1)
                if i < 0:
                    break
            i += 1
        args.append(expr[start:i - 1].strip())
        calls.append(args)
    return calls


def histogram_problems(expr: str) -> list[str]:
    out = []
    for args in call_arguments(expr, "histogram_quantile"):
        if len(args) != 2:
            out.append("histogram_quantile takes (φ, buckets)")
            continue
        inner = args[1]
        if _AGGREGATION.search(inner):
            without = _WITHOUT.search(inner)
            keeps_le = _BY_LE.search(inner) or (without and "le" not in re.split(r"\W+", without.group(1)))
            if not keeps_le:
                out.append(f"histogram_quantile over an aggregation that drops le: {inner!r} "
                           "(aggregate with sum by (le, ...))")
        elif "_bucket" not in inner:
            out.append(f"histogram_quantile without le buckets: {inner!r} is not a _bucket series "
                       "(use sum by (le) (rate(NAME_bucket[5m])))")
        if re.search(r"(?<![:\w])[a-zA-Z_]\w*_bucket\b", inner) and not _RATE.search(inner):
            out.append(f"histogram_quantile over raw counters {inner!r}: take rate() of the _bucket series")
    return out


def rule_problems(file: str, rule: dict[str, Any], scrape_interval: float) -> list[Problem]:
    name = str(rule.get("alert") or rule.get("record") or "(unnamed)")
    expr = str(rule.get("expr", ""))
    problems: list[Problem] = []

    def add(check: str, message: str) -> None:
        problems.append(Problem(file, name, check, message))

    if "alert" in rule:
        for_ = rule.get("for")
        try:
            for_s = parse_duration(str(for_)) if for_ else 0.0
        except ValueError:
            add("shape", f"for: expected a duration like 5m, got {for_!r}")
            for_s = None
        if for_s == 0 and not is_burn_rate(expr):
            add("for", "no for: — it fires on one bad evaluation (give for:, or make it a burn-rate alert)")
        annotations, labels = rule.get("annotations") or {}, rule.get("labels") or {}
        for key, value in (("annotations", annotations), ("labels", labels)):
            if not isinstance(value, dict):
                add("shape", f"{key}: expected a mapping, got {value!r}")
        if not isinstance(annotations, dict) or not str(annotations.get("runbook_url", "")).strip():
            add("runbook", "no runbook_url annotation")
        for label in FORBIDDEN_GROUPING:
            if isinstance(labels, dict) and label in labels:
                add("grouping", f"{label} label on an alert: one notification per tenant")
    for message in histogram_problems(expr):
        add("histogram", message)
    floor = 4 * scrape_interval
    for w in sorted(set(range_windows(expr))):
        try:
            seconds = parse_duration(w)
        except ValueError:
            continue
        if seconds < floor:
            add("rate-window", f"range [{w}] is under 4 scrape intervals ({floor:g}s): rates will be jumpy or empty")
    for grouping in _GROUPING.findall(expr):
        for label in FORBIDDEN_GROUPING:
            if re.search(rf"\b{label}\b", grouping):
                add("grouping", f"groups by {label}: a series per tenant (cardinality) and an alert per tenant")
    return problems


def lint_document(file: str, doc: Any, scrape_interval: float) -> list[Problem]:
    if not isinstance(doc, dict) or not isinstance(doc.get("groups"), list):
        return [Problem(file, "(file)", "shape", "not a rule file: expected a top-level 'groups' list")]
    problems: list[Problem] = []
    # promtool refuses a file of the wrong shape; say where here too instead of failing on it
    for i, group in enumerate(doc["groups"]):
        if not isinstance(group, dict):
            problems.append(Problem(file, f"groups[{i}]", "shape", "expected a mapping with name and rules"))
            continue
        rules = group.get("rules") or []
        if not isinstance(rules, list):
            problems.append(Problem(file, f"groups[{i}]", "shape", "rules: expected a list of rules"))
            continue
        for j, rule in enumerate(rules):
            if not isinstance(rule, dict):
                problems.append(Problem(file, f"groups[{i}].rules[{j}]", "shape", "expected a mapping (a rule)"))
                continue
            problems += rule_problems(file, rule, scrape_interval)
    return problems


def count_rules(doc: Any) -> int:
    if not isinstance(doc, dict) or not isinstance(doc.get("groups"), list):
        return 0
    return sum(len(g["rules"]) for g in doc["groups"] if isinstance(g, dict) and isinstance(g.get("rules"), list))
