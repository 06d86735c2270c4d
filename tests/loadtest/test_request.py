"""Preparing a load test as a core: a typed request from spec + parameters, errors that name parameters."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from opskit.commands.loadtestview import option_name
from opskit.errors import UsageError
from opskit.loadtest.request import HostFacts, ParamError, RunParams, TenantKey, parse_api_keys, prepare
from opskit.runmodel import RunMeta
from opskit.spec.loader import parse_yaml, validate
from opskit.spec.schema import Spec

SPEC_TEXT = """
service: {name: asset-service}
targets:
  staging: {url: "https://staging.example.com", environment: staging, max_rps: 200}
"""
NOW = datetime(2026, 11, 22, 22, 0, 0, tzinfo=UTC)


def _spec() -> Spec:
    return validate(Spec, parse_yaml(SPEC_TEXT, "opskit.yaml"))


def _facts() -> HostFacts:
    return HostFacts(now=NOW, tenant_keys=(TenantKey("company-1", "k1"),), spec_hash="sha256:x", git_sha="abc",
                     versions={"opskit": "0", "locust": None, "python": "3"})


def test_prepare_builds_a_typed_request_from_spec_and_parameters():
    req = prepare(_spec(), RunParams("smoke", rate=20.0, duration="4s", path="/health"), _facts)
    assert req.scenario.duration_s == 4.0 and req.scenario.model == "open"
    assert req.out_dir == Path("runs") / "20261122T220000Z-smoke"
    assert req.opts.params == {"path": "/health", "tenants": [{"company_id": "company-1", "key": "k1"}]}
    assert isinstance(req.run_meta, RunMeta)
    assert (req.run_meta.run_id, req.run_meta.git_sha, req.run_meta.target_name) == (
        "20261122T220000Z-smoke", "abc", "embedded")


@pytest.mark.parametrize(("params", "core_text", "cli_text"), [
    (RunParams("smoke", duration="0s"), "`duration` must be above zero", "--duration must be above zero"),
    (RunParams("smoke", users=2, rate=3.0), "give `users` (closed model) or `rate` (open model), not both",
     "give --users (closed model) or --rate (open model), not both"),
    (RunParams("smoke", metrics_linger="5s"), "`metrics_linger` needs `metrics_port`",
     "--metrics-linger needs --metrics-port"),
    (RunParams("smoke", path="health"), "`path` must start with '/', got 'health'",
     "--path must start with '/', got 'health'"),
    (RunParams("smoke", target="staging", host="http://127.0.0.1:1"), "give `target` NAME or `host` URL, not both",
     "give --target NAME or --host URL, not both"),
    (RunParams("smoke", ui=True, processes=2), "`ui` runs a single local process; drop `processes`/`expect_workers`",
     "--ui runs a single local process; drop --processes/--expect-workers"),
])
def test_errors_name_parameters_and_the_command_words_them_as_options(params, core_text, cli_text):
    with pytest.raises(ParamError) as exc:
        prepare(_spec(), params, _facts)
    assert exc.value.message == core_text
    assert exc.value.naming(option_name).message == cli_text


def test_the_machine_is_not_asked_before_the_target_is_approved():
    asked = []

    def gather() -> HostFacts:
        asked.append(True)  # runs git: nothing may start for a refused request
        return _facts()

    with pytest.raises(UsageError, match="refusing to send load"):
        prepare(_spec(), RunParams("smoke", host="http://example.org"), gather)
    with pytest.raises(ParamError):
        prepare(_spec(), RunParams("smoke", duration="0s"), gather)
    assert asked == []


def test_api_keys():
    keys = (TenantKey("company-1", "K1"), TenantKey("company-2", "K2"))
    assert parse_api_keys(" company-1=K1, company-2=K2 ,") == keys
    assert parse_api_keys("") == ()
    with pytest.raises(UsageError, match="OPSKIT_API_KEYS: expected company=KEY pairs"):
        parse_api_keys("company-1")
