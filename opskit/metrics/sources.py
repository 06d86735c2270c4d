"""make_source(kind, location, spec): the one way commands build a MetricsSource."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from opskit.errors import ConfigError, UsageError
from opskit.metrics.base import MetricsSource

if TYPE_CHECKING:
    from opskit.spec import Spec

KINDS = ("prometheus", "scrape", "host", "results", "file")
DEFAULT_STATE_DIR = Path(".opskit")


def make_source(
    kind: str, location: str | None, spec: Spec, *, state_dir: Path | None = None,
    interval_s: float | None = None, timeout_s: float | None = None,
) -> MetricsSource:
    """Build a source. `location` is a URL (prometheus, scrape: several comma-separated), a path
    (results: results.json or its run folder; file: samples YAML/JSON) or None for the default:
    prometheus -> the one `opskit monitor up` started (else http://127.0.0.1:19090),
    scrape -> the spec's service.url + /metrics, results -> the newest run under loadtest.out_dir."""
    if kind == "prometheus":
        from opskit.metrics.prometheus import PrometheusSource

        url = location or default_prometheus_url(state_dir or DEFAULT_STATE_DIR)
        _check_url(url, "--from")
        return PrometheusSource(url, timeout_s=timeout_s or 10.0, replica_queries=_replica_queries(spec, kind))
    if kind == "scrape":
        from opskit.metrics.scrape import ScrapeSource

        urls = [u.strip() for u in (location or spec.service.url.rstrip("/") + "/metrics").split(",") if u.strip()]
        for url in urls:
            _check_url(url, "--from")
        return ScrapeSource(urls, interval_s=5.0 if interval_s is None else interval_s,
                            timeout_s=timeout_s or 5.0, replica_queries=_replica_queries(spec, kind))
    if kind == "host":
        from opskit.metrics.host import HostSource

        return HostSource(interval_s=1.0 if interval_s is None else interval_s)
    if kind == "results":
        from opskit.metrics.results import ResultsSource

        return ResultsSource.from_path(location or _newest_results(spec))
    if kind == "file":
        from opskit.metrics.file import FileSource

        if not location:
            raise UsageError("--source file needs --from PATH (a samples YAML/JSON file)")
        return FileSource.from_path(location)
    raise UsageError(f"unknown metrics source {kind!r}; known: {', '.join(KINDS)}")


def default_prometheus_url(state_dir: Path) -> str:
    from opskit.monitor.process import DEFAULT_PORT, read_state

    state = read_state(state_dir)
    return state.url if state else f"http://127.0.0.1:{DEFAULT_PORT}"


def _replica_queries(spec: Spec, kind: str) -> dict[str, str]:
    out = {}
    for name, res in spec.resources.items():
        query = getattr(res.replicas_query, kind, None)
        if query:
            out[name] = query
    return out


def _check_url(url: str, option: str) -> None:
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"{option}: expected an http:// or https:// URL, got {url!r}")


def _newest_results(spec: Spec) -> Path:
    from opskit.resultsfile import newest

    found = newest(spec.loadtest.out_dir)
    if found is None:
        raise ConfigError(f"--source results: no --from given and no {spec.loadtest.out_dir}/*/results.json "
                          f"(run `opskit loadtest run` first)")
    return found
