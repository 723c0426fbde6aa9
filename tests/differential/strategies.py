"""Hypothesis strategies for random vmagent relabel cases (rules + series).

Small alphabets on purpose: label names collide, regexes hit and miss, `$`-templates meet
missing groups. Regexes come from a little grammar of RE2 constructs that Go's regexp (in
vmagent) accepts the same way: literals, `.`, classes, `\\d`/`\\w`, groups (capturing,
non-capturing, named with `(?P<n>…)`), `(?i)` flags inside groups, alternation, quantifiers
and anchors inside the pattern.
"""
from __future__ import annotations

from hypothesis import strategies as st

from fleet.relabel.engine import DEFAULT_REGEX, FLAVOR_ACTIONS, rule_from_mapping
from fleet.relabel.regexlang import Lang

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
_ACTIONS = st.sampled_from(sorted(FLAVOR_ACTIONS["vmagent"]) + ["replace", "replace", "labelmap"])
_TARGETS_ALL = st.sampled_from(TARGETS)
_TARGETS_PLAIN = st.sampled_from(TARGETS[:5])
_MODULI = st.sampled_from([1, 2, 3, 10, 1000, 2**40])
_REPLACEMENTS = st.sampled_from(REPLACEMENTS)
_SEPARATORS = st.sampled_from(SEPARATORS)
_DICE = st.integers(0, 3)


@st.composite
def rules(draw: st.DrawFn) -> dict:
    """One relabel_config that vmagent accepts (re-drawn until the engine accepts it)."""
    for _ in range(20):
        action = draw(_ACTIONS)
        rule: dict = {"action": action} if draw(_DICE) or action != "replace" else {}
        if action in ("keep_if_equal", "drop_if_equal"):
            rule["source_labels"] = draw(_SOURCES[2])
        elif action in ("keep", "drop", "hashmod", "lowercase", "uppercase"):
            rule["source_labels"] = draw(_SOURCES[1])
        elif action == "replace" and draw(_DICE):
            rule["source_labels"] = draw(_SOURCES[0])
        if action in ("replace", "hashmod", "lowercase", "uppercase"):
            rule["target_label"] = draw(_TARGETS_ALL if action == "replace" else _TARGETS_PLAIN)
        if action == "hashmod":
            rule["modulus"] = draw(_MODULI)
        if action not in ("keep_if_equal", "drop_if_equal", "hashmod", "lowercase", "uppercase") \
                and draw(_DICE):
            rule["regex"] = draw(_REGEX)
        if action in ("replace", "labelmap") and draw(_DICE) >= 2:
            rule["replacement"] = draw(_REPLACEMENTS)
        if rule.get("source_labels") and draw(_DICE) == 0:
            rule["separator"] = draw(_SEPARATORS)
        try:
            rule_from_mapping(rule, flavor="vmagent")
        except Exception:
            continue
        return rule
    return {"action": "labeldrop", "regex": "zz_never"}


_SERIES = st.dictionaries(st.sampled_from(NAMES), st.sampled_from(VALUES), min_size=1, max_size=4)


def series() -> st.SearchStrategy[dict[str, str]]:
    return _SERIES


def matches_everything(regex: str) -> bool:
    """Whether `regex` (anchored, dotall) matches every string: an over-approximation of the
    regexes vmagent v1.150 simplifies to `.*` and then takes for its default `(.*)`
    (lib/promrelabel isDefaultRegex), e.g. `(?:.*$)`, `(?:(?:.)*)`, `(?i:(?P<n>.*))`."""
    try:
        return Lang.from_relabel(regex, dotall=True).equivalent(Lang.any())
    except Exception:  # an unsupported construct: not something to exclude
        return False


def _modelled_by_the_engine(rule: dict) -> bool:
    """Not one of the two v1.150 behaviours the engine's vmagent flavor does not model yet
    (pinned in test_relabel_differential.V1150_OPEN): a regex spelled otherwise than `.*`/`(.*)`
    that v1.150 takes for the default, and (handled in `cases`) a `.` meeting a newline."""
    regex = rule.get("regex")
    return not (isinstance(regex, str) and regex not in (".*", "(.*)") and matches_everything(regex))


_VM_RULES = rules().filter(_modelled_by_the_engine)


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[dict], list[dict[str, str]]]:
    """(rules, series) pairs: 1-4 rules, 1-3 series.

    vmagent v1.150 matches `.` against a newline (its regexes are simplified to a dotall form)
    where the engine's vmagent flavor still models 1.79.5's `^(?:re)$`: like the Prometheus
    cases below, a case keeps its newline values only when no value-matching regex has a `.`.
    """
    rule_list = draw(st.lists(_VM_RULES, min_size=1, max_size=4))
    series_list = draw(st.lists(_SERIES, min_size=1, max_size=3))
    if any(dot_meets_values(r) for r in rule_list):
        series_list = [{k: v.replace("\n", "") for k, v in s.items()} for s in series_list]
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
# included: Prometheus accepts them (vmagent 1.79.5 compiles the bare regex too and refuses).
_ESCAPING = st.one_of(
    st.tuples(_REGEX, _REGEX).map(")|(".join),
    st.tuples(_REGEX, st.sampled_from(["", "a", ".*", "b$"])).map(")|(".join),
    st.tuples(st.sampled_from(["", "a", "^b", "(a"]), _REGEX).map(")|(".join),
    st.tuples(_REGEX, _REGEX).map(lambda t: f"{t[0]})|(?:|{t[1]}"),
)
_PROM_ACTIONS = st.sampled_from(sorted(FLAVOR_ACTIONS["prometheus"]) + ["replace", "replace", "labelmap"])
_PROM_TARGETS_PLAIN = st.sampled_from(TARGETS[:5] + ["job", "instance"])
_VALUE_RULES = ("replace", "keep", "drop")


def dot_meets_values(rule: dict) -> bool:
    """Whether a `.` in this rule could meet a label value (only replace/keep/drop match values;
    names never hold a newline): where vmagent v1.150 and the engine's vmagent flavor differ."""
    action = str(rule.get("action", "replace")).lower()
    regex = rule.get("regex")
    return action in _VALUE_RULES and "." in (DEFAULT_REGEX if regex is None else str(regex))


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
