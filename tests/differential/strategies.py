"""Hypothesis strategies for random relabel cases (rules + series): vmagent v1.150 (every action,
`if:` selectors, `{{label}}` templates, graphite) and Prometheus.

Small alphabets on purpose: label names collide, regexes hit and miss, `$`-templates meet
missing groups. Regexes come from a little grammar of RE2 constructs that Go's regexp (in
vmagent) accepts the same way: literals, `.`, classes, `\\d`/`\\w`, groups (capturing,
non-capturing, named with `(?P<n>…)`), `(?i)` flags inside groups, alternation, quantifiers
and anchors inside the pattern.
"""
from __future__ import annotations

import json

from hypothesis import strategies as st

from fleet.relabel.engine import FLAVOR_ACTIONS, rule_from_mapping

NAMES = ["__name__", "a", "b", "ab", "A", "__x", "job"]
VALUES = ["", "a", "b", "A", "ab", "a;b", "1", "x\ny", "é", "aA1", "straße"]
LITERALS = ["a", "b", "A", "1", ";", "_", "é", "job", "__"]
SEPARATORS = [";", "", ",", ";;"]
REPLACEMENTS = ["$1", "${1}", "$2", "$0", "x$1", "$1x", "${1}x", "$$", "", "lit", "$n", "${n}_$1", "$1;$2"]
TARGETS = ["a", "b", "c", "__name__", "__x", "$1", "${1}", "l_$1", "${1}_${2}", "$n", "t$0"]


def regexes(max_depth: int = 3) -> st.SearchStrategy[str]:
    atoms = st.one_of(
        st.sampled_from(LITERALS), st.just("."), st.sampled_from(["[ab]", "[^a]", "[a-z]", "[A-Z0-9]"]),
        st.sampled_from([r"\d", r"\w", r"\s"]), st.just(""),
    )

    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.tuples(inner, inner).map("".join),
            st.tuples(inner, inner).map("|".join),
            inner.map(lambda r: f"({r})"),
            inner.map(lambda r: f"(?:{r})"),
            inner.map(lambda r: f"(?P<n>{r})"),
            inner.map(lambda r: f"(?i){r}"),
            inner.map(lambda r: f"((?i){r})"),
            inner.map(lambda r: f"(?i:{r})"),
            st.tuples(inner, st.sampled_from(["*", "+", "?", "{1,2}", "*?"])).map(
                lambda t: f"(?:{t[0]}){t[1]}" if t[0] else t[0]),
            inner.map(lambda r: f"^{r}"),
            inner.map(lambda r: f"{r}$"),
            inner.map(lambda r: f"{r}.*"),
            inner.map(lambda r: f"{r}(.+)"),
        )

    return st.recursive(atoms, extend, max_leaves=max_depth * 2)


def _labels_list(min_size: int = 0) -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(NAMES + ["c", "missing"]), min_size=min_size, max_size=3)


# Built once: constructing strategies (st.recursive above all) per draw is what is slow.
_REGEX = regexes()
_SOURCES = {n: _labels_list(n) for n in (0, 1, 2)}
# replace and labelmap carry most of the semantics, so they come up more often
_ACTIONS = st.sampled_from(sorted(FLAVOR_ACTIONS["vmagent"]) + ["replace", "replace", "labelmap", "keep", "drop"])
_TARGETS_ALL = st.sampled_from(TARGETS)
_TARGETS_PLAIN = st.sampled_from(TARGETS[:5])
_MODULI = st.sampled_from([1, 2, 3, 10, 1000, 2**40])
# `{{label}}` references (vmagent fills them before the regex runs), `$` meeting them
_REPLACEMENTS = st.sampled_from(REPLACEMENTS + ["{{a}}", "{{b}}-$1", "{{__name__}}", "{{a", "x{{missing}}y", "{{a}}$1"])
_SEPARATORS = st.sampled_from(SEPARATORS)
_DICE = st.integers(0, 3)
_GRAPHITE_MATCH = st.sampled_from(["*", "a.*", "*.b", "a.*.b", "*.*", "a*b", "**", "m"])
_GRAPHITE_TEMPLATES = st.sampled_from(["$1", "${1}", "$0", "$2", "x_$1_${2}", "${x}", "$", "lit"])
_FILTER_OPS = st.sampled_from(["=", "!=", "=~", "!~"])
_FILTER_NAMES = st.sampled_from(NAMES + ["c"])


@st.composite
def label_filter(draw: st.DrawFn) -> str:
    op = draw(_FILTER_OPS)
    value = draw(_REGEX) if "~" in op else draw(st.sampled_from(VALUES))
    return f"{draw(_FILTER_NAMES)}{op}{json.dumps(value, ensure_ascii=False)}"


