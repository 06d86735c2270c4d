"""Load tests against a service started by hand: tenant keys from --api-key (stdin), --keys-file or
OPSKIT_API_KEYS, checked against the real service before anything starts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from opskit.loadtest.request import parse_api_keys
from opskit.localservice import LocalService

NO_ENV = {"OPSKIT_API_KEYS": "", "OPSKIT_LOADTEST_TOKEN": ""}


@pytest.fixture(scope="module")
def service() -> Iterator[LocalService]:
    with LocalService(workers=1, seed_assets=50, tenants=2) as svc:
        yield svc


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_no_keys_for_a_scenario_that_needs_them_is_a_usage_error(invoke, tmp_path: Path) -> None:
    # nothing listens there: the refusal comes before any request or process
    result = invoke("loadtest", "run", "smoke", "--host", "http://127.0.0.1:9", "--out", str(tmp_path / "r"),
                    env=NO_ENV)
    assert result.exit_code == 2
    line = _one_line(result.stderr)
    assert "needs tenant API keys" in line and "opskit service keys create --company C" in line
    assert "--api-key -" in line and "--keys-file" in line and "OPSKIT_API_KEYS" in line
    assert not (tmp_path / "r").exists()


def test_a_refused_key_is_named_before_the_run_starts(invoke, service: LocalService, tmp_path: Path) -> None:
    good = service.keys[0]
    stdin = f"{good['company_id']}={good['key']}\ncompany-2=not-a-key\n"
    result = invoke("loadtest", "run", "smoke", "--host", service.url, "--api-key", "-",
                    "--out", str(tmp_path / "r"), input=stdin, env=NO_ENV)
    assert result.exit_code == 2
    line = _one_line(result.stderr)
    assert "company-2" in line and "--api-key - (stdin) line 2" in line and "401" in line
    assert "not-a-key" not in line and good["key"] not in line
    assert not (tmp_path / "r").exists()
    result = invoke("loadtest", "run", "smoke", "--host", service.url, "--out", str(tmp_path / "r"),
                    env={**NO_ENV, "OPSKIT_API_KEYS": "company-1=wrong"})
    assert result.exit_code == 2 and "OPSKIT_API_KEYS" in result.stderr and "company-1" in result.stderr


def test_a_run_with_keys_from_a_file(invoke, service: LocalService, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("# tenants of the hand-started service\n"
                    + "".join(f"{k['company_id']}={k['key']}\n" for k in service.keys))
    keys.chmod(0o644)
    out = tmp_path / "r"
    result = invoke("loadtest", "run", "smoke", "--host", service.url, "--keys-file", str(keys),
                    "--duration", "2s", "--out", str(out), env=NO_ENV)
    assert result.exit_code == 0, result.stderr
    assert "can be read by others (mode 644)" in result.stderr and "chmod 600" in result.stderr
    r = json.loads((out / "results.json").read_text())
    assert r["aggregate"]["requests"] > 0 and r["aggregate"]["failures"] == 0


def test_a_key_on_the_command_line_is_warned_about(invoke, service: LocalService, tmp_path: Path) -> None:
    k = service.keys[0]
    result = invoke("loadtest", "run", "http-get", "--host", service.url, "--api-key", f"{k['company_id']}=x",
                    "--duration", "1s", "--out", str(tmp_path / "r"), env=NO_ENV)
    assert result.exit_code == 2  # checked against the service: x is no key
    assert "visible to every user of this machine" in result.stderr


def test_parse_api_keys_names_the_line_never_the_text() -> None:
    keys = parse_api_keys("# comment\nc1=K1\n\nc2 = K2, c3=K3\n", "file F")
    assert [(k.company_id, k.key, k.source) for k in keys] == [
        ("c1", "K1", "file F line 2"), ("c2", "K2", "file F line 4"), ("c3", "K3", "file F line 4")]
    assert "K1" not in repr(keys)
    with pytest.raises(Exception, match="file F line 2: expected company=KEY") as info:
        parse_api_keys("c1=K1\nsecret-without-company\n", "file F")
    assert "secret" not in str(info.value)
