"""Static reading of PromQL: which labels an expression's result is sure to carry, which series it reads.

Why: customer recording rules feed dashboards and the server-side tenant filter, so a result that
may lack `project_id` is a silent hole in tenancy. Rather than pattern-match `by (...)` lists, this
module follows labels through the expression the way Prometheus' engine builds result label sets
(aggregations keep only their `by` labels, one-to-one `on(...)` keeps only the matching labels,
`group_left(...)` copies labels from the "one" side, `label_replace` writes its destination, ...).

`LabelFlow.known` is the set of labels every output series is sure to carry with a non-empty value;
`open` says other labels may be there as well. `losses` records each place a watched label (e.g.
`project_id`) was known on the input and is no longer known on the output, with the offending
sub-expression, so a finding can say *where* it was dropped, not only that it is missing.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterable

import promql_parser as pp
import re2

# Functions whose result keeps the input's labels (minus __name__) – the default; listed here are
# the exceptions.
_SCALAR_FUNCS = {"time", "scalar", "pi"}
_NO_LABEL_FUNCS = {"vector", "time", "scalar", "pi", "day_of_month", "day_of_week", "day_of_year",
                   "days_in_month", "hour", "minute", "month", "year"}


@dataclass(frozen=True)
class Loss:
    """A watched label known on an operator's input and no longer known on its output."""

    label: str
    where: str  # the sub-expression that drops it (printed PromQL)
    why: str


@dataclass(frozen=True)
class LabelFlow:
    """What an expression's result series are sure to carry."""

    known: frozenset[str] = frozenset()
    open: bool = True
    kind: str = "vector"  # vector | scalar | string | matrix
    losses: tuple[Loss, ...] = ()

    def with_losses(self, *more: Iterable[Loss]) -> "LabelFlow":
        merged = list(self.losses)
        for group in more:
            for loss in group:
                if loss not in merged:
                    merged.append(loss)
        return LabelFlow(self.known, self.open, self.kind, tuple(merged))


@dataclass(frozen=True)
class SelectorUse:
    """One series selector in an expression: metric name (or None) and its matchers."""

    name: str | None
    matchers: tuple[tuple[str, str, str], ...]  # (label, op, value) with op in = != =~ !~
    text: str

    def equal(self, label: str) -> str | None:
        for name, op, value in self.matchers:
            if name == label and op == "=":
                return value
        return None


# Resolves the labels a selector's series are sure to carry (from the producer catalogue or from
# the recording rule that produces the metric). Returns (known labels, open).
SelectorResolver = Callable[[SelectorUse], tuple[frozenset[str], bool]]

_OPS = {"Equal": "=", "NotEqual": "!=", "Re": "=~", "NotRe": "!~"}


#: Limits on an expression's shape before it reaches the parser: promql-parser (Rust) recurses
#: per level and overflows its stack (a segfault, not an exception) at ~10,000 nested
#: parentheses or ~5,000 chained operators. Real rules stay far below both.
MAX_NESTING, MAX_OPERATORS = 64, 1000
_PROMQL_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`|#[^\n]*'
                           r"|[([{]|[)\]}]|==|!=|>=|<=|=~|!~|[-+*/%^<>]|\b(?:and|or|unless|atan2)\b")


def check_shape(expr: str) -> None:
    """ValueError when `expr` nests deeper than MAX_NESTING or chains more than MAX_OPERATORS
    operators (strings and comments skipped; an over-count only makes the bound stricter)."""
    depth = operators = 0
    for match in _PROMQL_TOKEN.finditer(expr):
        token = match.group()
        if token[0] in "([{":
            depth += 1
            if depth > MAX_NESTING:
                raise ValueError(f"expression nests deeper than {MAX_NESTING} brackets")
        elif token[0] in ")]}":
            depth = max(depth - 1, 0)
        elif token[0] not in "\"'`#":
            operators += 1
            if operators > MAX_OPERATORS:
                raise ValueError(f"expression has more than {MAX_OPERATORS} operators")


def parse(expr: str) -> pp.Expr:
    """Parse PromQL; raises ValueError with the parser's message (or check_shape's)."""
    check_shape(expr)
    return pp.parse(expr)


def _op(match_op: object) -> str:
    return _OPS.get(str(match_op).split(".")[-1], str(match_op))


