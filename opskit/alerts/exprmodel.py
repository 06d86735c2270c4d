"""The PromQL subset opskit models (pure): its parser, and what a query returns on synthetic series.

opskit writes promtool tests for a threshold row's own `queries.prometheus` with it: each series selector
of the query becomes one input series (a counter with a constant rate inside rate()/increase()/irate(), a
constant gauge elsewhere, a full set of buckets under histogram_quantile), and `evaluate` says what the
query returns for chosen values, so the test can expect the alert's value. The scrape source
(opskit.metrics.scrape) evaluates the same trees over two scrapes of /metrics; its dialect
(`parse(text, scrape=True)`) has no ranges, no by/without and no irate (its rates are between the two
scrapes).

The subset: numbers, + - * /, parentheses, selectors with matchers, rate/irate/increase over a range,
sum/avg/min/max/count with by/without, histogram_quantile. Anything else raises `ExprError`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from opskit.units import parse_duration


class ExprError(ValueError):
    """The expression is not valid, or outside the subset (or its series cannot be built); the message says what."""


@dataclass(frozen=True)
class Selector:
    name: str
    matchers: tuple[tuple[str, str, str], ...] = ()  # (label, op, value)
    range_s: float | None = None

    @property
    def key(self) -> str:
        return self.name + "{" + ",".join(f"{k}{op}{v!r}" for k, op, v in self.matchers) + "}"

    def text(self) -> str:
        inner = ",".join(f'{k}{op}"{v}"' for k, op, v in self.matchers)
        return f"{self.name}{{{inner}}}" if inner else self.name


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
FUNCTIONS = (*RATES, *AGGREGATIONS, "histogram_quantile")


def parse(text: str, *, scrape: bool = False) -> object:
    """The expression's tree; `scrape` reads the scrape dialect, whose errors name the expression."""
    try:
        tokens: list[tuple[str, str]] = []
        pos, stripped = 0, text.strip()
        while pos < len(stripped):
            m = _TOKEN.match(stripped, pos)
            if not m or m.end() == pos:
                raise ExprError(f"cannot read {stripped[pos:pos + 20]!r}")
            kind = m.lastgroup or "op"
            tokens.append((kind, m.group(kind)))
            pos = m.end()
        parser = _Parser(tokens, scrape)
        node = parser.expr()
        if parser.pos != len(tokens):
            raise ExprError(f"unexpected {tokens[parser.pos][1]!r}")
    except ExprError as exc:
        if scrape:
            raise ExprError(f"{exc} in {text!r}") from None
        raise
    return node


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], scrape: bool) -> None:
        self.tokens, self.pos, self.scrape = tokens, 0, scrape

    def peek(self) -> str | None:
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> tuple[str, str]:
        if self.pos >= len(self.tokens):
            raise ExprError("the expression ends too early" + (f" (expected {expected!r})" if expected else ""))
        tok = self.tokens[self.pos]
        if expected is not None and tok[1] != expected:
            raise ExprError(f"expected {expected!r}, found {tok[1]!r}")
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
            raise ExprError(f"unexpected {value!r}")
        if value in FUNCTIONS and not (self.scrape and value == "irate"):
            return self.call(value)
        if self.peek() == "(":
            raise ExprError(f"function {value}() is not modelled")
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
        if grouping and (fn not in AGGREGATIONS or self.scrape):
            raise ExprError(f"{fn}() takes no by/without" + (" (not in a scrape expression)" if self.scrape else ""))
        if fn == "histogram_quantile":
            if len(args) != 2 or not isinstance(args[0], Num):
                raise ExprError("histogram_quantile(q, histogram) takes a number and a histogram")
            if not 0 <= args[0].value <= 1:
                raise ExprError("histogram_quantile: q must be within 0..1")
        elif len(args) != 1:
            raise ExprError(f"{fn}() takes one argument")
        elif fn in RATES and not isinstance(args[0], Selector):
            raise ExprError(f"{fn}() takes a metric selector")
        return Call(fn, tuple(args), grouping)

    def selector(self, name: str) -> Selector:
        matchers: list[tuple[str, str, str]] = []
        if self.peek() == "{":
            self.take()
            while self.peek() != "}":
                (kind, label), op, (string, raw) = self.take(), self.take()[1], self.take()
                if kind != "name" or op not in ("=", "!=", "=~", "!~") or string != "str":
                    raise ExprError(f'expected label="value", found {label}{op}{raw}')
                matchers.append((label, op, re.sub(r"\\(.)", r"\1", raw[1:-1])))
                if self.peek() == ",":
                    self.take()
            self.take("}")
        range_s = None
        if self.pos < len(self.tokens) and self.tokens[self.pos][0] == "dur":
            inner = self.take()[1][1:-1].strip()
            if self.scrape:
                raise ExprError(f"a range [{inner}]: rate() and increase() are between the two scrapes")
            if ":" in inner:
                raise ExprError("subqueries are not modelled")
            range_s = parse_duration(inner)
        return Selector(name, tuple(matchers), range_s)


