"""The rule model and the rendered rule files: which alerts the spec produces and what their PromQL says."""

from __future__ import annotations

import re

import pytest
import yaml

from opskit.alerts import promql
from opskit.alerts.lint import histogram_problems, is_burn_rate
from opskit.alerts.rules import build
from opskit.alerts.slo import BURN_WINDOWS, burn_factor
from opskit.spec.loader import parse_yaml, validate
from opskit.spec.schema import Spec

from .conftest import SPEC


def load(data=None) -> Spec:
    if data is None:
        return validate(Spec, parse_yaml(SPEC.read_text(), str(SPEC)))
    return validate(Spec, parse_yaml(yaml.safe_dump(data), "spec.yaml"))


def alerts_by_name(ruleset):
    return {r.alert: r for f in ruleset.files for r in f.alerts}


def test_seed_thresholds_produce_the_expected_alert_set():
    ruleset = build(load())
    thresholds = {t.rule.alert: t for t in ruleset.thresholds}
    assert sorted(thresholds) == sorted([
        "ApiCpuUtilizationHigh", "ApiMemoryUtilizationHigh", "ApiResponseTimeP95High",
        "DatabaseCpuUtilizationHigh", "DatabaseIopsHigh", "DatabaseStorageUtilizationHigh",
        "RedisMemoryUtilizationHigh", "RedisConnectionsHigh"])
    spec = load()
    for t in thresholds.values():
        row = spec.thresholds[t.index]
        assert t.rule.expr.endswith(f") > {row.scale_up:g}")
        assert t.rule.labels["severity"] == row.severity
        assert t.rule.labels["resource"] == row.resource
        assert t.rule.for_ == promql.window(row.for_ or spec.alerts.default_for)
    # storage has no for: in the seed: it waits the documented default instead of firing on one sample
    assert thresholds["DatabaseStorageUtilizationHigh"].rule.for_ == "5m"
    assert thresholds["DatabaseIopsHigh"].rule.for_ == "10m"


def test_runbook_urls_point_at_the_bound_playbook_or_the_fallback():
    spec = load()
    alerts = alerts_by_name(build(spec))
    base = spec.alerts.runbook_base_url
    assert alerts["ApiCpuUtilizationHigh"].annotations["runbook_url"] == base + "api-horizontal-scale.yaml"
    assert alerts["ApiMemoryUtilizationHigh"].annotations["runbook_url"] == base + "api-vertical-scale.yaml"
    assert alerts["DatabaseIopsHigh"].annotations["runbook_url"] == base + "db-increase-size.yaml"
    # the redis rows name no playbook
    assert alerts["RedisConnectionsHigh"].annotations["runbook_url"] == spec.alerts.runbooks.threshold
    assert alerts["ListAssetsAvailabilityBudgetBurn"].annotations["runbook_url"] == spec.alerts.runbooks.slo
    assert alerts["AssetServiceTargetDown"].annotations["runbook_url"] == spec.alerts.runbooks.health


def test_runbook_name_resolves_like_a_playbook(seed_spec):
    seed_spec["alerts"]["runbooks"]["slo"] = "slo-burn"
    seed_spec["alerts"]["runbook_base_url"] = "https://runbooks.example/pb"
    alerts = alerts_by_name(build(load(seed_spec)))
    assert alerts["UploadLatencyP95BudgetBurn"].annotations["runbook_url"] == "https://runbooks.example/pb/slo-burn.yaml"


def test_threshold_annotations_carry_the_value_and_the_threshold():
    alerts = alerts_by_name(build(load()))
    rt = alerts["ApiResponseTimeP95High"]
    assert '{{ $value | printf "%.0f" }}ms' in rt.annotations["description"]
    assert "500ms" in rt.annotations["summary"] and "100ms" in rt.annotations["description"]
    cpu = alerts["ApiCpuUtilizationHigh"]
    assert '{{ $value | printf "%.1f" }}%' in cpu.annotations["summary"] and "70%" in cpu.annotations["summary"]


def test_latency_threshold_uses_rate_of_buckets_summed_by_le():
    """Seed 000's histogram_quantile(0.95, http_request_duration_seconds) never fires; ours is the fixed form."""
    rt = alerts_by_name(build(load()))["ApiResponseTimeP95High"]
    assert re.search(r"histogram_quantile\(0\.95, sum by \(le\) \(rate\(http_request_duration_seconds_bucket"
                     r"\{job=\"asset-service\",route!~\"/metrics\|/health\|/ready\"\}\[\d+m\]\)\)\)", rt.expr)
    assert histogram_problems(rt.expr) == []
    assert histogram_problems("histogram_quantile(0.95, http_request_duration_seconds) > 1")
    assert histogram_problems("histogram_quantile(0.9, sum(rate(x_bucket[5m])))")
    assert histogram_problems("histogram_quantile(0.9, sum by (le) (x_bucket))")
    assert histogram_problems("histogram_quantile(0.9, sum without (instance) (rate(x_bucket[5m])))") == []


def test_default_queries_cover_rows_without_prometheus_query(seed_spec):
    ruleset = build(load())
    by_metric = {(t.row.resource, t.row.metric): t for t in ruleset.thresholds}
    db_cpu = by_metric[("database", "cpu_utilization")]
    if db_cpu.default_query:  # the example writes its own; the stack defaults: tests/stack/test_defaults.py
        assert 'groupname="postgres"' in db_cpu.query
        assert any("database.cpu_utilization" in n.where and "default query" in n.text for n in ruleset.notes)
    for row in seed_spec["thresholds"]:
        if (row["resource"], row["metric"]) == ("database", "cpu_utilization"):
            row.pop("queries", None)
    seed_spec["alerts"]["resource_selectors"] = {"database": 'job="node",role="db"'}
    db_cpu = {t.row.key: t for t in build(load(seed_spec)).thresholds}["database.cpu_utilization"]
    assert 'node_cpu_seconds_total{job="node",role="db",mode="idle"}' in db_cpu.query


