"""--act end to end: a real scrape of the real asset service under load decides to scale, and the bound
playbook (local-horizontal-scale) really adds a worker to it."""

from __future__ import annotations

import json
import threading

import httpx
import pytest

pytestmark = pytest.mark.slow


def test_scale_check_act_yes_scales_the_local_service(invoke, tmp_path):
    from opskit.localservice import LocalService

    with LocalService(workers=1) as svc:
        spec = tmp_path / "opskit.yaml"
        spec.write_text(f"""
service: {{name: asset-service, url: "{svc.url}"}}
thresholds:
  - resource: api
    metric: requests_per_worker
    target: 1                      # req/s per worker: any real load asks for more workers
    playbook: local-horizontal-scale
    queries: {{scrape: rate(http_request_duration_seconds_count) / assetsvc_workers}}
resources:
  api: {{min: 1, max: 2, replicas_query: {{scrape: assetsvc_workers}}}}
""")
        stop = threading.Event()

        def load() -> None:
            with httpx.Client(base_url=svc.url, headers={"Authorization": f"Bearer {svc.key}"},
                              trust_env=False) as c:
                while not stop.is_set():
                    c.get("/api/assets", params={"limit": 1})

        t = threading.Thread(target=load, daemon=True)
        t.start()
        try:
            result = invoke("scale", "check", "--spec", str(spec), "--source", "scrape", "--interval", "1",
                            "--act", "--yes", "--state-dir", str(tmp_path / "state"), "--output", "json")
        finally:
            stop.set()
            t.join(10)
        assert result.exit_code == 1, result.stdout + result.stderr  # "should scale", and it was handed over
        doc = json.loads(result.stdout)
        assert doc["resources"]["api"] | {} == {**doc["resources"]["api"], "current": 1, "recommended": 2,
                                                "decision": "scale_up", "limited_by": "max"}
        [handoff] = doc["handoffs"]
        assert handoff["playbook"] == "local-horizontal-scale" and handoff["status"] == "handed over"
        # only the parameters the playbook declares were passed
        assert set(handoff["params"]) == {"workers", "reason", "target"}
        assert handoff["params"]["workers"] == 2 and handoff["params"]["target"] == svc.url
        health = httpx.get(f"{svc.url}/health", trust_env=False).json()
        assert health["workers"] == 2