@st.composite
def selector(draw: st.DrawFn) -> str:
    """A series selector: optional metric name, `,`-joined filters, `or` groups."""
    name = draw(st.sampled_from(["", "", "a", "ab", "job"]))
    groups = draw(st.lists(st.lists(label_filter(), min_size=1, max_size=2), min_size=0, max_size=2))
    if not groups:
        return (name or "a") + draw(st.sampled_from(["", "{}"]))
    return name + "{" + " or ".join(", ".join(g) for g in groups) + "}"


_IF = st.one_of(selector(), st.lists(selector(), min_size=1, max_size=2))


_PERTURB = st.sampled_from([
    ("regex", "a"), ("regex", ""), ("target_label", "t"), ("source_labels", []), ("source_labels", ["a"]),
    ("replacement", "x"), ("modulus", 0), ("match", "a.*"), ("labels", {"a": "$1"}), ("labels", {}),
    ("if", "{a=~\"(\"}"), ("if", "a{__name__=\"b\"}"), ("if", "sum(a)"), ("if", ["a", "{b=\"1\",}"]),
    ("action", "explode"), ("action", "KEEP"), ("regex", "a)|(b"), ("regex", "^*a"), ("regex", "(?<n>a)"),
    ("separator", ""), ("if", "{a=\"x\" or b!~\"y\"}"), ("regex", ["a", "b"]), ("target_label", ""),
    ("if", "{\"m\", a=\"1\"}"), ("if", "{a\\.b=\"x\"}"), ("if", "m{a=\"1\"} offset 5m"), ("if", "{a}"),
])


@st.composite
def raw_rules(draw: st.DrawFn) -> dict:
    """A rule as `rules` draws it, then perhaps one field set or removed: some vmagent accepts,
    some it refuses (the engine must agree either way)."""
    rule = draw(_one_rule())
    for _ in range(draw(st.integers(0, 2))):
        key, value = draw(_PERTURB)
        if draw(_DICE) == 0:
            rule.pop(key, None)
        else:
            rule[key] = value
    return rule


@st.composite
def rules(draw: st.DrawFn) -> dict:
    """One relabel_config that vmagent v1.150 accepts (re-drawn until the engine accepts it):
    every action, `if` filters on any of them, `{{label}}` templates."""
    for _ in range(20):
        rule = draw(_one_rule())
        try:
            rule_from_mapping(rule, flavor="vmagent")
        except Exception:
            continue
        return rule
    return {"action": "labeldrop", "regex": "zz_never"}


@st.composite
def _one_rule(draw: st.DrawFn) -> dict:
    """One rule of any vmagent action, as a user may write it (not validated)."""
    action = draw(_ACTIONS)
    rule: dict = {"action": action} if draw(_DICE) or action != "replace" else {}
    with_if = draw(_DICE) == 0
    if with_if:
        rule["if"] = draw(_IF)
    if action in ("keep_if_equal", "drop_if_equal"):
        rule["source_labels"] = draw(_SOURCES[2])
    elif action in ("keep", "drop"):
        rule["source_labels"] = draw(_SOURCES[0] if with_if else _SOURCES[1])
    elif action in ("hashmod", "lowercase", "uppercase", "replace_all", "keep_if_contains", "drop_if_contains"):
        rule["source_labels"] = draw(_SOURCES[1])
    elif action in ("replace", "keepequal", "dropequal") and draw(_DICE):
        rule["source_labels"] = draw(_SOURCES[0])
    if action in ("replace", "replace_all"):
        rule["target_label"] = draw(_TARGETS_ALL)
    elif action in ("hashmod", "lowercase", "uppercase", "keepequal", "dropequal", "keep_if_contains",
                    "drop_if_contains"):
        rule["target_label"] = draw(_TARGETS_PLAIN)
    if action == "hashmod":
        rule["modulus"] = draw(_MODULI)
    if action == "graphite":
        rule["match"] = draw(_GRAPHITE_MATCH)
        rule["labels"] = draw(st.dictionaries(st.sampled_from(["__name__", "a", "job", "c"]),
                                              _GRAPHITE_TEMPLATES, min_size=1, max_size=2))
    takes_regex = action in ("replace", "keep", "drop", "labelmap", "labelmap_all", "labeldrop", "labelkeep",
                             "replace_all", "hashmod", "lowercase", "uppercase")
    if action in ("keep_metrics", "drop_metrics"):
        if not with_if or draw(_DICE):
            rule["regex"] = draw(_REGEX)
    elif takes_regex and draw(_DICE):
        rule["regex"] = draw(_REGEX)
    if action in ("replace", "labelmap", "labelmap_all", "replace_all") and draw(_DICE) >= 2:
        rule["replacement"] = draw(_REPLACEMENTS)
    if rule.get("source_labels") and draw(_DICE) == 0:
        rule["separator"] = draw(_SEPARATORS)
    return rule


_SERIES = st.dictionaries(st.sampled_from(NAMES), st.sampled_from(VALUES), min_size=1, max_size=4)