def test_unknown_metric_without_query_is_skipped_with_a_note(seed_spec):
    seed_spec["thresholds"].append({"resource": "queue", "metric": "backlog_age", "scale_up": 30})
    ruleset = build(load(seed_spec))
    assert "QueueBacklogAgeHigh" not in alerts_by_name(ruleset)
    assert any(n.where.endswith("queue.backlog_age") and "no alert" in n.text for n in ruleset.notes)


def test_target_mode_rows_get_no_alert(seed_spec):
    seed_spec["thresholds"] = [{"resource": "api", "metric": "cpu_utilization", "target": "60%"}]
    ruleset = build(load(seed_spec))
    assert ruleset.thresholds == [] and any("HPA target" in n.text for n in ruleset.notes)


@pytest.mark.parametrize("period_days, factors", [(30, [14.4, 6, 3, 1]), (28, [13.44, 5.6, 2.8, 0.933333])])
def test_burn_factors_follow_the_period(period_days, factors):
    assert [burn_factor(w, period_days * 86400) for w in BURN_WINDOWS] == factors


def test_slo_rules_record_every_window_and_page_or_ticket():
    ruleset = build(load())
    slo_file = next(f for f in ruleset.files if f.name == "slo-list-assets.rules.yml")
    records = [r for r in slo_file.groups[0].rules if r.record]
    for sli in ("availability", "latency-p95"):
        mine = {r.record for r in records if r.labels["sli"] == sli}
        for w in ("5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d"):
            assert f"slo:sli_error:ratio_rate{w}" in mine
        assert {"slo:error_budget:ratio", "slo:error_budget_remaining:ratio", "slo:objective:ratio"} <= mine
    page, ticket = [r for r in slo_file.alerts if r.alert == "ListAssetsAvailabilityBudgetBurn"]
    assert page.labels["severity"] == "critical" and ticket.labels["severity"] == "warning"
    assert "ratio_rate1h" in page.expr and "ratio_rate5m" in page.expr and "(14.4 * 0.001)" in page.expr
    assert "ratio_rate6h" in page.expr and "ratio_rate30m" in page.expr and "(6 * 0.001)" in page.expr
    assert "ratio_rate1d" in ticket.expr and "ratio_rate2h" in ticket.expr and "(3 * 0.001)" in ticket.expr
    assert "ratio_rate3d" in ticket.expr and "ratio_rate6h" in ticket.expr and "(1 * 0.001)" in ticket.expr
    assert is_burn_rate(page.expr) and page.for_ is None


def test_latency_sli_reads_the_bucket_of_the_slo_bound():
    ruleset = build(load())
    upload = next(f for f in ruleset.files if f.name == "slo-upload.rules.yml").groups[0].rules
    errors = next(r for r in upload if r.record == "slo:sli_errors:rate5m" and r.labels["sli"] == "latency-p95")
    # 5s: Python clients write le="5.0", Go clients le="5"; the matcher takes both
    assert 'le=~"5|5\\\\.0"' in errors.expr
    assert 'method="POST",route="/api/assets/upload"' in errors.expr
    availability = next(r for r in upload if r.record == "slo:sli_errors:rate5m" and r.labels["sli"] == "availability")
    assert 'status_code=~"5.."' in availability.expr


def test_le_spellings():
    assert promql.le_values(0.2) == ["0.2"]
    assert promql.le_values(1) == ["1", "1.0"]
    assert promql.le_matcher(0.005) == 'le="0.005"'


def test_no_company_id_anywhere():
    ruleset = build(load())
    for f in ruleset.files:
        for g in f.groups:
            for r in g.rules:
                assert "company_id" not in r.expr and "company_id" not in r.labels


def test_templates_are_sandboxed_and_strict():
    from jinja2.exceptions import UndefinedError
    from jinja2.sandbox import SandboxedEnvironment

    from opskit.alerts.render import environment

    env = environment()
    assert isinstance(env, SandboxedEnvironment)
    with pytest.raises(UndefinedError):
        env.from_string("{{ missing }}").render()


@pytest.mark.parametrize("labels, message", [({"severity": "x"}, "set by opskit"), ({"bad-name": "x"}, "label name")])
def test_extra_labels_are_checked(labels, message, seed_spec):
    from opskit.errors import ConfigError

    seed_spec["alerts"]["labels"] = labels
    with pytest.raises(ConfigError) as err:
        load(seed_spec)
    assert message in "\n".join(err.value.details) + err.value.message


def test_a_custom_latency_query_without_a_route_matcher_gets_a_note(seed_spec):
    row = next(r for r in seed_spec["thresholds"] if r["metric"] == "response_time_p95")
    row["queries"]["prometheus"] = ("1000 * histogram_quantile(0.95, sum by (le) "
                                    '(rate(http_request_duration_seconds_bucket{job="asset-service"}[1m])))')
    notes = [n for n in build(load(seed_spec)).notes if n.where.endswith("api.response_time_p95")]
    assert any('no route matcher: the service\'s own /metrics and /health count in it (add '
               'route!~"/metrics|/health|/ready")' in n.text for n in notes), notes
    assert not [n for n in build(load()).notes if "route matcher" in n.text]  # the committed spec filters