def selector_use(vs: pp.VectorSelector) -> SelectorUse:
    """Flatten a VectorSelector, taking the name from `{__name__="x"}` when written that way."""
    matchers = tuple((m.name, _op(m.op), m.value) for m in vs.matchers.matchers)
    name = vs.name
    if not name:
        for label, op, value in matchers:
            if label == "__name__" and op == "=":
                name = value
    return SelectorUse(name or None, matchers, str(vs))


def selectors(expr: pp.Expr) -> list[SelectorUse]:
    """Every vector selector in the expression, in source order."""
    found: list[SelectorUse] = []

    def visit(node: object) -> None:
        if isinstance(node, pp.VectorSelector):
            found.append(selector_use(node))

    pp.walk(expr, visit)
    return found


def _regex_matches_empty(regex: str) -> bool:
    try:
        return re2.fullmatch(regex, "") is not None
    except re2.error:
        return True


def guaranteed_by_matchers(use: SelectorUse) -> frozenset[str]:
    """Labels a selector's matchers force to be present and non-empty."""
    out = set()
    for label, op, value in use.matchers:
        if label == "__name__":
            continue
        if op == "=" and value != "":
            out.add(label)
        elif op == "!=" and value == "":
            out.add(label)
        elif op == "=~" and not _regex_matches_empty(value):
            out.add(label)
    return frozenset(out)


def label_mentions(expr: pp.Expr) -> list[tuple[str, str]]:
    """Every label name the expression mentions, with the sub-expression that mentions it.

    Covers matchers, `by`/`without`, `on`/`ignoring`, `group_left/right`, `label_replace` and
    `label_join` label arguments and `count_values`' label. Used to keep customer identifiers out
    of platform rules.
    """
    found: list[tuple[str, str]] = []

    def visit(node: object) -> None:
        if isinstance(node, pp.VectorSelector):
            for m in node.matchers.matchers:
                found.append((m.name, str(node)))
        elif isinstance(node, pp.AggregateExpr):
            if node.modifier is not None:
                found.extend((lab, str(node)) for lab in node.modifier.labels)
            if str(node.op) == "count_values" and isinstance(node.param, pp.StringLiteral):
                found.append((node.param.val, str(node)))
        elif isinstance(node, pp.BinaryExpr) and node.modifier is not None:
            mod = node.modifier
            if mod.matching is not None:
                found.extend((lab, str(node)) for lab in mod.matching.labels)
            found.extend((lab, str(node)) for lab in (mod.group_labels or []))
        elif isinstance(node, pp.Call) and node.func.name in ("label_replace", "label_join"):
            args = node.args
            idx = [1, 3] if node.func.name == "label_replace" else [1] + list(range(3, len(args)))
            for i in idx:
                if i < len(args) and isinstance(args[i], pp.StringLiteral):
                    found.append((args[i].val, str(node)))

    pp.walk(expr, visit)
    return found


