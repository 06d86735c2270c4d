"""opskit monitor: a local Prometheus (Debian's binary) on loopback, scraping the asset service and itself."""

from __future__ import annotations

from pathlib import Path

import click

from opskit import output as out
from opskit.commands.common import load, output_option, spec_option, state_dir_option

_state_option = state_dir_option("Where the config, data, log and pid live [default: ./.opskit].")


@click.group()
def monitor() -> None:
    """A local Prometheus on loopback: `up` starts it, `down` stops exactly what `up` started."""


@monitor.command()
@spec_option
@click.option("--target", "targets", multiple=True, metavar="URL",
              help="A /metrics endpoint to scrape (repeatable) [default: the spec's service.url].")
@click.option("--loadtest", "loadtest_targets", multiple=True, metavar="URL",
              help="A load-test runner's /metrics (`loadtest run --metrics-port`), scraped as job "
                   "opskit-loadtest (repeatable).")
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help="Port on 127.0.0.1 [default: 19090; 0 picks a free one].")
@click.option("--scrape-interval", default=None, metavar="DURATION",
              help="How often to scrape [default: the spec's alerts.scrape_interval].")
@click.option("--rules", "rules_glob", default=None, metavar="GLOB",
              help="Rule files to load [default: alerts/*.rules.yml beside the spec].")
@click.option("--retention", default="7d", show_default=True,
              help="How long to keep samples (Prometheus units: 12h, 7d, 4w, 1y).")
@click.option("--alertmanager", "with_alertmanager", is_flag=True,
              help="Also run Alertmanager (Debian's prometheus-alertmanager) with the rendered routing, and "
                   "send Prometheus's alerts to it.")
@click.option("--receiver", metavar="URL", default=None,
              help="Where alerts with a playbook label go [default: the spec's alerts.routing.playbook_receiver, "
                   "`opskit playbook serve`'s address, with the token of this state dir].")
@click.option("--receiver-token-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The bearer token file Alertmanager sends to --receiver.")
@click.option("--alertmanager-port", type=click.IntRange(0, 65535), default=None,
              help="Alertmanager's port on 127.0.0.1 [default: 19093; 0 picks a free one].")
@_state_option
@output_option("table", "json")
def up(spec_file: str | None, targets: tuple[str, ...], loadtest_targets: tuple[str, ...], port: int | None,
       scrape_interval: str | None, rules_glob: str | None, retention: str, with_alertmanager: bool,
       receiver: str | None, receiver_token_file: Path | None, alertmanager_port: int | None, state_dir: Path,
       output: str) -> None:
    """Start Prometheus (or update the targets and rules of the running one and reload it)."""
    from opskit.errors import UsageError
    from opskit.monitor import alertmanager as am
    from opskit.monitor import config as cfg
    from opskit.monitor.local import up as start
    from opskit.spec import spec_path
    from opskit.units import parse_duration

    spec = load(spec_file)
    try:
        interval = parse_duration(scrape_interval) if scrape_interval else spec.alerts.scrape_interval
    except ValueError as exc:
        raise UsageError(f"--scrape-interval: {exc}") from None
    if interval <= 0:
        raise UsageError("--scrape-interval must be above 0")
    if not cfg.RETENTION.fullmatch(retention):
        raise UsageError(f"--retention: expected a duration like 12h, 7d or 4w, got {retention!r}")
    if rules_glob:
        base, pattern = Path("."), rules_glob
    else:
        base, pattern = spec_path(spec_file).resolve().parent, "alerts/*.rules.yml"
    rule_paths = sorted(Path(p) for p in base.glob(pattern)) if not Path(pattern).is_absolute() else \
        sorted(Path("/").glob(pattern.lstrip("/")))
    if not with_alertmanager and (receiver or receiver_token_file or alertmanager_port is not None):
        raise UsageError("--receiver, --receiver-token-file and --alertmanager-port need --alertmanager")
    am_state = am.running(state_dir)  # one started earlier stays wired even without the flag
    if with_alertmanager:
        text, url = am.render(spec, state_dir, receiver=receiver, token_file=receiver_token_file)
        am_state, _ = am.up(state_dir, config_text=text, receiver=url, port=alertmanager_port)
    result = start(state_dir, job=spec.service.job, targets=list(targets) or [spec.service.url], port=port,
                   scrape_interval_s=interval, rule_paths=rule_paths, retention=retention,
                   loadtest=list(loadtest_targets), alertmanager=am_state.address if am_state else None)
    for w in result.warnings:
        out.warn(w)
    s = result.state
    loadtest_urls = [cfg.parse_target(t).url for t in loadtest_targets]
    summary = {"url": s.url, "pid": s.pid, "started": result.started, "targets": s.targets,
               "rule_files": s.rule_files, "state_dir": str(state_dir), "warnings": result.warnings,
               "loadtest_targets": loadtest_urls,
               "alertmanager": {"url": am_state.url, "pid": am_state.pid, "receiver": am_state.receiver}
               if am_state else None}
    if output == "json":
        out.emit_json(summary)
        return
    verb = "started" if result.started else "already running; targets and rules reloaded"
    out.echo(f"prometheus {verb}: {s.url} (pid {s.pid})")
    out.echo(f"  scraping {', '.join(s.targets)} as job {spec.service.job!r}, and itself")
    if loadtest_targets:
        out.echo(f"  scraping load-test runners {', '.join(loadtest_urls)} as job 'opskit-loadtest'")
    out.echo(f"  rules: {len(s.rule_files)} file(s); data and log under {state_dir}/prometheus/")
    if am_state:
        out.echo(f"alertmanager: {am_state.url} (pid {am_state.pid}); playbook alerts go to {am_state.receiver}")
    out.echo("  stop it with: opskit monitor down")


