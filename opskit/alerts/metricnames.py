"""Which metric names the rendered rules read, and which of them a target does not export (pure).

Promtool and the lint pass a rule on `http_requests_total` when the service exports
`http_request_duration_seconds`: the rule is valid PromQL that can never fire. `alerts render
--check-metrics URL` compares the names with what the target exports (its /metrics page, or a Prometheus
server's whole name list).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from opskit.alerts.model import RuleSet

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
# a selector's braces, skipping quoted label values that hold braces themselves (route="/api/assets/{id}")
_SELECTOR = re.compile(r'\{(?:[^}"\']|"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\')*\}')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_RANGE = re.compile(r"\[[^\]]*\]")
_NAME = re.compile(r"(?<![\w:.])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left",
             "group_right", "inf", "nan", "atmodifier"}
_JOB = re.compile(r'\bjob\s*=\s*"((?:[^"\\]|\\.)*)"')
# histograms and summaries are exported as one family with these sample suffixes
SUFFIXES = ("_bucket", "_count", "_sum", "_created", "_total")
# series Prometheus makes itself for every target: never on a /metrics page
SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling",
             "scrape_series_added"}


@dataclass(frozen=True)
class MetricRef:
    file: str
    rule: str
    metric: str
    job: str | None  # the job="..." matcher of the selector, if any


def names_in(expr: str) -> list[tuple[str, str | None]]:
    """(metric name, job matcher) of every series selector in a PromQL expression; recorded series
    (names with a colon) and function names are left out."""
    matchers: list[str] = []

    def keep(m: re.Match[str]) -> str:
        matchers.append(m.group(0))
        return "{" + str(len(matchers) - 1) + "}"

    # keep each selector's braces aside before strings go, so job="x" survives
    text = _SELECTOR.sub(keep, expr)
    text = _GROUPING.sub(" ", _RANGE.sub(" ", _STRING.sub('""', text)))
    out: list[tuple[str, str | None]] = []
    for m in _NAME.finditer(text):
        name = m.group(1)
        rest = text[m.end():].lstrip()
        if name.lower() in _KEYWORDS or ":" in name or rest.startswith("("):
            continue
        job = None
        if m.group(2):
            found = _JOB.search(matchers[int(m.group(2)[1:-1])])
            job = found.group(1) if found else None
        out.append((name, job))
    return out


def references(ruleset: RuleSet) -> list[MetricRef]:
    refs = []
    for f in ruleset.files:
        for g in f.groups:
            for rule in g.rules:
                for name, job in dict.fromkeys(names_in(rule.expr)):
                    refs.append(MetricRef(f.name, rule.name, name, job))
    return refs


def exported(name: str, names: set[str]) -> bool:
    """Whether a sample name is exported: as is, or as a sample of an exported family."""
    if name in names or name in SYNTHETIC:
        return True
    return any(name.endswith(s) and name[: -len(s)] in names for s in SUFFIXES)


def verdict(refs: Iterable[MetricRef], names: set[str], job: str, server: bool) -> tuple[
        list[MetricRef], list[MetricRef]]:
    """(refused, noted) references to names not exported. A Prometheus server (`server`) knows every name:
    all are refused. /metrics pages vouch for the service's job: its selectors are refused, selectors with
    no job matcher are noted (their exporter may not be among the pages), other jobs are not checked."""
    absent = [r for r in refs if not exported(r.metric, names)]
    if server:
        return absent, []
    return [r for r in absent if r.job == job], [r for r in absent if r.job is None]
