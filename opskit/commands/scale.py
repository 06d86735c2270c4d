"""opskit scale: evaluate the spec's scaling thresholds from a metrics source."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from opskit import output as out
from opskit.commands.common import FiniteFloatRange, load, output_option, spec_option

if TYPE_CHECKING:
    from opskit.scaling.act import Handoff
    from opskit.scaling.collect import Readings
    from opskit.scaling.flow import Round
    from opskit.scaling.model import Evaluation

SOURCES = ("prometheus", "scrape", "host", "results", "file")


@click.group()
def scale() -> None:
    """Scaling thresholds: decisions and replica recommendations from real metrics."""


@scale.command()
@spec_option
@click.option("--source", type=click.Choice(SOURCES), default="prometheus", show_default=True,
              help="Where the metrics come from.")
@click.option("--from", "location", metavar="URL_OR_PATH", default=None,
              help="prometheus/scrape: URL (scrape: several comma-separated); results/file: path. "
                   "[default: the local Prometheus; the spec's service.url/metrics; the newest run]")
@click.option("--prometheus", "prometheus_url", metavar="URL", default=None,
              help="Same as --source prometheus --from URL.")
@click.option("--watch", type=FiniteFloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="Re-evaluate every SECONDS until Ctrl-C, showing what changed.")
@click.option("--count", type=click.IntRange(min=1), default=None, help="With --watch: stop after N evaluations.")
@click.option("--interval", type=FiniteFloatRange(min=0), default=None, metavar="SECONDS",
              help="scrape: seconds between the two scrapes (default 5); host: CPU/IOPS sample (default 1).")
@click.option("--timeout", type=FiniteFloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="Per-request timeout for prometheus (default 10) and scrape (default 5).")
@click.option("--act", is_flag=True, help="Hand each scaling decision to the playbook bound to its threshold.")
@click.option("--yes", is_flag=True, help="With --act: apply the playbooks (default: plan only).")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=Path(".opskit"),
              help="Recommendation history (stabilization windows) and playbook state [default: ./.opskit].")
@output_option("table", "json")
@click.pass_context
def check(ctx: click.Context, spec_file: str | None, source: str, location: str | None,
          prometheus_url: str | None, watch: float | None,
          count: int | None, interval: float | None, timeout: float | None, act: bool, yes: bool,
          state_dir: Path, output: str) -> None:
    """Evaluate every threshold: scale_up, scale_down, hold or no_data, with the recommended count.

    Exit 0 when every resource holds, 1 when any resource should scale, 3 when no threshold could be
    read from the source (it failed entirely, or the results file is empty, corrupt or of another
    schema), 2 for a bad spec, samples file or option.
    """
    import time

    from opskit.capacity.inputs import scaling_capacity
    from opskit.errors import UsageError
    from opskit.metrics.sources import make_source
    from opskit.scaling import collect, flow
    from opskit.scaling.act import local_service_url

    if prometheus_url:
        src_given = ctx.get_parameter_source("source")
        if location or (source != "prometheus" and src_given != click.core.ParameterSource.DEFAULT):
            raise UsageError("--prometheus URL is --source prometheus --from URL: give one or the other")
        source, location = "prometheus", prometheus_url
    if yes and not act:
        raise UsageError("--yes applies what --act hands over; give --act too")
    if count is not None and watch is None:
        raise UsageError("--count goes with --watch")
    if location and source == "host":
        raise UsageError("--from does not apply to --source host: it reads this machine")
    spec = load(spec_file)
    if not spec.thresholds:
        raise UsageError("the spec has no thresholds: section to evaluate")
    capacities = scaling_capacity(spec)  # resolved once: a watch weighs every round against the same probe
    src = make_source(source, location, spec, state_dir=state_dir, interval_s=interval, timeout_s=timeout)
    try:
        live = source in ("prometheus", "scrape", "host")  # offline sources replay their own time: no history
        plan = flow.Act(apply=yes, state_dir=state_dir, service_url=local_service_url(
            source, location or "", spec_url=spec.service.url, measured_target=src.measured_target)) if act else None
        printer = _Printer(source=source, location=src.location or None, output=output, watching=watch is not None,
                           acting=act)
        flow.run(
            spec, src, printer,
            history=collect.load_history(state_dir) if live else collect.source_history(src, spec, capacities),
            save_history=(lambda kept: collect.save_history(state_dir, kept)) if live else None,
            act=plan, watch_s=watch, count=count, sleep=time.sleep, capacities=capacities)
    finally:
        src.close()
    if printer.code:
        ctx.exit(printer.code)


class _Printer:
    """The command's reporter: a table (then changes) or JSON per round; a hand-over's lines go to stdout,
    or to stderr under --output json so stdout stays one document per round."""

    def __init__(self, *, source: str, location: str | None, output: str, watching: bool, acting: bool) -> None:
        self.source, self.location, self.output, self.watching = source, location, output, watching
        self.acting = acting
        self.code = 0  # the exit code of the latest round
        self._told: dict[str, str] = {}  # resource -> why it was not handed over, as last shown

    def round(self, done: Round) -> None:
        handed = list(done.handed) if self.acting else None
        if handed is not None and self.output != "json":
            # a watch repeats a no-op every round: show its reason when it changes
            shown = [h for h in handed if h.status != "not handed over" or self._told.get(h.resource) != h.note]
            self._told = {h.resource: h.note for h in handed if h.status == "not handed over"}
            handed = shown
        _render(done.evaluation, done.readings, done.previous, handed, source=self.source,
                location=self.location, output=self.output, watching=self.watching)
        self.code = _exit_code(done.evaluation, list(done.handed), self.source)
        if done.number == 1:
            _warn_stale(done.evaluation)

    def line(self, text: str) -> None:
        out.echo(text, err=self.output == "json")


def _warn_stale(ev: Evaluation) -> None:
    from opskit.capacity.inputs import stale_warning

    for cap in ev.capacities.values():
        if cap.source.stale_reason:
            out.warn(stale_warning(cap.source.stale_reason))


def _exit_code(ev: Evaluation, handed: list[Handoff], source: str) -> int:
    from opskit.exitcodes import ExitCode

    if ev.all_no_data:
        first = ev.decisions[0].reason if ev.decisions else "no thresholds"
        hint = " (is it running? `opskit monitor up` starts one)" if source == "prometheus" else ""
        out.warn(f"no threshold could be read from the {source} source{hint}: {first}")
        return int(ExitCode.RUNTIME)
    failed = [h for h in handed if h.status == "failed" and (h.exit_code or 0) >= 2]
    if failed:
        return max(int(h.exit_code or 0) for h in failed)
    return int(ExitCode.NO) if ev.should_scale else int(ExitCode.OK)


def _render(ev: Evaluation, readings: Readings, previous: Evaluation | None, handed: list[Handoff] | None, *,
            source: str, location: str | None, output: str, watching: bool) -> None:
    """`handed` is None without --act; with it, one entry per resource (JSON: always a list)."""
    from opskit.scaling import report

    if output == "json":
        doc = report.document(ev, readings, source=source, location=location)
        if handed is not None:
            doc["handoffs"] = out.to_jsonable(handed)
        if watching:  # one document per line, so a reader can follow the stream
            out.emit_json_line(doc)
        else:
            out.emit_json(doc)
        return
    if previous is not None:
        lines = report.changes(previous, ev)
        stamp = ev.now.strftime("%H:%M:%S")
        for line in lines or ["no change"]:
            out.echo(f"{stamp} {line}")
    else:
        out.table(report.COLUMNS, report.table_rows(ev), title=f"scale check ({source}, {ev.now:%Y-%m-%d %H:%M:%SZ})")
        for line in report.resource_lines(ev):
            out.echo(line)
    for h in handed or ():
        if h.status == "not handed over":
            out.echo(f"--act {h.resource}: not handed over: {h.note}")
            continue
        params = ", ".join(f"{k}={v}" for k, v in h.params.items())
        out.echo(f"--act {h.resource}: playbook {h.playbook} ({params}): {h.status}"
                 + (f", exit {h.exit_code}" if h.exit_code is not None else "") + (f"; {h.note}" if h.note else ""))