class FlowAnalyzer:
    """Computes `LabelFlow` for an expression; `watch` are the labels whose loss is recorded."""

    def __init__(self, resolve: SelectorResolver, watch: Iterable[str] = ("project_id",)):
        self.resolve = resolve
        self.watch = frozenset(watch)

    def flow(self, node: pp.Expr) -> LabelFlow:
        method = getattr(self, "_" + type(node).__name__, None)
        if method is None:  # pragma: no cover - future node types
            return LabelFlow()
        return method(node)

    # --- leaves -------------------------------------------------------------------------
    def _NumberLiteral(self, node: pp.NumberLiteral) -> LabelFlow:
        return LabelFlow(frozenset(), False, "scalar")

    def _StringLiteral(self, node: pp.StringLiteral) -> LabelFlow:
        return LabelFlow(frozenset(), False, "string")

    def _VectorSelector(self, node: pp.VectorSelector) -> LabelFlow:
        use = selector_use(node)
        known, open_ = self.resolve(use)
        return LabelFlow(frozenset(known) | guaranteed_by_matchers(use), open_, "vector")

    def _MatrixSelector(self, node: pp.MatrixSelector) -> LabelFlow:
        inner = self._VectorSelector(node.vector_selector)
        return LabelFlow(inner.known, inner.open, "matrix", inner.losses)

    def _SubqueryExpr(self, node: pp.SubqueryExpr) -> LabelFlow:
        inner = self.flow(node.expr)
        return LabelFlow(inner.known, inner.open, "matrix", inner.losses)

    def _ParenExpr(self, node: pp.ParenExpr) -> LabelFlow:
        return self.flow(node.expr)

    def _UnaryExpr(self, node: pp.UnaryExpr) -> LabelFlow:
        return self.flow(node.expr)

    # --- helpers ------------------------------------------------------------------------
    def _lost(self, before: LabelFlow, after_known: frozenset[str], where: object, why: str) -> list[Loss]:
        return [Loss(label, str(where), why) for label in sorted(self.watch)
                if label in before.known and label not in after_known]

    # --- aggregations -------------------------------------------------------------------
    def _AggregateExpr(self, node: pp.AggregateExpr) -> LabelFlow:
        inner = self.flow(node.expr)
        op = str(node.op)
        mod = node.modifier
        if op in ("topk", "bottomk", "limitk"):
            return LabelFlow(inner.known, inner.open, "vector", inner.losses)
        extra: set[str] = set()
        if op == "count_values" and isinstance(node.param, pp.StringLiteral):
            extra.add(node.param.val)
        if mod is None:
            known, open_, why = frozenset(), False, f"{op}(...) without `by` keeps no labels"
        elif str(mod.type).endswith("By"):
            by = set(mod.labels)
            known, open_ = frozenset(by & inner.known), False
            why = f"`{op} by ({', '.join(mod.labels)})` does not keep it"
        else:
            without = set(mod.labels)
            known, open_ = frozenset(inner.known - without), inner.open
            why = f"`{op} without ({', '.join(mod.labels)})` removes it"
        known = known | frozenset(extra)
        losses = self._lost(inner, known, node, why)
        return LabelFlow(known, open_, "vector").with_losses(inner.losses, losses)

    # --- binary operators ---------------------------------------------------------------
    def _BinaryExpr(self, node: pp.BinaryExpr) -> LabelFlow:
        lhs, rhs = self.flow(node.lhs), self.flow(node.rhs)
        carried = (lhs.losses, rhs.losses)
        if lhs.kind == "scalar" and rhs.kind == "scalar":
            return LabelFlow(frozenset(), False, "scalar").with_losses(*carried)
        if lhs.kind == "scalar":
            return LabelFlow(rhs.known, rhs.open, "vector").with_losses(*carried)
        if rhs.kind == "scalar":
            return LabelFlow(lhs.known, lhs.open, "vector").with_losses(*carried)
        op = str(node.op)
        mod = node.modifier
        matching = mod.matching if mod is not None else None
        on = matching is not None and str(matching.type).endswith("Include")
        match_labels = set(matching.labels) if matching is not None else set()
        if op in ("and", "unless"):
            return LabelFlow(lhs.known, lhs.open, "vector").with_losses(*carried)
        if op == "or":
            return LabelFlow(lhs.known & rhs.known, lhs.open or rhs.open, "vector").with_losses(*carried)
        card = str(mod.card).split(".")[-1] if mod is not None and mod.card is not None else "OneToOne"
        if card == "OneToMany":  # group_right: the right side is the "many" side
            many, one = rhs, lhs
        else:
            many, one = lhs, rhs
        if card == "OneToOne":
            if on:
                known, open_ = frozenset(match_labels & many.known), False
                why = f"one-to-one `on({', '.join(sorted(match_labels))})` keeps only the matching labels"
            else:
                known, open_ = frozenset(many.known - match_labels), many.open
                why = f"`ignoring({', '.join(sorted(match_labels))})` removes it"
        else:
            group = set(mod.group_labels or [])
            # Included labels are taken from the "one" side (deleted when it has none).
            known = frozenset((many.known - group) | (group & one.known))
            open_ = many.open
            why = "group_left/right copies it from the other side, which does not carry it"
        losses = self._lost(many, known, node, why)
        return LabelFlow(known, open_, "vector").with_losses(*carried, losses)

    # --- function calls -----------------------------------------------------------------
    def _Call(self, node: pp.Call) -> LabelFlow:
        name = node.func.name
        args = [self.flow(a) for a in node.args]
        carried = [a.losses for a in args]
        if name in _SCALAR_FUNCS:
            return LabelFlow(frozenset(), False, "scalar").with_losses(*carried)
        if name in _NO_LABEL_FUNCS and name not in ("vector",) and not node.args:
            return LabelFlow(frozenset(), False, "vector")
        if name == "vector":
            return LabelFlow(frozenset(), False, "vector").with_losses(*carried)
        if name in ("absent", "absent_over_time"):
            use = selectors(node.args[0])
            eq = frozenset(m[0] for m in use[0].matchers if m[1] == "=" and m[0] != "__name__") if len(use) == 1 else frozenset()
            return LabelFlow(eq, False, "vector")
        vector_args = [a for a in args if a.kind in ("vector", "matrix")]
        base = vector_args[0] if vector_args else LabelFlow(frozenset(), False, "vector")
        known, open_ = set(base.known), base.open
        if name == "histogram_quantile":
            known.discard("le")
        elif name == "label_replace" and len(node.args) == 5:
            known = self._label_replace(node, known)
        elif name == "label_join" and len(node.args) >= 3:
            dst = node.args[1].val if isinstance(node.args[1], pp.StringLiteral) else None
            srcs = [a.val for a in node.args[3:] if isinstance(a, pp.StringLiteral)]
            if dst and srcs and all(s in base.known for s in srcs):
                known.add(dst)
            elif dst:
                known.discard(dst)
        known_f = frozenset(known)
        losses = self._lost(base, known_f, node, f"{name}(...) overwrites it")
        return LabelFlow(known_f, open_, "vector").with_losses(*carried, losses)

    def _label_replace(self, node: pp.Call, known: set[str]) -> set[str]:
        """`label_replace(v, dst, replacement, src, regex)`: dst is set when regex matches src.

        We count dst as known when the replacement is non-empty text, every source label is known,
        and the regex matches every non-empty string (".+", "(.*)", ...); otherwise the series whose
        source does not match keep their old dst, so dst stays as known as it was.
        """
        dst, repl, src, regex = (a.val if isinstance(a, pp.StringLiteral) else None for a in node.args[1:])
        if dst is None or repl is None or src is None or regex is None:
            return known
        sources = [s for s in src.split(",") if s]
        if repl == "":
            return known - {dst}
        if sources and all(s in known for s in sources) and regex_total(regex):
            return known | {dst}
        return known


