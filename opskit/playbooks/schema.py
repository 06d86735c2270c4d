"""The playbook file format (apiVersion opskit/v1, kind Playbook). Strict: unknown keys are errors
with the closest valid key, every error names file, line and key path (via opskit.spec.loader)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from opskit.units import parse_duration

Seconds = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]
PositiveSeconds = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]

NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
PARAM_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
CONDITION = re.compile(r"^\s*(?:result\s*)?(<=|>=|==|!=|<|>)\s*(\S.*?)\s*$")
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Metadata(Strict):
    name: str
    description: str
    risk: Literal["low", "medium", "high"] = "medium"
    owner: str | None = None
    runbook: str | None = None
    # `playbook serve --approve auto` applies it without a person; only a low-risk playbook may say so
    auto_apply: bool = False

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME.match(v):
            raise ValueError(f"use lower-case letters, digits, '-', '_' or '.', got {v!r}")
        return v

    @model_validator(mode="after")
    def _auto(self) -> Metadata:
        if self.auto_apply and self.risk != "low":
            raise ValueError(f"auto_apply: true needs risk: low (this playbook is risk {self.risk}): an "
                             "unattended change must be one a person would approve without a second look")
        return self


class ParamSpec(Strict):
    type: Literal["integer", "number", "string", "boolean"]
    description: str | None = None
    default: Any = None
    required: bool | None = None  # default: required when there is no default and no from_env/from_file
    minimum: float | None = None
    maximum: float | None = None
    min_length: int | None = Field(None, ge=0)
    max_length: int | None = Field(None, ge=1)
    pattern: str | None = None
    enum: list[Any] | None = None
    secret: bool = False
    from_env: str | None = None
    from_file: str | None = None
    # values starting with '-' are refused unless the author says this parameter may hold one
    allow_leading_dash: bool = False

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return v

    @field_validator("from_env")
    @classmethod
    def _env(cls, v: str | None) -> str | None:
        if v is not None and not ENV_NAME.match(v):
            raise ValueError(f"not an environment variable name: {v!r}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ParamSpec:
        if self.secret and not (self.from_env or self.from_file):
            raise ValueError("a secret parameter needs from_env or from_file (secrets never come from -p)")
        if self.secret and self.default is not None:
            raise ValueError("a secret parameter cannot have a default written in the playbook")
        if self.type not in ("integer", "number") and (self.minimum is not None or self.maximum is not None):
            raise ValueError("minimum/maximum apply to integer and number parameters")
        if self.type != "string" and (self.min_length is not None or self.max_length is not None
                                      or self.pattern is not None):
            raise ValueError("min_length/max_length/pattern apply to string parameters")
        return self

    @property
    def is_required(self) -> bool:
        if self.required is not None:
            return self.required
        return self.default is None


class Retries(Strict):
    attempts: int = Field(1, ge=1, le=100, description="total attempts, 1 = no retry")
    backoff: Seconds = 0
    factor: float = Field(1.0, ge=1, le=10, description="backoff multiplier per attempt")

    @model_validator(mode="before")
    @classmethod
    def _short(cls, data: Any) -> Any:
        return {"attempts": data} if isinstance(data, int) and not isinstance(data, bool) else data


class Compensate(Strict):
    action: str
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    timeout: PositiveSeconds = 300
    retries: Retries = Retries()


class Step(Strict):
    id: str
    action: str
    description: str | None = None
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    timeout: PositiveSeconds = 300
    retries: Retries = Retries()
    compensate: Compensate | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not NAME.match(v):
            raise ValueError(f"use lower-case letters, digits, '-', '_' or '.', got {v!r}")
        return v


class SourceRef(Strict):
    kind: str = Field(description="json, scrape, prometheus, host, results or file")
    location: str | None = None


def _check_condition(v: str) -> str:
    if not CONDITION.match(v):
        raise ValueError(f"expected a comparison like '> 500' or 'result >= 2', got {v!r}")
    return v


class Window(Strict):
    days: list[Day] = Field(default_factory=lambda: list(DAYS))
    start: str
    end: str
    tz: str = "UTC"

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        if not HHMM.match(v):
            raise ValueError(f"expected HH:MM (24 h), got {v!r}")
        return v

    @field_validator("tz")
    @classmethod
    def _tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v


class Precondition(Strict):
    """A metric check ('api p95 > 500ms' read through a metrics source) or a time window."""

    name: str
    source: str | None = None
    metric: str | None = None
    query: str | None = None
    condition: str | None = None
    window: Window | None = None

    @model_validator(mode="after")
    def _kind(self) -> Precondition:
        metric_fields = (self.source, self.metric, self.condition)
        if self.window is not None:
            if any(f is not None for f in metric_fields):
                raise ValueError("a precondition is either a window or a metric check, not both")
        elif any(f is None for f in metric_fields):
            raise ValueError("a metric precondition needs source, metric and condition (or give window)")
        if self.condition is not None:
            _check_condition(self.condition)
        return self


class VerifyCheck(Strict):
    """Argo Rollouts analysis style: `count` measurements `interval` apart; the check fails when more
    than failure_limit fail; empty/NaN measurements are inconclusive and more than
    inconclusive_limit of them halt the run (never a pass)."""

    name: str
    source: str
    metric: str
    query: str | None = None
    success: str
    interval: Seconds = 10
    count: int = Field(1, ge=1, le=1000)
    failure_limit: int = Field(0, ge=0)
    inconclusive_limit: int = Field(0, ge=0)
    initial_delay: Seconds = 0

    @field_validator("success")
    @classmethod
    def _success(cls, v: str) -> str:
        return _check_condition(v)


class Playbook(Strict):
    api_version: Literal["opskit/v1"] = Field(alias="apiVersion")
    kind: Literal["Playbook"]
    metadata: Metadata
    params: dict[str, ParamSpec] = Field(default_factory=dict)
    lock: str | None = None
    sources: dict[str, SourceRef] = Field(default_factory=dict)
    preconditions: list[Precondition] = Field(default_factory=list)
    steps: list[Step] = Field(default_factory=list)
    verify: list[VerifyCheck] = Field(default_factory=list)
    on_failure: Literal["compensate", "halt"] = "compensate"

    @field_validator("params")
    @classmethod
    def _param_names(cls, v: dict[str, ParamSpec]) -> dict[str, ParamSpec]:
        for name in v:
            if not PARAM_NAME.match(name):
                raise ValueError(f"parameter name {name!r}: use lower-case letters, digits and '_'")
        return v

    @field_validator("lock")
    @classmethod
    def _lock(cls, v: str | None) -> str | None:
        if v is not None and not NAME.match(v):
            raise ValueError(f"lock key: use lower-case letters, digits, '-', '_' or '.', got {v!r}")
        return v

    @model_validator(mode="after")
    def _structure(self) -> Playbook:
        # unique ids and known sources are checked by the loader, which can point at the line
        if not self.steps and not self.verify:
            raise ValueError("a playbook needs steps, verify, or both")
        return self