# ---- evaluation on the synthetic series of a unit test -----------------------------------------------

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
                raise ExprError(f"range {n.key} outside rate()")
            kind = "gauge" if inside is None else "counter"
            if kind == "counter" and n.name.endswith("_bucket"):
                kind = "histogram"
            if found.get(n.key, (n, kind))[1] != kind:
                raise ExprError(f"{n.name} is read both as a counter and as a gauge")
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
                raise ExprError(f"cannot pick a value for {label}=~{value!r}")
            labels[label] = pick
    if not satisfies(s, labels):
        raise ExprError(f"the matchers of {s.key} need values opskit cannot pick")
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
            raise ExprError(f"{node.name} used without rate()")
        return Value(v, tuple(sorted(series_labels.items())))
    if isinstance(node, BinOp):
        return _binop(node.op, evaluate(node.left, values), evaluate(node.right, values))
    assert isinstance(node, Call)
    if node.fn in RATES:
        sel = node.args[0]
        if not isinstance(sel, Selector) or sel.range_s is None:
            raise ExprError(f"{node.fn}() of something other than a range selector")
        v, series_labels = values[sel.key]
        labels = tuple(sorted(series_labels.items()))
        scale = sel.range_s if node.fn == "increase" else 1.0
        if isinstance(v, dict):
            return Value(math.nan, labels, {le: r * scale for le, r in v.items()})
        return Value(v * scale, labels)
    if node.fn in AGGREGATIONS:
        inner = evaluate(node.args[-1], values)
        if inner.labels is None:
            raise ExprError(f"{node.fn}() of a scalar")
        kept = _group(inner.labels, node.grouping)
        if inner.buckets:
            if node.fn != "sum":
                raise ExprError(f"{node.fn}() of histogram buckets")
            if not node.grouping or "le" not in node.grouping[1] or node.grouping[0] != "by":
                raise ExprError("an aggregation of buckets that drops le")
            return Value(math.nan, kept, inner.buckets)
        return Value(1.0 if node.fn == "count" else inner.value, kept)
    if node.fn == "histogram_quantile":
        q, inner = evaluate(node.args[0], values), evaluate(node.args[1], values)
        if q.labels is not None or not inner.buckets:
            raise ExprError("histogram_quantile(q, buckets) needs a number and rates of buckets")
        return Value(bucket_quantile(q.value, inner.buckets), inner.labels)
    raise ExprError(f"function {node.fn}() is not modelled")


def _group(labels: Labels, grouping: tuple[str, tuple[str, ...]] | None) -> Labels:
    if grouping is None:
        return ()
    how, names = grouping
    return tuple((k, v) for k, v in labels if (k in names) == (how == "by") and k != "le")


def _binop(op: str, a: Value, b: Value) -> Value:
    if a.buckets or b.buckets:
        raise ExprError("arithmetic on histogram buckets")
    if a.labels is not None and b.labels is not None and a.labels != b.labels:
        raise ExprError("two vectors with different labels (no one-to-one match)")
    x, y = a.value, b.value
    if op == "/":
        result = x / y if y else (math.nan if x == 0 else math.copysign(math.inf, x))
    else:
        result = {"+": x + y, "-": x - y, "*": x * y}[op]
    return Value(result, a.labels if a.labels is not None else b.labels)


def bucket_quantile(q: float, buckets: dict[float, float]) -> float:
    """Prometheus' histogram_quantile over cumulative counts (or rates) by upper bound: linear within the
    bucket the rank falls in, the highest finite bound when it falls in +Inf, the first bucket from 0."""
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
            if (i == 0 and upper <= 0) or count == below:
                return upper
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    return math.nan
