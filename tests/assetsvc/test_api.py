"""The asset API over real HTTP against a two-worker service on loopback."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow

ASSET = {"address": "1 Main St, Springfield", "latitude": 39.78, "longitude": -89.65}


def test_health_and_ready_need_no_key(service, api_a):
    health = api_a.get("/health", headers={"Authorization": ""}).json()
    assert health["status"] == "ok"
    assert health["workers"] == 2
    assert health["supervisor_pid"] == service.pid
    assert api_a.get("/ready").status_code == 200


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer not-a-key", "Basic dXNlcjpwYXNz"])
def test_requests_without_a_valid_key_are_401(service, header):
    import httpx

    headers = {"Authorization": header} if header is not None else {}
    for method, path in [("GET", "/api/assets"), ("POST", "/api/assets"), ("GET", "/api/assets/1"),
                         ("DELETE", "/api/assets/delete"), ("POST", "/api/assets/upload")]:
        r = httpx.request(method, service.url + path, headers=headers)
        assert r.status_code == 401, (method, path)
        assert "key" in r.json()["error"]
        assert r.headers["www-authenticate"] == "Bearer"


def test_a_tenant_sees_changes_and_deletes_only_its_own_assets(api_a, api_b):
    created = api_a.post("/api/assets", json=ASSET)
    assert created.status_code == 201
    asset = created.json()
    assert asset["company_id"] == "company-1" and asset["address"] == ASSET["address"]
    assert api_a.get(f"/api/assets/{asset['id']}").json() == asset

    # another company's id answers exactly like a missing one
    assert api_b.get(f"/api/assets/{asset['id']}").status_code == 404
    assert api_b.get("/api/assets/999999999").status_code == 404
    assert all(a["company_id"] == "company-2" for a in api_b.get("/api/assets?limit=500").json()["data"])
    assert api_b.delete_ids([asset["id"]]).json() == {"deleted": 0}
    assert api_a.get(f"/api/assets/{asset['id']}").status_code == 200
    assert api_b.get("/api/companies/company-1/stats").status_code == 404

    assert api_a.delete_ids([asset["id"]]).json() == {"deleted": 1}
    assert api_a.get(f"/api/assets/{asset['id']}").status_code == 404


def test_cursor_pagination_walks_every_asset_once(api_c):
    before = api_c.get("/api/companies/company-3/stats").json()["assets"]
    created = api_c.post("/api/assets", json=[{**ASSET, "address": f"{i} Elm St"} for i in range(7)])
    assert created.status_code == 201
    ids = [a["id"] for a in created.json()]
    assert len(set(ids)) == 7
    seen, cursor = [], None
    for _ in range(20):
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = api_c.get("/api/assets", params=params).json()
        assert len(page["data"]) <= 3
        seen += [a["id"] for a in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == before + 7
    assert set(ids) <= set(seen)
    stats = api_c.get("/api/companies/company-3/stats").json()
    assert stats["assets"] == before + 7 and stats["company_id"] == "company-3"
    assert api_c.delete_ids(ids).json() == {"deleted": 7}


@pytest.mark.parametrize("query, word", [
    ("limit=0", "limit"), ("limit=501", "limit"), ("limit=abc", "limit"), ("limit=-5", "limit"),
    ("cursor=%%%", "cursor"), ("cursor=Zm9vOmJhcg", "cursor"),
])
def test_bad_list_parameters_are_400_naming_the_parameter(api_a, query, word):
    r = api_a.get(f"/api/assets?{query}")
    assert r.status_code == 400
    assert word in r.json()["error"]


def test_default_and_maximum_page_sizes(api_a):
    api_a.post("/api/assets", json=[ASSET] * 60)
    assert len(api_a.get("/api/assets").json()["data"]) == 50
    assert api_a.get("/api/assets?limit=500").status_code == 200


def test_create_array_returns_201_with_ids(api_a):
    r = api_a.post("/api/assets", json=[ASSET, {**ASSET, "company_id": "company-1"}])
    assert r.status_code == 201
    body = r.json()
    assert [a["company_id"] for a in body] == ["company-1", "company-1"]
    assert all(isinstance(a["id"], int) and a["created_at"].endswith("Z") for a in body)


@pytest.mark.parametrize("payload, status, field", [
    ({**ASSET, "colour": "red"}, 422, "colour"),
    ({**ASSET, "id": 5}, 422, "id"),
    ({**ASSET, "created_at": "2020-01-01"}, 422, "created_at"),
    ({**ASSET, "latitude": "39.7"}, 422, "latitude"),
    ({**ASSET, "latitude": 90.5}, 422, "latitude"),
    ({**ASSET, "longitude": -180.01}, 422, "longitude"),
    ({**ASSET, "longitude": True}, 422, "longitude"),
    ({**ASSET, "address": ""}, 422, "address"),
    ({**ASSET, "address": 12}, 422, "address"),
    ({**ASSET, "address": "x" * 501}, 422, "address"),
    ({"address": "a", "latitude": 1}, 422, "longitude"),
    ({**ASSET, "company_id": "company-2"}, 422, "company_id"),
    ([ASSET, {**ASSET, "latitude": None}], 422, "asset 1: latitude"),
    ("just a string", 422, "asset"),
    ([], 400, "empty"),
])
def test_invalid_assets_are_rejected_naming_the_field_and_nothing_is_stored(api_c, payload, status, field):
    before = api_c.get("/api/companies/company-3/stats").json()["assets"]
    r = api_c.post("/api/assets", json=payload)
    assert r.status_code == status
    assert field in r.json()["error"]
    assert api_c.get("/api/companies/company-3/stats").json()["assets"] == before


@pytest.mark.parametrize("body, ctype, status, word", [
    (b'{"address": "a", "latitude": 1,', "application/json", 400, "malformed JSON at line 1"),
    (b"\xff\xfe\x00garbage", "application/json", 400, "UTF-8"),
    (b"address=a", "application/x-www-form-urlencoded", 415, "application/json"),
    (b"", "application/json", 400, "malformed JSON"),
    (b"[" + b'{"address":"a","latitude":1,"longitude":2},' * 30_000 + b"{}]", "application/json", 413, "limit"),
])
def test_malformed_bodies_are_4xx_never_500(api_a, body, ctype, status, word):
    r = api_a.post("/api/assets", content=body, headers={"Content-Type": ctype})
    assert r.status_code == status
    assert word in r.json()["error"]
    assert api_a.get("/health").status_code == 200


def test_more_than_1000_assets_per_create_is_413(api_a):
    r = api_a.post("/api/assets", json=[ASSET] * 1001)
    assert r.status_code == 413 and "upload" in r.json()["error"]


@pytest.mark.parametrize("payload, status, word", [
    ({"ids": list(range(1, 1002))}, 400, "at most 1000"),
    ({"ids": [1, "2"]}, 422, "ids[1]"),
    ({"ids": [1, 2.5]}, 422, "ids[1]"),
    ({"ids": [True]}, 422, "ids[0]"),
    ({"ids": [-1]}, 422, "ids[0]"),
    ({"ids": 5}, 422, "ids"),
    ({"ids": [], "force": True}, 400, "force"),
    ([1, 2], 400, "ids"),
])
def test_bad_delete_requests(api_a, payload, status, word):
    r = api_a.request("DELETE", "/api/assets/delete", json=payload)
    assert r.status_code == status
    assert word in r.json()["error"]


def test_delete_up_to_1000_ids(api_c):
    ids = [a["id"] for a in api_c.post("/api/assets", json=[ASSET] * 1000).json()]
    r = api_c.delete_ids(ids)
    assert r.status_code == 200 and r.json() == {"deleted": 1000}
    assert api_c.delete_ids(ids).json() == {"deleted": 0}


def test_unknown_routes_and_methods(api_a):
    assert api_a.get("/api/nothing").status_code == 404
    assert api_a.put("/api/assets", json=ASSET).status_code == 405
    assert api_a.get("/api/assets/not-a-number").status_code == 404
