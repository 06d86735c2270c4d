"""A model of how Prometheus evaluates a small PromQL subset on the synthetic series of a unit test (pure).

It lets opskit write promtool tests for a threshold row's own `queries.prometheus`: each series selector
of the query becomes one input series (a counter with a constant rate inside rate()/increase()/irate(), a
constant gauge elsewhere, a full set of buckets under histogram_quantile), and the model says what the
query returns for chosen values, so the test can expect the alert's value. The subset: numbers,
+ - * /, parentheses, selectors with matchers, rate/irate/increase over a range, sum/avg/min/max/count
with by/without, histogram_quantile. Anything else is `Unsupported`, and the row keeps hand-written tests.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from opskit.units import parse_duration


class Unsupported(Exception):
    """The expression is outside the subset (or its series cannot be built); the message says what."""


@dataclass(frozen=True)
class Selector:
    name: str
    matchers: tuple[tuple[str, str, str], ...]  # (label, op, value)
    range_s: float | None = None

    @property
    def key(self) -> str:
        return self.name + "{" + ",".join(f"{k}{op}{v!r}" for k, op, v in self.matchers) + "}"


@dataclass(frozen=True)
class Num:
    value: float


@dataclass(frozen=True)
class Call:
    fn: str
    args: tuple[object, ...]
    grouping: tuple[str, tuple[str, ...]] | None = None  # ('by' | 'without', labels)


@dataclass(frozen=True)
class BinOp:
    op: str
    left: object
    right: object


_TOKEN = re.compile(r"""\s*(?:(?P<dur>\[[^\]]*\])|(?P<num>[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?)
    |(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)|(?P<str>"(?:[^"\\]|\\.)*")|(?P<op>=~|!~|!=|[-+*/(),{}=]))""", re.VERBOSE)
RATES = ("rate", "irate", "increase")
AGGREGATIONS = ("sum", "avg", "min", "max", "count")


def parse(text: str) -> object:
    tokens: list[tuple[str, str]] = []
    pos, text = 0, text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise Unsupported(f"cannot read {text[pos:pos + 20]!r}")
        kind = m.lastgroup or "op"
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    parser = _Parser(tokens)
    node = parser.expr()
    if parser.pos != len(tokens):
        raise Unsupported(f"unexpected {tokens[parser.pos][1]!r}")
    return node


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens, self.pos = tokens, 0

    def peek(self) -> str | None:
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> tuple[str, str]:
        if self.pos >= len(self.tokens):
            raise Unsupported("the expression ends too early")
        tok = self.tokens[self.pos]
        if expected is not None and tok[1] != expected:
            raise Unsupported(f"expected {expected!r}, found {tok[1]!r}")
        self.pos += 1
        return tok

    def expr(self) -> object:
        node = self.term()
        while self.peek() in ("+", "-"):
            node = BinOp(self.take()[1], node, self.term())
        return node

    def term(self) -> object:
        node = self.factor()
        while self.peek() in ("*", "/"):
            node = BinOp(self.take()[1], node, self.factor())
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
            raise Unsupported(f"unexpected {value!r}")
        if value in AGGREGATIONS or value in RATES or value == "histogram_quantile":
            return self.call(value)
        if self.peek() == "(":
            raise Unsupported(f"function {value}() is not modelled")
        return self.selector(value)

    def grouping(self) -> tuple[str, tuple[str, ...]]:
        how = self.take()[1]
        self.take("(")
        labels: list[str] = []
        while self.peek() != ")":
            labels.append(self.take()[1])
            if self.peek() == ",":
                self.take()
        self.take(")")
        return how, tuple(labels)

    def call(self, fn: str) -> Call:
        grouping = self.grouping() if self.peek() in ("by", "without") else None
        self.take("(")
        args = [self.expr()]
        while self.peek() == ",":
            self.take()
            args.append(self.expr())
        self.take(")")
        if self.peek() in ("by", "without"):
            grouping = self.grouping()
        if grouping and fn not in AGGREGATIONS:
            raise Unsupported(f"{fn}() takes no by/without")
        return Call(fn, tuple(args), grouping)

    def selector(self, name: str) -> Selector:
        matchers: list[tuple[str, str, str]] = []
        if self.peek() == "{":
            self.take()
            while self.peek() != "}":
                label = self.take()[1]
                op = self.take()[1]
                kind, raw = self.take()
                if kind != "str" or op not in ("=", "!=", "=~", "!~"):
                    raise Unsupported(f"matcher {label}{op}{raw} is not modelled")
                matchers.append((label, op, raw[1:-1].encode().decode("unicode_escape")))
                if self.peek() == ",":
                    self.take()
            self.take("}")
        range_s = None
        if self.pos < len(self.tokens) and self.tokens[self.pos][0] == "dur":
            inner = self.take()[1][1:-1].strip()
            if ":" in inner:
                raise Unsupported("subqueries are not modelled")
            range_s = parse_duration(inner)
        return Selector(name, tuple(matchers), range_s)


