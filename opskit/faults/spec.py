"""The `fault:` block of a scenario file (loadtests/*.yaml)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from opskit.units import parse_duration, parse_percent, parse_size_bytes

LOCAL_ONLY = ("faults are injected only into the local stack: run `opskit loadtest run {name}` without "
              "--target/--host (it starts the service on the stack itself)")
KINDS = ("database-connection-failure", "redis-cache-failure", "high-cpu-load", "network-latency-spike",
         "memory-pressure")
Seconds = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]
Percent = Annotated[float, BeforeValidator(parse_percent), Field(gt=0, le=100)]
Bytes = Annotated[float, BeforeValidator(parse_size_bytes), Field(gt=0)]


class FaultSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["database-connection-failure", "redis-cache-failure", "high-cpu-load",
                  "network-latency-spike", "memory-pressure"]
    at: Seconds = Field(description="when the fault starts, from the start of the run")
    clear: Seconds = Field(description="when it ends, from the start of the run")
    mode: Literal["stop", "terminate"] = Field(
        "stop", description="database-connection-failure: stop PostgreSQL (fast shutdown), or keep it up and "
        "terminate the service's connections while refusing new ones")
    delay: Seconds = Field(0.25, description="network-latency-spike: added to every PostgreSQL round trip")
    cpu_load: Percent = Field(100, description="high-cpu-load: how busy each hog keeps its core")
    hogs: int | None = Field(None, ge=1, le=64, description="high-cpu-load: hogs (default: one per core the "
                             "service may run on)")
    memory_until: Percent = Field(85, description="memory-pressure: hold memory until the host's used memory "
                                  "reaches this share of the total...")
    memory_max: Bytes = Field(2 * 1024**3, description="...but never more than this")

    @model_validator(mode="after")
    def _window(self) -> FaultSpec:
        if self.clear <= self.at:
            raise ValueError(f"clear ({self.clear:g}s) must come after at ({self.at:g}s)")
        return self

    def scaled(self, factor: float) -> FaultSpec:
        """The same fault in a run stretched or shrunk by `factor` (--duration)."""
        return self.model_copy(update={"at": self.at * factor, "clear": self.clear * factor})
