"""Alertmanager's webhook payload (version 4), parsed into typed data. Pure: bytes in, a Notification
out, or PayloadError with a message naming the field (the receiver answers 400 with it)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

MAX_BODY = 1 << 20  # Alertmanager sends a group per request; a megabyte is thousands of alerts


class PayloadError(ValueError):
    """The body is not an Alertmanager v4 notification."""


class _Model(BaseModel):
    # Alertmanager adds fields over time (truncatedAlerts in 0.24): extra ones are ignored, not refused
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class Alert(_Model):
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: dt.datetime = Field(alias="startsAt")
    ends_at: dt.datetime | None = Field(None, alias="endsAt")
    generator_url: str = Field("", alias="generatorURL")
    fingerprint: str

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def playbook(self) -> str | None:
        return self.labels.get("playbook") or None

    @property
    def summary(self) -> str:
        return self.annotations.get("summary", "")


class Notification(_Model):
    version: Literal["4"]
    group_key: str = Field(alias="groupKey")
    status: Literal["firing", "resolved"]
    receiver: str
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")
    common_annotations: dict[str, str] = Field(default_factory=dict, alias="commonAnnotations")
    external_url: str = Field("", alias="externalURL")
    alerts: tuple[Alert, ...]


def parse(body: bytes) -> Notification:
    """The notification in `body`, or PayloadError saying what is wrong (first problem, located)."""
    if len(body) > MAX_BODY:
        raise PayloadError(f"body is {len(body)} bytes; at most {MAX_BODY} accepted")
    try:
        raw = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise PayloadError(f"expected a JSON object, got {type(raw).__name__}")
    try:
        return Notification.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(body)"
        raise PayloadError(f"{where}: {err['msg']} ({exc.error_count()} problem(s))") from None
