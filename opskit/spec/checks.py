"""Checks across keys of a valid spec that the schema cannot make on one field: an SLO latency must be a
bucket bound of the service's histogram, an availability must leave an error budget, threshold rows must
not repeat. `spec validate`, `alerts render`/`test` and `dashboards render` all ask this one function, so
a spec one of them accepts is never refused by another. Pure: the spec in, problems (key path, what) out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from opskit.errors import ConfigError

if TYPE_CHECKING:
    from opskit.spec.loader import Loc
    from opskit.spec.schema import Spec


@dataclass(frozen=True)
class SpecIssue:
    loc: Loc  # key path of the culprit, e.g. ('slos', 0, 'latency', 'p95')
    message: str


class SpecProblem(Exception):
    """A spec the renderers cannot use as it is; `issues` name each culprit by key path."""

    def __init__(self, issues: list[SpecIssue]) -> None:
        super().__init__("; ".join(i.message for i in issues))
        self.issues = issues


def _ms(value: float) -> str:
    return f"{value:g}ms"


def _alert_stem(*words: str) -> str:
    # the same folding alert names use ('api', 'cpu-utilization' == 'api', 'cpu_utilization'): two rows that
    # fold together would render two alerts of one name
    return "".join(p[:1].upper() + p[1:] for p in re.split(r"[^A-Za-z0-9]+", " ".join(words)) if p)


def spec_issues(spec: Spec) -> list[SpecIssue]:
    """Every cross-key problem of the spec, in file order."""
    issues: list[SpecIssue] = []
    buckets = spec.service.latency_buckets_ms
    for i, slo in enumerate(spec.slos):
        if slo.availability is not None and not 0 < slo.availability < 100:
            issues.append(SpecIssue(("slos", i, "availability"),
                                    f"{slo.availability:g}% leaves no error budget to alert on (use 0 < x < 100)"))
        if slo.latency is None:
            continue
        for pct, bound in slo.latency.model_dump().items():
            if bound is not None and bound not in buckets:
                issues.append(SpecIssue(
                    ("slos", i, "latency", pct),
                    f"{_ms(bound)} is not a bucket bound of the service histogram, so the latency SLI cannot be "
                    f"read from it; service.latency_buckets_ms is {', '.join(f'{b:g}' for b in buckets)} (ms): "
                    f"add {bound:g} there (and to the service) or pick one of them"))
    seen: dict[str, int] = {}
    for i, row in enumerate(spec.thresholds):
        stem = _alert_stem(row.resource, row.metric)
        if stem in seen:
            issues.append(SpecIssue(("thresholds", i),
                                    f"{row.key} repeats thresholds[{seen[stem]}] (one row per resource and metric)"))
        seen.setdefault(stem, i)
    return issues


def require_valid(spec: Spec) -> None:
    """Raise SpecProblem when the spec has cross-key problems (cores call this before rendering)."""
    issues = spec_issues(spec)
    if issues:
        raise SpecProblem(issues)


def located_error(path: str | Path, issues: list[SpecIssue]) -> ConfigError:
    """The problems as `spec validate` prints schema problems: file:line: key.path: what, one line each."""
    from opskit.spec.loader import format_loc, read_located

    located = read_located(path)
    lines = [f"{path}:{located.line_of(i.loc)}: {format_loc(i.loc)}: {i.message}" for i in issues]
    if len(lines) == 1:
        return ConfigError(lines[0])
    return ConfigError(f"{path}: {len(lines)} problem(s)", details=lines)