@monitor.command()
@click.option("--purge", is_flag=True, help="Also delete the data, config and log.")
@_state_option
@output_option("table", "json")
def down(purge: bool, state_dir: Path, output: str) -> None:
    """Stop the Prometheus `up` started (checked by pid and start time: nothing else is touched)."""
    from opskit.monitor.local import down as stop

    result = stop(state_dir, purge=purge)
    if result.state_error and not purge:
        out.warn(result.state_error)
    if output == "json":  # stdout is the one JSON document, nothing after it
        out.emit_json(result)
        return
    if result.stopped:
        out.echo(f"prometheus stopped (pid {result.pid})" + ("; data purged" if purge else ""))
    if result.alertmanager_pid:
        out.echo(f"alertmanager stopped (pid {result.alertmanager_pid})")
    if result.stopped:
        return
    if result.state_error and not purge:
        out.echo("nothing stopped: the state file is unreadable (see the warning)")
    else:
        out.echo("prometheus was not running" + ("; data purged" if purge else ""))


@monitor.command()
@_state_option
@output_option("table", "json")
@click.pass_context
def status(ctx: click.Context, state_dir: Path, output: str) -> None:
    """Is it running, and is each target up? Exit 0 running, 1 not running."""
    from opskit.exitcodes import ExitCode
    from opskit.monitor.local import NotRunning
    from opskit.monitor.local import status as get

    info = get(state_dir)
    if isinstance(info, NotRunning) and info.state_error:
        out.warn(info.state_error)
    if output == "json":
        out.emit_json(info)
    elif isinstance(info, NotRunning):
        out.echo("prometheus is not running" + (" (stale state cleared on next up)" if info.stale_state else ""))
    else:
        out.echo(f"prometheus running: {info.url} (pid {info.pid}, up {info.uptime_s:.0f}s, "
                 f"{'ready' if info.ready else 'not ready'}, {info.rules or 0} rules)")
        if info.targets:
            out.table(["job", "target", "health", "last error"],
                      [(t.job, t.url, t.health, t.last_error or "") for t in info.targets])
        else:  # Prometheus batches discovery updates every 5 s, so a fresh one lists none for a moment
            out.echo("  no targets discovered yet (Prometheus applies new targets within about 5 s)")
    if output != "json" and info.alertmanager:
        a = info.alertmanager
        out.echo(f"alertmanager running: {a.url} (pid {a.pid}, {'ready' if a.ready else 'not ready'}); "
                 f"playbook alerts go to {a.receiver}")
    if isinstance(info, NotRunning):
        ctx.exit(int(ExitCode.NO))
