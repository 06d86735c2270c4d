"""Property tests of every parser of client input: a value or a 4xx, never another exception (a 500)."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opskit.assetsvc.errors import ApiError
from opskit.assetsvc.pagecache import ENTRY_OVERHEAD, PageCache
from opskit.assetsvc.params import (
    MAX_ID,
    MAX_LIMIT,
    decode_cursor,
    encode_cursor,
    parse_id,
    parse_json,
    parse_limit,
)
from opskit.assetsvc.ratelimit import take
from opskit.assetsvc.upload import UploadError
from opskit.assetsvc.upload import parse_csv as upload_csv
from opskit.assetsvc.upload import parse_json as upload_json
from opskit.assetsvc.validation import FieldError, validate_object

# no deadline: on a shared 2-core machine an example can take longer than 200 ms for reasons of its own;
# no example database: nothing written into the working tree
fuzz = settings(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# text that looks like what the parsers expect, so the interesting edges come up often
numberish = st.one_of(
    st.text(),
    st.text(alphabet="0123456789²٣０-+. e", max_size=30),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
)
# JSON can escape lone surrogates ("\ud800"), which json.loads turns into str the store cannot encode
# (a list joined: st.text() drops surrogates from its alphabet)
any_text = st.lists(st.characters() | st.characters(categories=["Cs"]), max_size=20).map("".join)
json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers(min_value=-(10**400), max_value=10**400)
    | any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


def _is_4xx(exc: ApiError) -> bool:
    return 400 <= exc.status < 500 and bool(exc.message)


@fuzz
@given(numberish)
def test_a_path_id_is_a_positive_63_bit_integer_or_not_found(raw):
    value = parse_id(raw)
    if value is not None:
        assert 0 < value <= MAX_ID and raw.isascii() and int(raw) == value


@pytest.mark.parametrize("raw", ["²", "١٢", "０", "9" * 19, str(2**63), "-1", " 1", "1 ", ""])
def test_path_ids_found_by_trying_are_not_found_rather_than_errors(raw):
    assert parse_id(raw) is None  # '²'.isdigit() is True and int('²') raised: a 500 before


@fuzz
@given(numberish | st.none())
def test_a_limit_is_from_1_to_500_or_a_400(raw):
    try:
        value = parse_limit(raw)
    except ApiError as exc:
        assert _is_4xx(exc) and len(exc.message) < 500  # a long value is cut short
    else:
        assert 1 <= value <= MAX_LIMIT


@fuzz
@given(st.text() | st.binary().map(lambda b: b.decode("latin-1")))
def test_any_cursor_text_is_a_position_or_a_400(raw):
    try:
        value = decode_cursor(raw)
    except ApiError as exc:
        assert _is_4xx(exc)
    else:
        assert 0 <= value <= MAX_ID


@fuzz
@given(st.integers(min_value=0, max_value=MAX_ID))
def test_cursors_round_trip(last_id):
    assert decode_cursor(encode_cursor(last_id)) == last_id


def test_a_cursor_past_the_largest_id_is_a_400_not_a_500():
    import base64

    cursor = base64.urlsafe_b64encode(b"a:99999999999999999999").decode()  # SQLite could not bind it
    with pytest.raises(ApiError) as err:
        decode_cursor(cursor)
    assert err.value.status == 400


@fuzz
@given(st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_any_body_is_json_or_a_400(body):
    try:
        parse_json(body)
    except ApiError as exc:
        assert _is_4xx(exc)


@pytest.mark.parametrize("body", [b"[" * 100_000, b'{"a":' * 100_000, b"1" * 5000,
                                  b'{"latitude": ' + b"9" * 5000 + b"}"])
def test_deep_nesting_and_overlong_numbers_are_400(body):
    with pytest.raises(ApiError) as err:
        parse_json(body)
    assert err.value.status == 400


asset_like = st.fixed_dictionaries(
    {"address": any_text | json_values, "latitude": st.floats(-90, 90) | json_values,
     "longitude": st.floats(-180, 180) | json_values},
    optional={"company_id": st.just("c1") | any_text},
)


@fuzz
@given(json_values | asset_like)
def test_any_json_value_is_an_asset_or_a_field_error(value):
    try:
        address, lat, lon = validate_object(value, "c1")
    except FieldError as exc:
        assert exc.field and exc.message
    else:
        assert address and math.isfinite(lat) and math.isfinite(lon)
        address.encode("utf-8")  # what the store must be able to do with it


def test_an_integer_coordinate_beyond_float_is_a_field_error():
    with pytest.raises(FieldError, match="latitude"):
        validate_object({"address": "a", "latitude": 10**400, "longitude": 1}, "c1")


class _Null:
    def add(self, flat):
        assert len(flat) % 3 == 0

    def commit(self) -> int:
        return 0

    def rollback(self) -> None:
        pass


@fuzz
@given(st.binary(max_size=400) | st.lists(json_values, max_size=5).map(lambda v: json.dumps(v).encode()),
       st.integers(min_value=1, max_value=64))
def test_any_uploaded_file_is_rows_or_an_upload_error(data, size):
    for parse in (upload_csv, upload_json):
        try:
            result = parse(iter([data[i:i + size] for i in range(0, len(data), size)]), "c1", _Null())
        except UploadError as exc:
            assert str(exc)
        else:
            assert result.inserted >= 0 and result.rejected >= 0


@pytest.mark.parametrize("data", [b"[" + b"[" * 100_000, b'[{"a":' * 50_000, b"[" + b"1" * 5000 + b"]"])
def test_json_uploads_nested_too_deep_or_with_huge_integers_are_upload_errors(data):
    with pytest.raises(UploadError):
        upload_json(iter([data]), "c1", _Null())


def test_the_page_cache_stays_within_its_byte_budget():
    cache = PageCache(10_000)
    for i in range(100):
        cache.put(("c", i, 50), b"x" * 1000)
        assert cache.size <= 10_000
    assert len(cache) == 10_000 // (1000 + ENTRY_OVERHEAD)
    assert cache.get(("c", 99, 50)) is not None and cache.get(("c", 0, 50)) is None  # the oldest went first
    cache.put(("c", -1, 50), b"x" * 20_000)  # larger than the budget: not kept, nothing evicted for it
    assert cache.get(("c", -1, 50)) is None and len(cache) == 8
    cache.put(("c", 99, 50), b"y" * 10)  # replacing an entry frees its old size
    assert cache.size == 7 * (1000 + ENTRY_OVERHEAD) + 10 + ENTRY_OVERHEAD
    cache.clear()
    assert cache.size == 0 and len(cache) == 0


def test_the_page_cache_drops_only_the_named_companies_pages():
    cache = PageCache(10_000)
    for company in ("a", "b", "c"):
        for after in range(2):
            cache.put((company, after, 50), company.encode() * 100)
    cache.drop({"a", "c", "unknown"})
    assert len(cache) == 2 and cache.size == 2 * (100 + ENTRY_OVERHEAD)
    assert cache.get(("b", 0, 50)) == b"b" * 100 and cache.get(("a", 0, 50)) is None
    for i in range(20):  # evictions keep the per-company index right: nothing is dropped twice or missed
        cache.put(("a", i, 50), b"x" * 1000)
    cache.drop({"a"})
    assert len(cache) == 0 and cache.size == 0


def test_rate_limit_reset_is_the_time_until_the_bucket_is_full():
    d, _ = take(tokens=100.0, last=0.0, now=0.0, capacity=100, window_s=3600)
    assert d.allowed and d.remaining == 99 and d.reset_s == 36  # one token short: one refill interval
    d, _ = take(tokens=0.0, last=0.0, now=0.0, capacity=100, window_s=3600)
    assert not d.allowed and d.reset_s == 3600
