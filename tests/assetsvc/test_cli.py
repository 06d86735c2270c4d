"""opskit service keys/seed/run through the CLI in-process: exit codes and messages."""

from __future__ import annotations

import json
import socket
import sqlite3
from contextlib import closing

from click.testing import CliRunner

from opskit.cli import cli


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_keys_create_on_a_fresh_db_prints_json(tmp_path):
    db = tmp_path / "x" / "a.db"
    r = invoke("service", "keys", "create", "--company", "acme", "--tier", "internal", "--db", str(db),
               "--output", "json")
    assert r.exit_code == 0, r.stderr
    body = json.loads(r.stdout)
    assert body["company_id"] == "acme" and body["tier"] == "internal" and body["key"].startswith("ak_")
    with closing(sqlite3.connect(db)) as conn:  # only a hash of the key is stored
        stored = conn.execute("SELECT key_hash, company_id, tier FROM api_keys").fetchall()
    assert len(stored) == 1 and stored[0][1:] == ("acme", "internal") and body["key"] not in stored[0][0]
    second = invoke("service", "keys", "create", "--company", "acme", "--db", str(db), "--output", "json")
    assert second.exit_code == 0 and json.loads(second.stdout)["tier"] == "free"  # the default tier
    assert json.loads(second.stdout)["key"] != body["key"]


def test_keys_create_rejects_bad_input(tmp_path):
    db = str(tmp_path / "a.db")
    r = invoke("service", "keys", "create", "--company", "acme", "--tier", "gold", "--db", db)
    assert r.exit_code == 2 and "gold" in r.stderr
    r = invoke("service", "keys", "create", "--company", "a b/c", "--db", db)
    assert r.exit_code == 2 and "--company 'a b/c'" in r.stderr
    r = invoke("service", "keys", "create", "--company", "acme", "--db", str(tmp_path))
    assert r.exit_code == 2 and "cannot open the database" in r.stderr


def test_seed_fills_companies_with_valid_assets(tmp_path):
    db = tmp_path / "s.db"
    r = invoke("service", "seed", "--assets", "3000", "--companies", "3", "--db", str(db), "--output", "json")
    assert r.exit_code == 0, r.stderr
    body = json.loads(r.stdout)
    assert body["added"] == 3000 and body["total"] == 3000
    assert body["companies"] == ["company-1", "company-2", "company-3"]
    with closing(sqlite3.connect(db)) as conn:
        per = dict(conn.execute("SELECT company_id, count(*) FROM assets GROUP BY company_id").fetchall())
        bad = conn.execute("SELECT count(*) FROM assets WHERE latitude NOT BETWEEN -90 AND 90 OR "
                           "longitude NOT BETWEEN -180 AND 180 OR address = ''").fetchone()[0]
        (distinct,) = conn.execute("SELECT count(DISTINCT address) FROM assets").fetchone()
    assert per == {"company-1": 1000, "company-2": 1000, "company-3": 1000}
    assert bad == 0 and distinct > 2900
    again = invoke("service", "seed", "--assets", "10", "--db", str(db))
    assert again.exit_code == 0 and "3,010 stored" in again.stdout


def test_run_rejects_bad_options_before_serving(tmp_path):
    r = invoke("service", "run", "--port", "0", "--db", str(tmp_path / "a.db"), "--rate-limits", "free=lots")
    assert r.exit_code == 2 and "--rate-limits" in r.stderr and "free=lots" in r.stderr
    r = invoke("service", "run", "--workers", "0", "--db", str(tmp_path / "a.db"))
    assert r.exit_code == 2
    r = invoke("service", "run", "--port", "0", "--db", str(tmp_path))  # a directory
    assert r.exit_code == 2 and "cannot open the database" in r.stderr


def test_run_on_a_port_in_use_is_a_runtime_error(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = invoke("service", "run", "--port", str(port), "--db", str(tmp_path / "a.db"), "--spec",
                   "opskit.yaml")
    assert r.exit_code == 3
    assert f"cannot serve on 127.0.0.1:{port}" in r.stderr and "Traceback" not in r.stderr
