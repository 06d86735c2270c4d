"""A small PromQL-like language over two scrapes of /metrics, for the scrape source (pure).

    process_resident_memory_bytes                     instant value (summed over matching series)
    rate(asset_operations_total{status="error"})      per second between the two scrapes
    increase(http_request_duration_seconds_count)     increase between the two scrapes
    histogram_quantile(0.95, http_request_duration_seconds{route="/api/assets"})
    100 * rate(process_cpu_seconds_total)             + - * / and parentheses on numbers
    avg(x) sum(x) min(x) max(x) count(x)              aggregations over the matching series

A histogram named without `_bucket` means the quantile of the observations made between the two
scrapes. A counter series that appears only in the second scrape counts from 0 (client libraries
create labelled series on first use). Counter resets count the new value as the increase.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field

Labels = tuple[tuple[str, str], ...]
Key = tuple[int, str, Labels]  # (target index, sample name, sorted labels)


class ExprError(ValueError):
    """The expression is not valid (a spec error)."""


class NoData(Exception):
    """The expression is valid but the scrapes cannot give a number."""


@dataclass(frozen=True)
class Snapshot:
    """One scrape of every target: sample values by key, and when it was taken (monotonic seconds)."""

    values: dict[Key, float]
    at: float


@dataclass(frozen=True)
class Num:
    value: float


@dataclass(frozen=True)
class Selector:
    name: str
    matchers: tuple[tuple[str, str, str], ...] = ()

    def text(self) -> str:
        inner = ",".join(f'{k}{op}"{v}"' for k, op, v in self.matchers)
        return f"{self.name}{{{inner}}}" if inner else self.name


@dataclass(frozen=True)
class Call:
    fn: str
    args: tuple[object, ...] = field(default=())


@dataclass(frozen=True)
class BinOp:
    op: str
    left: object
    right: object


_TOKEN = re.compile(r"""\s*(?:(?P<num>[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?)|(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)
    |(?P<str>"(?:[^"\\]|\\.)*")|(?P<op>=~|!~|!=|[-+*/(),{}=]))""", re.VERBOSE)
FUNCTIONS = {"rate", "increase", "histogram_quantile", "sum", "avg", "min", "max", "count"}


def parse(text: str) -> object:
    tokens = _tokenize(text)
    parser = _Parser(tokens, text)
    node = parser.expr()
    if parser.pos != len(tokens):
        raise ExprError(f"unexpected {tokens[parser.pos][1]!r} in {text!r}")
    return node


def needs_two_scrapes(node: object) -> bool:
    if isinstance(node, Call):
        return node.fn in ("rate", "increase", "histogram_quantile") or any(needs_two_scrapes(a) for a in node.args)
    if isinstance(node, BinOp):
        return needs_two_scrapes(node.left) or needs_two_scrapes(node.right)
    return False


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ExprError(f"cannot read {text[pos:pos + 20]!r} in {text!r}")
        kind = m.lastgroup or "op"
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    return tokens


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], text: str) -> None:
        self.tokens, self.text, self.pos = tokens, text, 0

    def peek(self) -> str | None:
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> tuple[str, str]:
        if self.pos >= len(self.tokens):
            raise ExprError(f"{self.text!r} ends too early" + (f" (expected {expected!r})" if expected else ""))
        tok = self.tokens[self.pos]
        if expected is not None and tok[1] != expected:
            raise ExprError(f"expected {expected!r}, found {tok[1]!r} in {self.text!r}")
        self.pos += 1
        return tok

    def expr(self) -> object:
        node = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()[1]
            node = BinOp(op, node, self.term())
        return node

    def term(self) -> object:
        node = self.factor()
        while self.peek() in ("*", "/"):
            op = self.take()[1]
            node = BinOp(op, node, self.factor())
        return node

    def factor(self) -> object:
        kind, value = self.take()
        if kind == "num":
            return Num(float(value))
        if value == "-":
            return BinOp("*", Num(-1.0), self.factor())
        if value == "(":
            node = self.expr()
            self.take(")")
            return node
        if kind != "name":
            raise ExprError(f"unexpected {value!r} in {self.text!r}")
        if self.peek() == "(":
            if value not in FUNCTIONS:
                raise ExprError(f"unknown function {value}() in {self.text!r}; known: {', '.join(sorted(FUNCTIONS))}")
            self.take("(")
            args = [self.expr()]
            while self.peek() == ",":
                self.take(",")
                args.append(self.expr())
            self.take(")")
            return _check_call(Call(value, tuple(args)), self.text)
        matchers: list[tuple[str, str, str]] = []
        if self.peek() == "{":
            self.take("{")
            while self.peek() != "}":
                label = self.take()
                op = self.take()[1]
                string = self.take()
                if label[0] != "name" or op not in ("=", "!=", "=~", "!~") or string[0] != "str":
                    raise ExprError(f'expected label="value" in {self.text!r}')
                matchers.append((label[1], op, re.sub(r"\\(.)", r"\1", string[1][1:-1])))
                if self.peek() == ",":
                    self.take(",")
            self.take("}")
        return Selector(value, tuple(matchers))