def series() -> st.SearchStrategy[dict[str, str]]:
    return _SERIES


_VM_RULES = rules()


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[dict], list[dict[str, str]]]:
    """(rules, series) pairs: 1-4 rules, 1-3 series; nothing avoided (newline values meet
    dotall regexes, regexes that simplify to `.*` meet `$1`)."""
    rule_list = draw(st.lists(_VM_RULES, min_size=1, max_size=4))
    series_list = draw(st.lists(_SERIES, min_size=1, max_size=3))
    return rule_list, series_list


# --------------------------------------------------------------------------------------------
# Prometheus flavour (real Prometheus, the pinned build, as the oracle: differential/prometheus.py)
#
# Cases are scraped, so every series has a valid metric name, and they exercise the scrape's
# target labels too (`job`, `instance`, `exported_job` collide with what the scrape adds).
# Nothing is avoided: the oracle is the Prometheus release Alloy vendors, whose semantics the
# engine's prometheus flavor models (dotall `^(?s:re)$`, newline values included).

PROM_METRIC_NAMES = ["m", "a", "ab", "A", "__x", "job"]
PROM_NAMES = [n for n in NAMES if n != "__name__"] + ["instance", "exported_job"]
# Patterns whose alternation escapes the anchors (`a)|(b` → `^(?s:a)|(b)$`), empty branches
# included: Prometheus accepts them (vmagent compiles the bare regex too and refuses).
_ESCAPING = st.one_of(
    st.tuples(_REGEX, _REGEX).map(")|(".join),
    st.tuples(_REGEX, st.sampled_from(["", "a", ".*", "b$"])).map(")|(".join),
    st.tuples(st.sampled_from(["", "a", "^b", "(a"]), _REGEX).map(")|(".join),
    st.tuples(_REGEX, _REGEX).map(lambda t: f"{t[0]})|(?:|{t[1]}"),
)
_PROM_ACTIONS = st.sampled_from(sorted(FLAVOR_ACTIONS["prometheus"]) + ["replace", "replace", "labelmap"])
_PROM_TARGETS_PLAIN = st.sampled_from(TARGETS[:5] + ["job", "instance"])


@st.composite
def prometheus_rules(draw: st.DrawFn) -> dict:
    """One relabel_config Prometheus accepts (re-drawn until the engine accepts it)."""
    for _ in range(20):
        action = draw(_PROM_ACTIONS)
        rule: dict = {"action": action} if draw(_DICE) or action != "replace" else {}
        if action != "replace" and draw(_DICE) == 0:
            rule["action"] = action.capitalize()  # actions are case-insensitive in Prometheus
        if action in ("keepequal", "dropequal"):
            rule["source_labels"] = draw(_SOURCES[1])
        elif action in ("keep", "drop", "hashmod", "lowercase", "uppercase"):
            # Prometheus (unlike vmagent) accepts them without source_labels: val is ""
            rule["source_labels"] = draw(_SOURCES[1] if draw(_DICE) else _SOURCES[0])
        elif action == "replace" and draw(_DICE):
            rule["source_labels"] = draw(_SOURCES[0])
        if action == "replace":
            rule["target_label"] = draw(_TARGETS_ALL)
        elif action in ("hashmod", "lowercase", "uppercase", "keepequal", "dropequal"):
            rule["target_label"] = draw(_PROM_TARGETS_PLAIN)
        if action == "hashmod":
            rule["modulus"] = draw(_MODULI)
        if action in ("replace", "keep", "drop", "labelmap", "labeldrop", "labelkeep") and draw(_DICE):
            rule["regex"] = draw(_ESCAPING if draw(_DICE) == 0 else _REGEX)
        if action in ("replace", "labelmap") and draw(_DICE) >= 2:
            rule["replacement"] = draw(_REPLACEMENTS)
        if rule.get("source_labels") and action not in ("keepequal", "dropequal") and draw(_DICE) == 0:
            rule["separator"] = draw(_SEPARATORS)
        try:
            rule_from_mapping(rule, flavor="prometheus")
        except Exception:
            continue
        return rule
    return {"action": "labeldrop", "regex": "zz_never"}


_PROM_SERIES = st.builds(
    lambda name, labels: {"__name__": name, **labels},
    st.sampled_from(PROM_METRIC_NAMES),
    st.dictionaries(st.sampled_from(PROM_NAMES), st.sampled_from(VALUES), max_size=4))


@st.composite
def prometheus_cases(draw: st.DrawFn) -> tuple[list[dict], list[dict[str, str]]]:
    """(rules, series) for the prometheus flavour: 1-4 rules, 1-3 scrapeable series."""
    rule_list = draw(st.lists(prometheus_rules(), min_size=1, max_size=4))
    series_list = draw(st.lists(_PROM_SERIES, min_size=1, max_size=3))
    return rule_list, series_list
