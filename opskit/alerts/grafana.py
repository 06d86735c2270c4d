"""Thin helpers over grafana-foundation-sdk builders: the panel kinds opskit uses, with legends on (the SDK
hides them by default), the datasource as a variable, and stable panel ids."""

from __future__ import annotations

import itertools
import warnings
from types import SimpleNamespace
from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
GENERATED_TAG = "generated-by-opskit"


def sdk() -> SimpleNamespace:
    """The SDK modules. Its v1 dashboard builder warns at import ("prefer dashboardv2"): schemaVersion 42
    is the v1 model, on purpose, so that warning is expected and silenced here only."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from grafana_foundation_sdk.builders import common, dashboard, prometheus, stat, timeseries
        from grafana_foundation_sdk.cog.encoder import JSONEncoder
        from grafana_foundation_sdk.models import common as common_models
        from grafana_foundation_sdk.models import dashboard as dashboard_models
    return SimpleNamespace(common=common, dashboard=dashboard, prometheus=prometheus, stat=stat,
                           timeseries=timeseries, JSONEncoder=JSONEncoder, cm=common_models, dm=dashboard_models)


class Builder:
    """One dashboard: hands out panel ids in order, so the JSON is the same on every render."""

    def __init__(self, title: str, uid: str, description: str, tags: list[str]) -> None:
        self.g = sdk()
        self._ids = itertools.count(1)
        self.dashboard = (
            self.g.dashboard.Dashboard(title).uid(uid).description(description)
            .tags(["opskit", GENERATED_TAG, *tags]).refresh("30s").time("now-3h", "now")
            .timezone("browser").editable().tooltip(self.g.dm.DashboardCursorSync.CROSSHAIR)
            # firing alerts (of the rules in alerts/) drawn on every time series panel
            .annotation(self.g.dashboard.AnnotationQuery().name("Alerts firing").enable(True)
                        .datasource(self.g.cm.DataSourceRef(**_ref())).icon_color("red")
                        .expr('ALERTS{alertstate="firing"}').title_format("{{alertname}}")
                        .text_format("{{severity}} {{slo}} {{sli}} {{resource}}").step("1m"))
            .with_variable(self.g.dashboard.DatasourceVariable("datasource").label("Data source")
                           .type("prometheus"))
        )

    def variable(self, name: str, label: str, query: str, *, multi: bool = True) -> Builder:
        g = self.g
        var = (g.dashboard.QueryVariable(name).label(label).query(query)
               .datasource(g.cm.DataSourceRef(type_val="prometheus", uid="${datasource}"))
               .refresh(g.dm.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(g.dm.VariableSort.ALPHABETICAL_ASC)
               .multi(multi).include_all(multi))
        if multi:
            var = var.all_value(".*")
        self.dashboard = self.dashboard.with_variable(var)
        return self

    def row(self, title: str) -> Builder:
        self.dashboard = self.dashboard.with_row(self.g.dashboard.Row(title).id(next(self._ids)))
        return self

    def _target(self, expr: str, legend: str, ref: str) -> Any:
        return self.g.prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref)

    def timeseries(self, title: str, queries: list[tuple[str, str]], *, unit: str, description: str = "",
                   width: int = 12, height: int = 8, steps: list[tuple[float | None, str]] | None = None,
                   minimum: float | None = None) -> Builder:
        g = self.g
        panel = (g.timeseries.Panel().id(next(self._ids)).title(title).description(description).unit(unit)
                 .datasource(g.cm.DataSourceRef(**_ref())).span(width).height(height)
                 .line_width(1).fill_opacity(10)
                 .legend(g.common.VizLegendOptions().show_legend(True)
                         .display_mode(g.cm.LegendDisplayMode.TABLE).placement(g.cm.LegendPlacement.BOTTOM)
                         .calcs(["mean", "max", "lastNotNull"]))
                 .tooltip(g.common.VizTooltipOptions().mode(g.cm.TooltipDisplayMode.MULTI)
                          .sort(g.cm.SortOrder.DESCENDING)))
        if minimum is not None:
            panel = panel.min(minimum)
        for i, (expr, legend) in enumerate(queries):
            panel = panel.with_target(self._target(expr, legend, chr(ord("A") + i)))
        if steps:
            panel = (panel.thresholds(self._steps(steps))
                     .thresholds_style(g.common.GraphThresholdsStyleConfig()
                                       .mode(g.cm.GraphThresholdsStyleMode.DASHED)))
        self.dashboard = self.dashboard.with_panel(panel)
        return self

    def stat(self, title: str, expr: str, *, unit: str, description: str = "", width: int = 6, height: int = 5,
             steps: list[tuple[float | None, str]] | None = None, legend: str = "") -> Builder:
        g = self.g
        panel = (g.stat.Panel().id(next(self._ids)).title(title).description(description).unit(unit)
                 .datasource(g.cm.DataSourceRef(**_ref())).span(width).height(height)
                 .with_target(self._target(expr, legend, "A"))
                 .reduce_options(g.common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
                 .color_mode(g.cm.BigValueColorMode.BACKGROUND).graph_mode(g.cm.BigValueGraphMode.AREA))
        if steps:
            panel = panel.thresholds(self._steps(steps))
        self.dashboard = self.dashboard.with_panel(panel)
        return self

    def _steps(self, steps: list[tuple[float | None, str]]) -> Any:
        g = self.g
        return (g.dashboard.ThresholdsConfig().mode(g.dm.ThresholdsMode.ABSOLUTE)
                .steps([g.dm.Threshold(value=v, color=c) for v, c in steps]))

    def to_json(self) -> dict[str, Any]:
        import json

        return json.loads(json.dumps(self.dashboard.build(), cls=self.g.JSONEncoder))


def _ref() -> dict[str, str]:
    return {"type_val": DATASOURCE["type"], "uid": DATASOURCE["uid"]}