def regex_total(regex: str) -> bool:
    """True when an anchored RE2 regex matches every non-empty string we could feed it."""
    try:
        compiled = re2.compile(f"^(?:{regex})$")
    except re2.error:
        return False
    probes = ["a", "abc-123", "x/y/z", "A_b.c:d", " "]
    return all(compiled.match(p) for p in probes)


def label_bound(node: pp.Expr) -> frozenset[str] | None:
    """The labels a result series of `node` can carry at most, or None when nothing bounds them
    (a raw selector, `without`, a function of one). An over-approximation: both sides of an
    arithmetic or `or`, the left side of `and`/`unless`, `by` labels, label_replace's target."""
    if isinstance(node, (pp.ParenExpr, pp.UnaryExpr, pp.SubqueryExpr)):
        return label_bound(node.expr)
    if isinstance(node, (pp.NumberLiteral, pp.StringLiteral)):
        return frozenset()
    if isinstance(node, pp.AggregateExpr):
        mod = node.modifier
        extra = {node.param.val} if str(node.op) == "count_values" and isinstance(node.param, pp.StringLiteral) else set()
        if str(node.op) in ("topk", "bottomk", "limitk"):
            return label_bound(node.expr)
        if mod is None:
            return frozenset(extra)
        if str(mod.type).endswith("By"):
            return frozenset(set(mod.labels) | extra)
        return None
    if isinstance(node, pp.BinaryExpr):
        lhs = label_bound(node.lhs)
        if str(node.op) in ("and", "unless"):
            return lhs
        rhs = label_bound(node.rhs)
        if lhs is None or rhs is None:
            return None
        group = set((node.modifier.group_labels or []) if node.modifier is not None else [])
        return frozenset(lhs | rhs | group)
    if isinstance(node, pp.Call):
        bounds = []
        for arg in node.args:
            if isinstance(arg, pp.StringLiteral):
                continue
            bound = label_bound(arg)
            if bound is None:
                return None
            bounds.append(bound)
        added = set()
        if node.func.name in ("label_replace", "label_join") and len(node.args) > 1 \
                and isinstance(node.args[1], pp.StringLiteral):
            added.add(node.args[1].val)
        return frozenset(set().union(*bounds) | added)
    return None


# --- which input labels an expression reads -------------------------------------------------


@dataclass(frozen=True)
class InputLabelUse:
    """A label an expression needs on the series one selector reads: `where` is the
    sub-expression that uses it (a matcher, `by`, `on`, `group_left`, a label_replace source)."""

    label: str
    selector: SelectorUse
    where: str


