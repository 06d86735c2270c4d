"""Prometheus metrics, correct with several workers (prometheus_client multiprocess mode).

Workers write their samples to files in the run's metrics directory; any worker answering /metrics
merges all of them. State that belongs to the service rather than to a process (assets stored, storage
bytes, worker count, CPU of all workers) is computed when scraped.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from opskit.assetsvc.config import ServiceConfig

UPLOAD_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
SIZE_BUCKETS = ((1 << 20, "lt_1mb"), (10 << 20, "1mb_10mb"), (50 << 20, "10mb_50mb"), (100 << 20, "50mb_100mb"))


def size_bucket(size: int) -> str:
    for bound, name in SIZE_BUCKETS:
        if size < bound:
            return name
    return "gte_100mb"


class Metrics:
    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        # the multiprocess value class writes to files, so these are registered nowhere: /metrics reads files
        self.request_duration = Histogram(
            "http_request_duration_seconds", "HTTP request duration by route template",
            ["method", "route", "status_code"], buckets=config.buckets, registry=None,
        )
        op_labels = ["operation", "status", "company_id"] if config.label_company else ["operation", "status"]
        self.operations = Counter("asset_operations_total", "Asset operations by outcome", op_labels, registry=None)
        self.file_processing = Histogram(
            "file_processing_duration_seconds", "Upload processing time by file type and size",
            ["file_type", "file_size_bucket"], buckets=UPLOAD_BUCKETS, registry=None,
        )
        self.upload_rows = Counter(
            "asset_upload_rows_total", "Uploaded rows by outcome", ["file_type", "result"], registry=None
        )
        # the upload limit (uploadgate.py), summed over live workers: saturation, and what it refused
        self.uploads_in_progress = Gauge("asset_uploads_in_progress", "Uploads holding a slot",
                                         multiprocess_mode="livesum", registry=None)
        self.uploads_waiting = Gauge("asset_uploads_waiting", "Uploads waiting for a slot",
                                     multiprocess_mode="livesum", registry=None)
        self.uploads_refused = Counter("asset_uploads_refused_total", "Uploads answered 503 by the upload limit",
                                       ["reason"], registry=None)
        self._children: dict[tuple[str, str, str], Any] = {}
        self._ops: dict[tuple[str, ...], Any] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, str(status))
        child = self._children.get(key)
        if child is None:  # labels() takes a lock and builds a tuple: cache the child per label set
            child = self._children[key] = self.request_duration.labels(*key)
        child.observe(seconds)

    def operation(self, operation: str, status: str, company_id: str) -> None:
        key = (operation, status, company_id) if self.config.label_company else (operation, status)
        child = self._ops.get(key)
        if child is None:
            if len(self._ops) > 10_000:  # many tenants with --label-company: bound the cache, not the metric
                self._ops.clear()
            child = self._ops[key] = self.operations.labels(*key)
        child.inc()

    def render(self, state: Callable[[], tuple[int, int]]) -> bytes:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.config.metrics_dir)
        registry.register(_StateCollector(self.config, state))
        return generate_latest(registry)


def read_int_file(path: str, default: int = 0) -> int:
    try:
        with open(path) as f:
            return int(f.read().strip() or default)
    except (OSError, ValueError):
        return default


def read_pids(run_dir: str) -> list[int]:
    try:
        with open(os.path.join(run_dir, "pids")) as f:
            return [int(p) for p in f.read().split()]
    except (OSError, ValueError):
        return []


class _StateCollector:
    def __init__(self, config: ServiceConfig, state: Callable[[], tuple[int, int]]) -> None:
        self.config = config
        self.state = state

    def collect(self) -> Iterator[Any]:
        import psutil

        assets, size = self.state()
        yield GaugeMetricFamily("assetsvc_assets_stored", "Assets in the store", value=assets)
        yield GaugeMetricFamily("assetsvc_storage_bytes", "Bytes used by the store (database and WAL)", value=size)
        workers = read_int_file(self.config.workers_file)
        yield GaugeMetricFamily("assetsvc_workers", "Worker processes serving requests", value=workers)
        # CPU of the whole service: live processes plus what exited workers used (the supervisor records
        # their rusage when it reaps them), so the counter does not drop when a worker is removed
        try:
            with open(self.config.retired_cpu_file) as f:
                cpu = float(f.read().strip() or 0)
        except (OSError, ValueError):
            cpu = 0.0
        rss = 0
        start = time.time()
        for pid in read_pids(self.config.run_dir):
            try:
                proc = psutil.Process(pid)
                with proc.oneshot():
                    t = proc.cpu_times()
                    cpu += t.user + t.system
                    rss += proc.memory_info().rss
                    start = min(start, proc.create_time())
            except psutil.Error:
                continue
        yield CounterMetricFamily("process_cpu_seconds_total", "CPU seconds of the supervisor and all workers",
                                  value=cpu)
        yield GaugeMetricFamily("process_resident_memory_bytes", "Resident memory of all service processes",
                                value=rss)
        yield GaugeMetricFamily("process_start_time_seconds", "Start time of the service (supervisor)", value=start)