def _check_call(call: Call, text: str) -> Call:
    if call.fn == "histogram_quantile":
        if len(call.args) != 2 or not isinstance(call.args[0], Num):
            raise ExprError(f"histogram_quantile(q, histogram) takes a number and a histogram, in {text!r}")
        if not 0 <= call.args[0].value <= 1:
            raise ExprError(f"histogram_quantile: q must be within 0..1, in {text!r}")
    elif len(call.args) != 1:
        raise ExprError(f"{call.fn}() takes one argument, in {text!r}")
    elif call.fn in ("rate", "increase") and not isinstance(call.args[0], Selector):
        raise ExprError(f"{call.fn}() takes a metric selector, in {text!r}")
    return call


# evaluation

Vector = dict[Key, float]


def evaluate(node: object, first: Snapshot | None, second: Snapshot) -> float:
    """The expression's value; raises NoData when the scrapes cannot give one."""
    result = _eval(node, first, second)
    return _scalar(result, node)


def _scalar(value: float | Vector, node: object) -> float:
    if isinstance(value, dict):
        if not value:
            raise NoData(f"no series matched {_describe(node)}")
        return sum(value.values())
    return value


def _describe(node: object) -> str:
    if isinstance(node, Selector):
        return node.text()
    if isinstance(node, Call):
        return f"{node.fn}({', '.join(_describe(a) for a in node.args)})"
    if isinstance(node, Num):
        return f"{node.value:g}"
    if isinstance(node, BinOp):
        return f"{_describe(node.left)} {node.op} {_describe(node.right)}"
    return str(node)


def _eval(node: object, first: Snapshot | None, second: Snapshot) -> float | Vector:
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Selector):
        return select(second, node)
    if isinstance(node, BinOp):
        a = _scalar(_eval(node.left, first, second), node.left)
        b = _scalar(_eval(node.right, first, second), node.right)
        if node.op == "+":
            return a + b
        if node.op == "-":
            return a - b
        if node.op == "*":
            return a * b
        return a / b if b else math.nan
    assert isinstance(node, Call)
    if node.fn in ("rate", "increase"):
        assert isinstance(node.args[0], Selector)
        return _increase(node.args[0], first, second, per_second=node.fn == "rate")
    if node.fn == "histogram_quantile":
        q = node.args[0].value  # type: ignore[attr-defined]
        return _quantile(q, node.args[1], first, second)
    inner = _eval(node.args[0], first, second)
    values = list(inner.values()) if isinstance(inner, dict) else [inner]
    if not values:
        raise NoData(f"no series matched {_describe(node.args[0])}")
    if node.fn == "sum":
        return sum(values)
    if node.fn == "avg":
        return sum(values) / len(values)
    if node.fn == "min":
        return min(values)
    if node.fn == "max":
        return max(values)
    return float(len(values))


def select(snap: Snapshot, sel: Selector) -> Vector:
    return {k: v for k, v in snap.values.items() if k[1] == sel.name and _matches(dict(k[2]), sel.matchers)}


def _matches(labels: dict[str, str], matchers: tuple[tuple[str, str, str], ...]) -> bool:
    for name, op, want in matchers:
        have = labels.get(name, "")
        if op == "=" and have != want or op == "!=" and have == want:
            return False
        if op in ("=~", "!~") and (re.fullmatch(want, have) is None) == (op == "=~"):
            return False
    return True


def _need_first(first: Snapshot | None, what: str) -> Snapshot:
    if first is None:
        raise NoData(f"{what} needs two scrapes")
    return first


def _increase(sel: Selector, first: Snapshot | None, second: Snapshot, *, per_second: bool) -> Vector:
    before = _need_first(first, f"{'rate' if per_second else 'increase'}({sel.text()})")
    now = select(second, sel)
    elapsed = second.at - before.at
    if per_second and elapsed <= 0:
        raise NoData("the two scrapes were taken at the same time")
    out: Vector = {}
    for key, v2 in now.items():
        v1 = before.values.get(key, 0.0)
        delta = v2 - v1 if v2 >= v1 else v2  # a reset: the process restarted and counts from 0
        out[key] = delta / elapsed if per_second else delta
    return out


def _quantile(q: float, arg: object, first: Snapshot | None, second: Snapshot) -> float:
    if isinstance(arg, Selector):
        name = arg.name if arg.name.endswith("_bucket") else f"{arg.name}_bucket"
        buckets = _increase(Selector(name, arg.matchers), first, second, per_second=False)
    else:
        value = _eval(arg, first, second)
        if not isinstance(value, dict):
            raise NoData("histogram_quantile needs bucket series")
        buckets = value
    by_le: dict[float, float] = defaultdict(float)
    for (_, _, labels), v in buckets.items():
        le = dict(labels).get("le")
        if le is not None:
            by_le[float(le)] += v
    if not by_le:
        raise NoData(f"no histogram buckets matched {_describe(arg)}")
    return bucket_quantile(q, sorted(by_le.items()))


def bucket_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus' histogram_quantile over cumulative (upper bound, count) pairs, linear within a bucket."""
    if not buckets or not math.isinf(buckets[-1][0]):
        raise NoData("histogram has no +Inf bucket")
    total = buckets[-1][1]
    if total <= 0:
        raise NoData("no observations between the two scrapes")
    rank = q * total
    prev_le, prev_count = 0.0, 0.0
    for i, (le, count) in enumerate(buckets):
        if count >= rank:
            if math.isinf(le):
                return buckets[i - 1][0] if i > 0 else math.nan
            if i == 0 and le <= 0:
                return le
            if count == prev_count:
                return le
            return prev_le + (le - prev_le) * (rank - prev_count) / (count - prev_count)
        prev_le, prev_count = le, count
    return buckets[-2][0] if len(buckets) > 1 else math.nan
