"""The file source: recorded samples in YAML or JSON, for offline evaluation, reviews and tests.

    now: 2026-11-22T10:00:00Z
    resources: {api: {replicas: 3}}
    samples:
      - {resource: api, metric: cpu_utilization, value: 50, at: 2026-11-22T09:59:45Z}
    recommendations:            # optional: earlier desired counts, for the stabilization windows
      - {resource: api, replicas: 5, at: 2026-11-22T09:59:00Z}

Values of `*_utilization` are percent; a value may carry its unit ("50%", "250ms"); `at` defaults to `now`;
without `now`, the latest `at` is the file's clock.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from opskit.metrics.base import MetricRequest, Sample, Series, SourceDefaults
from opskit.metrics.timeutil import parse_time
from opskit.units import parse_quantity

Time = Annotated[dt.datetime, BeforeValidator(parse_time)]


def _number(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("nan", ".nan"):
            return float("nan")
        return parse_quantity(value)[0]
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileSample(_Strict):
    resource: str
    metric: str
    value: Annotated[float, BeforeValidator(_number)]
    at: Time | None = None


class FileResource(_Strict):
    replicas: int = Field(ge=0)


class FileRecommendation(_Strict):
    resource: str
    replicas: int = Field(ge=0)
    at: Time


class SamplesFile(_Strict):
    now: Time
    resources: dict[str, FileResource] = Field(default_factory=dict)
    samples: list[FileSample] = Field(default_factory=list)
    recommendations: list[FileRecommendation] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _default_now(cls, data: Any) -> Any:
        """Without `now`, the file's clock is its latest sample time (every sample must then give `at`)."""
        if isinstance(data, dict) and data.get("now") is None and isinstance(data.get("samples"), list):
            times = []
            for s in data["samples"]:
                if not isinstance(s, dict) or s.get("at") is None:
                    return data  # left to the required-key error on `now`
                try:
                    times.append(parse_time(s["at"]))
                except ValueError:
                    return data
            if times:
                data = {**data, "now": max(times)}
        return data

    @model_validator(mode="after")
    def _not_after_now(self) -> SamplesFile:
        for i, s in enumerate(self.samples):
            if s.at is not None and s.at > self.now:
                raise ValueError(f"samples[{i}].at ({s.at.isoformat()}) is after now ({self.now.isoformat()})")
        return self


def load_samples(path: str | Path) -> SamplesFile:
    """Parse and validate a samples file; errors name the file, line and key path (exit 2)."""
    from opskit.spec.loader import read_located, validate

    return validate(SamplesFile, read_located(path))


class FileSource(SourceDefaults):
    """Reads recorded samples; its clock is the file's `now`. Doubles as the test fake of MetricsSource."""

    name = "file"

    def __init__(self, data: SamplesFile, *, location: str = "") -> None:
        self.data = data
        self._location = location

    @property
    def location(self) -> str:
        return self._location

    @classmethod
    def from_path(cls, path: str | Path) -> FileSource:
        return cls(load_samples(path), location=str(path))

    @property
    def recorded_now(self) -> dt.datetime:
        return self.data.now

    def read(self, request: MetricRequest, *, now: dt.datetime) -> Series:
        points = sorted(
            (Sample(s.value, s.at or self.data.now) for s in self.data.samples
             if s.resource == request.resource and s.metric == request.metric),
            key=lambda p: p.at,
        )
        points = [p for p in points if p.at <= now]
        if request.window_s > 0:
            start = now - dt.timedelta(seconds=request.window_s)
            points = [p for p in points if p.at >= start]
        elif points:
            points = points[-1:]
        error = None if points else "no samples in the file" + (
            f" within the {request.window_s:g}s window" if request.window_s > 0 else "")
        return Series(request.resource, request.metric, tuple(points), error=error)

    def replicas(self, resource: str) -> int | None:
        r = self.data.resources.get(resource)
        return r.replicas if r else None

    def sample_times(self) -> list[dt.datetime]:
        return [s.at or self.data.now for s in self.data.samples]

    def history(self) -> list[tuple[str, int, dt.datetime]]:
        return [(r.resource, r.replicas, r.at) for r in self.data.recommendations]
