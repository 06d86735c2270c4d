"""Grafana dashboards from opskit.yaml: RED, saturation (with every threshold row's scale lines), SLOs and load
tests. Built with grafana-foundation-sdk, schemaVersion 42; returned as JSON-ready dicts, nothing written."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opskit.alerts import promql
from opskit.alerts.grafana import Builder
from opskit.alerts.loadtest_metrics import (
    DROPPED,
    FAILURES,
    LOADTEST_JOB,
    REQUESTS,
    RESPONSE_TIME,
    TARGET_RPS,
    USERS,
)

if TYPE_CHECKING:
    from opskit.spec.schema import Spec

H = promql.HISTOGRAM
UNITS = {"percent": "percent", "ms": "ms", "count": "short", "bytes": "bytes"}
QUANTILES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))


def _job(spec: Spec, *extra: str) -> str:
    return promql.matchers(*extra, job=spec.service.job)


def red(spec: Spec) -> dict[str, Any]:
    sel = _job(spec, 'route=~"$route"')
    timed = _job(spec, 'route=~"$route"', promql.not_own_routes())  # latency: the service's own routes never count
    five = _job(spec, 'route=~"$route"', 'status_code=~"5.."')
    rate = "[$__rate_interval]"
    slo_text = "; ".join(
        f"{s.endpoint}: " + ", ".join(f"{k} < {v:g}ms" for k, v in (s.latency.model_dump().items() if s.latency
                                                                    else []) if v is not None)
        for s in spec.slos)
    b = Builder(f"{spec.service.name}: RED", "opskit-red",
                "Rate, errors and duration of the asset service by route, from its own histogram.", ["red"])
    b.variable("route", "Route", f"label_values({H}_count{_job(spec)}, route)")
    b.row("Rate")
    b.timeseries("Request rate by route", [(f"sum by (method, route) (rate({H}_count{sel}{rate}))",
                                            "{{method}} {{route}}")], unit="reqps", minimum=0)
    b.timeseries("Requests by status code", [(f"sum by (status_code) (rate({H}_count{sel}{rate}))",
                                              "{{status_code}}")], unit="reqps", minimum=0)
    b.row("Errors")
    b.timeseries("Error ratio (5xx) by route",
                 [(f"sum by (method, route) (rate({H}_count{five}{rate}))\n/\n"
                   f"sum by (method, route) (rate({H}_count{sel}{rate}))", "{{method}} {{route}}")],
                 unit="percentunit", minimum=0, description="Share of requests answered 5xx: the availability SLI.")
    b.timeseries("Asset operations by outcome",
                 [(f"sum by (operation, status) (rate(asset_operations_total{_job(spec)}{rate}))",
                   "{{operation}} {{status}}")], unit="ops", minimum=0)
    b.row("Duration")
    for name, q in QUANTILES:
        b.timeseries(f"Latency {name} by route",
                     [(f"histogram_quantile({q:g}, sum by (le, method, route) (rate({H}_bucket{timed}{rate})))",
                       "{{method}} {{route}}")],
                     unit="s", minimum=0, width=8, description=f"SLO latencies: {slo_text}")
    b.timeseries("File processing p95 by file type",
                 [("histogram_quantile(0.95, sum by (le, file_type) "
                   f"(rate(file_processing_duration_seconds_bucket{_job(spec)}{rate})))", "{{file_type}}")],
                 unit="s", minimum=0, width=24)
    return b.to_json()


def saturation(spec: Spec) -> dict[str, Any]:
    from opskit.alerts.model import Note
    from opskit.alerts.rules import format_threshold, threshold_alerts

    job = _job(spec)
    rate = "[$__rate_interval]"
    b = Builder(f"{spec.service.name}: saturation", "opskit-saturation",
                "CPU, memory, workers and store size of the service, and every scaling threshold of opskit.yaml "
                "with its scale-up (red) and scale-down (blue) lines.", ["saturation"])
    b.row("Service")
    b.timeseries("CPU (cores busy)", [(f"sum(rate(process_cpu_seconds_total{job}{rate}))", "cores")],
                 unit="short", minimum=0, width=8)
    b.timeseries("CPU per worker", [(f"100 * sum(rate(process_cpu_seconds_total{job}{rate}))"
                                     f" / sum(assetsvc_workers{job})", "% of one core per worker")],
                 unit="percent", minimum=0, width=8)
    b.timeseries("Memory (resident)", [(f"sum by (instance) (process_resident_memory_bytes{job})", "{{instance}}")],
                 unit="bytes", minimum=0, width=8)
    b.timeseries("Workers", [(f"sum(assetsvc_workers{job})", "workers")], unit="short", minimum=0, width=8)
    b.timeseries("Store size (database + WAL)", [(f"sum(assetsvc_storage_bytes{job})", "bytes")],
                 unit="bytes", minimum=0, width=8)
    b.timeseries("Assets stored", [(f"sum(assetsvc_assets_stored{job})", "assets")], unit="short", minimum=0,
                 width=8)
    notes: list[Note] = []
    rows = threshold_alerts(spec, notes)
    if rows:
        b.row("Scaling thresholds (opskit.yaml thresholds:)")
    for t in rows:
        row = t.row
        steps: list[tuple[float | None, str]] = [(None, "green")]
        if row.scale_down is not None:
            steps = [(None, "blue"), (row.scale_down, "green")]
        steps.append((row.scale_up, "red"))
        down = f", scale down below {format_threshold(row.unit, row.scale_down)}" if row.scale_down is not None else ""
        b.timeseries(f"{row.resource} {row.metric.replace('_', ' ')}", [(t.query, row.key)],
                     unit=UNITS[row.unit], minimum=0, width=8, steps=steps,
                     description=(f"Alert {t.rule.alert}: above {format_threshold(row.unit, row.scale_up or 0)} "
                                  f"for {t.rule.for_}{down}. The query is the alert's own."))
    return b.to_json()


def slos(spec: Spec) -> dict[str, Any]:
    from opskit.alerts.slo import BURN_WINDOWS, burn_factor, slis

    b = Builder(f"{spec.service.name}: SLOs", "opskit-slos",
                "Error budget remaining and burn rates per SLO, from the recording rules of alerts/slo-*.rules.yml.",
                ["slo"])
    current = None
    for sli in slis(spec):
        if sli.slo != current:
            current = sli.slo
            b.row(f"SLO {sli.slo}: {sli.method} {sli.route}")
        what = f"{sli.sli} ({sli.objective * 100:.4g}% over {sli.period})"
        b.stat(f"{sli.slo} {what}: budget remaining", sli.ref("slo:error_budget_remaining:ratio"),
               unit="percentunit", width=6,
               steps=[(None, "red"), (0, "orange"), (0.25, "yellow"), (0.5, "green")],
               description="1 - errors over the period / error budget. Below 0: the SLO is missed.")
        b.stat(f"{sli.slo} {sli.sli}: SLI over {sli.period}",
               f"1 - {sli.ref('slo:sli_error:ratio_rate' + sli.period)}", unit="percentunit", width=6,
               steps=[(None, "red"), (sli.objective, "green")])
        burn = [(f"{sli.ref('slo:sli_error:ratio_rate' + w)} / {sli.ref('slo:error_budget:ratio')}", w)
                for w in ("5m", "1h", "6h", "1d", "3d")]
        factors = sorted({burn_factor(w, sli.period_seconds) for w in BURN_WINDOWS})
        colors = ["blue", "yellow", "orange", "red"]
        steps: list[tuple[float | None, str]] = [(None, "green")] + [
            (f, colors[min(i, len(colors) - 1)]) for i, f in enumerate(factors)]
        b.timeseries(f"{sli.slo} {sli.sli}: burn rate", burn, unit="short", minimum=0, width=12, height=5,
                     steps=steps, description="Error ratio / budget per window. Lines: "
                     + ", ".join(f"{f:g}x" for f in factors) + " (ticket at 1x/3x, page at 6x/14.4x).")
    return b.to_json()


def loadtest(spec: Spec) -> dict[str, Any]:
    sel = '{run_id=~"$run_id",scenario=~"$scenario"}'
    rate = "[$__rate_interval]"
    b = Builder("opskit load tests", "opskit-loadtest",
                f"Client-side metrics of opskit load-test runs, scraped from the runner (job {LOADTEST_JOB}), next "
                "to what the service itself measured.", ["loadtest"])
    b.variable("scenario", "Scenario", f"label_values({REQUESTS}, scenario)")
    b.variable("run_id", "Run", f'label_values({REQUESTS}{{scenario=~"$scenario"}}, run_id)')
    b.row("Load")
    b.timeseries("Offered vs achieved rate", [(f"sum by (run_id) ({TARGET_RPS}{sel})", "offered {{run_id}}"),
                                              (f"sum by (run_id) (rate({REQUESTS}{sel}{rate}))",
                                               "achieved {{run_id}}")],
                 unit="reqps", minimum=0,
                 description="Open-model runs offer a fixed rate; achieved below offered means the system "
                             "under test (or the runner) is saturated.")
    b.timeseries("Users", [(f"sum by (run_id) ({USERS}{sel})", "{{run_id}}")], unit="short", minimum=0)
    b.timeseries("Failure ratio", [(f"sum by (run_id) (rate({FAILURES}{sel}{rate})) / "
                                    f"sum by (run_id) (rate({REQUESTS}{sel}{rate}))", "{{run_id}}")],
                 unit="percentunit", minimum=0)
    b.timeseries("Dropped arrivals", [(f"sum by (run_id) (rate({DROPPED}{sel}{rate}))", "{{run_id}}")],
                 unit="short", minimum=0,
                 description="Arrivals the open model could not start (no free user): offered load was not sent.")
    b.row("Latency")
    b.timeseries("Client latency", [
        (f"histogram_quantile({q:g}, sum by (le) (rate({RESPONSE_TIME}_bucket{sel}{rate})))", name)
        for name, q in QUANTILES], unit="s", minimum=0)
    b.timeseries("Client vs service p95", [
        (f"histogram_quantile(0.95, sum by (le) (rate({RESPONSE_TIME}_bucket{sel}{rate})))", "client p95"),
        (f"histogram_quantile(0.95, sum by (le) (rate({H}_bucket{_job(spec, promql.not_own_routes())}{rate})))",
         "service p95")],
        unit="s", minimum=0,
        description="The gap is time outside the service (network, queueing in the runner).")
    b.timeseries("Client p95 by request", [
        (f"histogram_quantile(0.95, sum by (le, name) (rate({RESPONSE_TIME}_bucket{sel}{rate})))", "{{name}}")],
        unit="s", minimum=0, width=24)
    return b.to_json()


DASHBOARDS = {"asset-service-red.json": red, "asset-service-saturation.json": saturation,
              "asset-service-slos.json": slos, "loadtest.json": loadtest}


def build_all(spec: Spec) -> dict[str, dict[str, Any]]:
    return {name: build(spec) for name, build in DASHBOARDS.items()}


def render_dashboards(spec: Spec) -> dict[str, str]:
    """Every file `opskit dashboards render` writes, keyed by path relative to the dashboards folder.
    Each dashboard is validated against the SDK's JSON schema first; a failure is opskit's bug (exit 3)."""
    import json

    from opskit.alerts.model import GENERATED_HEADER
    from opskit.alerts.render import environment
    from opskit.alerts.schemacheck import validate_dashboard
    from opskit.errors import RuntimeFailure
    from opskit.spec.checks import require_valid

    require_valid(spec)
    files: dict[str, str] = {}
    problems: list[str] = []
    for name, doc in build_all(spec).items():
        problems += [f"{name}: {p}" for p in validate_dashboard(doc)]
        files[name] = json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if problems:
        raise RuntimeFailure("rendered dashboards fail the Grafana JSON schema", details=problems[:20])
    env = environment()
    files["provisioning/datasources/opskit.yml"] = env.get_template("grafana-datasource.yml.j2").render(
        header=GENERATED_HEADER, name="Prometheus (opskit)", uid="opskit-prometheus",
        url="http://127.0.0.1:9090", scrape_interval=promql.window(spec.alerts.scrape_interval))
    files["provisioning/dashboards/opskit.yml"] = env.get_template("grafana-dashboards.yml.j2").render(
        header=GENERATED_HEADER, folder="opskit", path="/var/lib/grafana/dashboards/opskit")
    return dict(sorted(files.items()))