def input_label_uses(expr: pp.Expr) -> list[InputLabelUse]:
    """Every (label, selector) pair where the expression's result depends on the selector's
    series carrying that label.

    Unlike `label_mentions`, a label is traced down to the selectors it comes from: a label that
    `label_replace` writes is not read from its input (its source label is), `group_left (x)`
    takes `x` from the "one" side only, `by` labels come from the aggregated expression, and a
    label removed by `without`/`ignoring` is not needed at all. So a relabel change that drops
    `namespace` is tied to the selectors whose series must carry it, and to no others."""
    found: list[InputLabelUse] = []
    _needs(expr, {}, found)
    return list(dict.fromkeys(found))


def _vector_arg(node: object) -> bool:
    return not isinstance(node, (pp.NumberLiteral, pp.StringLiteral))


def _needs(node: object, wanted: dict[str, str], out: list[InputLabelUse]) -> None:
    """Record what `node` reads; `wanted` are labels its parent needs on node's result."""
    if isinstance(node, pp.MatrixSelector):
        node = node.vector_selector
    if isinstance(node, pp.VectorSelector):
        use = selector_use(node)
        for label, where in wanted.items():
            out.append(InputLabelUse(label, use, where))
        for label, _op, _value in use.matchers:
            if label != "__name__":
                out.append(InputLabelUse(label, use, use.text))
        return
    if isinstance(node, (pp.ParenExpr, pp.UnaryExpr, pp.SubqueryExpr)):
        _needs(node.expr, wanted, out)
    elif isinstance(node, pp.AggregateExpr):
        _aggregate_needs(node, wanted, out)
    elif isinstance(node, pp.BinaryExpr):
        _binary_needs(node, wanted, out)
    elif isinstance(node, pp.Call):
        _call_needs(node, wanted, out)


def _aggregate_needs(node: pp.AggregateExpr, wanted: dict[str, str], out: list[InputLabelUse]) -> None:
    mod, where = node.modifier, str(node)
    if node.param is not None and _vector_arg(node.param):
        _needs(node.param, {}, out)
    if str(node.op) in ("topk", "bottomk", "limitk"):
        inner = dict(wanted)
    else:
        inner = {}
    if mod is not None and str(mod.type).endswith("By"):
        inner.update({label: wanted.get(label, where) for label in mod.labels})
    elif mod is not None:
        inner.update({k: v for k, v in wanted.items() if k not in set(mod.labels)})
    if str(node.op) == "count_values" and isinstance(node.param, pp.StringLiteral):
        inner.pop(node.param.val, None)
    _needs(node.expr, inner, out)


def _binary_needs(node: pp.BinaryExpr, wanted: dict[str, str], out: list[InputLabelUse]) -> None:
    mod, where = node.modifier, str(node)
    lhs_vec, rhs_vec = _vector_arg(node.lhs), _vector_arg(node.rhs)
    if not (lhs_vec and rhs_vec):
        for side, vec in ((node.lhs, lhs_vec), (node.rhs, rhs_vec)):
            _needs(side, wanted if vec else {}, out)
        return
    matching = mod.matching if mod is not None else None
    on = {label: where for label in matching.labels} if matching is not None and \
        str(matching.type).endswith("Include") else {}
    op = str(node.op)
    card = str(mod.card).split(".")[-1] if mod is not None and mod.card is not None else "OneToOne"
    if op == "or":
        _needs(node.lhs, {**wanted, **on}, out)
        _needs(node.rhs, {**wanted, **on}, out)
        return
    if card in ("ManyToOne", "OneToMany"):
        many, one = (node.lhs, node.rhs) if card == "ManyToOne" else (node.rhs, node.lhs)
        group = {label: where for label in (mod.group_labels or [])}
        _needs(many, {**{k: v for k, v in wanted.items() if k not in group}, **on}, out)
        _needs(one, {**group, **on}, out)
        return
    _needs(node.lhs, {**wanted, **on}, out)
    _needs(node.rhs, on, out)


def _call_needs(node: pp.Call, wanted: dict[str, str], out: list[InputLabelUse]) -> None:
    name, args, where = node.func.name, list(node.args), str(node)
    strings = [a.val if isinstance(a, pp.StringLiteral) else None for a in args]
    inner = dict(wanted)
    if name == "label_replace" and len(args) == 5:
        inner.pop(strings[1] or "", None)
        inner.update({s: where for s in (strings[3] or "").split(",") if s})
    elif name == "label_join" and len(args) >= 3:
        inner.pop(strings[1] or "", None)
        inner.update({s: where for s in strings[3:] if s})
    elif name == "histogram_quantile":
        inner["le"] = where
    elif name in ("absent", "absent_over_time"):
        inner = {}
    for arg in args:
        if _vector_arg(arg):
            _needs(arg, inner, out)
