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

    from opskit.errors import UsageError
    from opskit.metrics.sources import make_source
    from opskit.scaling import collect

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
    src = make_source(source, location, spec, state_dir=state_dir, interval_s=interval, timeout_s=timeout)
    live = source in ("prometheus", "scrape", "host")  # offline sources replay their own time: no history
    history = collect.load_history(state_dir) if live else collect.source_history(src, spec)
    previous = None
    code = 0
    acted: dict[str, tuple[str, object]] = {}
    n = 0
    try:
        while True:
            n += 1
            readings, ev = collect.check(spec, src, history)
            history = collect.prune([*history, *ev.recommendations], ev.now, collect.keep_seconds(spec))
            if live:
                collect.save_history(state_dir, history)
            handed = _act(ev, acted, source=source, location=location or "", spec_url=spec.service.url,
                          apply=yes, state_dir=state_dir, quiet=output == "json",
                          run=getattr(src, "data", {}).get("run") if source == "results" else None) if act else []
            _render(ev, readings, previous, handed, source=source, location=_where(src), output=output,
                    watching=watch is not None)
            code = _exit_code(ev, handed, source)
            previous = ev
            if watch is None or (count is not None and n >= count):
                break
            time.sleep(watch)
    finally:
        close = getattr(src, "close", None)
        if close:
            close()
    if code:
        ctx.exit(code)


def _act(ev: Evaluation, acted: dict[str, tuple[str, object]], *, source: str, location: str, spec_url: str,
         apply: bool, state_dir: Path, quiet: bool, run: object = None) -> list[Handoff]:
    from urllib.parse import urlsplit

    from opskit.scaling.act import hand_over, handoffs

    service_url = None
    first = None
    if source == "scrape":
        first = urlsplit((location or spec_url).split(",")[0])
    elif source == "results" and isinstance(run, dict) and run.get("target_name") != "embedded":
        # a load test against a local service that is still running (not the embedded one, stopped with
        # the run): the service it measured is the one a local playbook scales
        first = urlsplit(str(run.get("target") or ""))
    if first is not None and first.hostname in ("127.0.0.1", "localhost", "::1"):
        service_url = f"{first.scheme}://{first.netloc}"
    done = []
    for plan in handoffs(ev, service_url=service_url):
        key = (plan.decision, plan.params.get("replicas"))
        if acted.get(plan.resource) == key:
            continue  # --watch: hand the same decision over once, not on every evaluation
        acted[plan.resource] = key
        done.append(hand_over(plan, apply=apply, state_dir=state_dir, quiet_stdout=quiet))
    return done


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


def _render(ev: Evaluation, readings: Readings, previous: Evaluation | None, handed: list[Handoff], *,
            source: str, location: str | None, output: str, watching: bool) -> None:
    import json

    from opskit.scaling import report

    if output == "json":
        doc = report.document(ev, readings, source=source, location=location)
        if handed:
            doc["handoffs"] = out.to_jsonable(handed)
        if watching:  # one document per line, so a reader can follow the stream
            out.echo(json.dumps(out.to_jsonable(doc), separators=(",", ":")))
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
    for h in handed:
        params = ", ".join(f"{k}={v}" for k, v in h.params.items())
        out.echo(f"--act {h.resource}: playbook {h.playbook} ({params}): {h.status}"
                 + (f", exit {h.exit_code}" if h.exit_code is not None else "") + (f"; {h.note}" if h.note else ""))


def _where(src: object) -> str | None:
    """Where the source reads from, defaults resolved (shown in the output)."""
    for attr in ("url", "urls", "location"):
        value = getattr(src, attr, None)
        if value:
            return ",".join(value) if isinstance(value, list) else str(value)
    return None