# ---- evaluation ----------------------------------------------------------------------------------------

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Value:
    """One series (or a scalar when labels is None); `buckets` for rates of histogram buckets (le -> rate)."""

    value: float
    labels: Labels | None
    buckets: dict[float, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Leaf:
    """A selector of the query as the test builds it."""

    selector: Selector
    kind: str  # 'counter' | 'gauge' | 'histogram'
    labels: dict[str, str]


def leaves(node: object) -> list[Leaf]:
    """Every selector of the expression, once, in order, with the labels its input series gets."""
    found: dict[str, tuple[Selector, str]] = {}

    def walk(n: object, inside: str | None) -> None:
        if isinstance(n, Selector):
            if inside is None and n.range_s is not None:
                raise Unsupported(f"range {n.key} outside rate()")
            kind = "gauge" if inside is None else "counter"
            if kind == "counter" and n.name.endswith("_bucket"):
                kind = "histogram"
            if found.get(n.key, (n, kind))[1] != kind:
                raise Unsupported(f"{n.name} is read both as a counter and as a gauge")
            found[n.key] = (n, kind)
        elif isinstance(n, Call):
            for a in n.args:
                walk(a, n.fn if n.fn in RATES else inside)
        elif isinstance(n, BinOp):
            walk(n.left, inside)
            walk(n.right, inside)

    walk(node, None)
    own = {key: _labels_for(s) for key, (s, _) in found.items()}
    # every series carries every equality label of the query where no selector forbids it, so that
    # `a{job="x"} / b` matches one to one as it does on a real target exporting both
    common: dict[str, str] = {}
    for labels in own.values():
        for k, v in labels.items():
            common.setdefault(k, v)
    out = []
    for key, (sel, kind) in found.items():
        merged = {**common, **own[key]}
        out.append(Leaf(sel, kind, merged if satisfies(sel, merged) else own[key]))
    return out


def satisfies(s: Selector, labels: dict[str, str]) -> bool:
    for label, op, value in s.matchers:
        have = labels.get(label, "")
        if ((op == "=" and have != value) or (op == "!=" and have == value)
                or (op == "=~" and not re.fullmatch(value, have)) or (op == "!~" and re.fullmatch(value, have))):
            return False
    return True


def _labels_for(s: Selector) -> dict[str, str]:
    labels: dict[str, str] = {}
    for label, op, value in s.matchers:
        if op == "=":
            labels[label] = value
        elif op == "=~":
            pick = value.split("|")[0].replace("\\", "")  # the first alternative, as a literal
            if re.fullmatch(value, pick) is None:
                raise Unsupported(f"cannot pick a value for {label}=~{value!r}")
            labels[label] = pick
    if not satisfies(s, labels):
        raise Unsupported(f"the matchers of {s.key} need values opskit cannot pick")
    return labels


Reading = tuple[float | dict[float, float], dict[str, str]]  # (value or bucket rates, the series' labels)


def evaluate(node: object, values: dict[str, Reading]) -> Value:
    """What the query returns when each leaf (by selector key) has the given rate/value, or (histograms)
    the given per-second rate of each bucket bound (cumulative, +Inf included)."""
    if isinstance(node, Num):
        return Value(node.value, None)
    if isinstance(node, Selector):
        v, series_labels = values[node.key]
        if isinstance(v, dict):
            raise Unsupported(f"{node.name} used without rate()")
        return Value(v, tuple(sorted(series_labels.items())))
    if isinstance(node, BinOp):
        return _binop(node.op, evaluate(node.left, values), evaluate(node.right, values))
    assert isinstance(node, Call)
    if node.fn in RATES:
        sel = node.args[0]
        if not isinstance(sel, Selector) or sel.range_s is None:
            raise Unsupported(f"{node.fn}() of something other than a range selector")
        v, series_labels = values[sel.key]
        labels = tuple(sorted(series_labels.items()))
        scale = sel.range_s if node.fn == "increase" else 1.0
        if isinstance(v, dict):
            return Value(math.nan, labels, {le: r * scale for le, r in v.items()})
        return Value(v * scale, labels)
    if node.fn in AGGREGATIONS:
        inner = evaluate(node.args[-1], values)
        if inner.labels is None:
            raise Unsupported(f"{node.fn}() of a scalar")
        kept = _group(inner.labels, node.grouping)
        if inner.buckets:
            if node.fn != "sum":
                raise Unsupported(f"{node.fn}() of histogram buckets")
            if not node.grouping or "le" not in node.grouping[1] or node.grouping[0] != "by":
                raise Unsupported("an aggregation of buckets that drops le")
            return Value(math.nan, kept, inner.buckets)
        return Value(1.0 if node.fn == "count" else inner.value, kept)
    if node.fn == "histogram_quantile":
        q, inner = evaluate(node.args[0], values), evaluate(node.args[1], values)
        if q.labels is not None or not inner.buckets:
            raise Unsupported("histogram_quantile(q, buckets) needs a number and rates of buckets")
        return Value(bucket_quantile(q.value, inner.buckets), inner.labels)
    raise Unsupported(f"function {node.fn}() is not modelled")


def _group(labels: Labels, grouping: tuple[str, tuple[str, ...]] | None) -> Labels:
    if grouping is None:
        return ()
    how, names = grouping
    return tuple((k, v) for k, v in labels if (k in names) == (how == "by") and k != "le")


def _binop(op: str, a: Value, b: Value) -> Value:
    if a.buckets or b.buckets:
        raise Unsupported("arithmetic on histogram buckets")
    if a.labels is not None and b.labels is not None and a.labels != b.labels:
        raise Unsupported("two vectors with different labels (no one-to-one match)")
    x, y = a.value, b.value
    if op == "/":
        result = x / y if y else (math.nan if x == 0 else math.copysign(math.inf, x))
    else:
        result = {"+": x + y, "-": x - y, "*": x * y}[op]
    return Value(result, a.labels if a.labels is not None else b.labels)


def bucket_quantile(q: float, buckets: dict[float, float]) -> float:
    """Prometheus' histogram_quantile: linear within the bucket the rank falls in, the highest finite
    bound when it falls in +Inf, the bucket's upper bound's share from 0 for the first bucket."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    if total <= 0 or not math.isinf(bounds[-1]):
        return math.nan
    rank = q * total
    lower, below = 0.0, 0.0
    for i, upper in enumerate(bounds):
        count = buckets[upper]
        if count >= rank:
            if math.isinf(upper):
                return bounds[i - 1] if i else math.nan
            if i == 0 and upper <= 0:
                return upper
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    return math.nan
