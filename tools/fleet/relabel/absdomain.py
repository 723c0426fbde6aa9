"""The GDPR proof's abstract domain: languages of values and names, cells, rest classes, states.

* A tracked label (every name a rule or the policy mentions) has a `Cell`: the language of its
  possible values, where the empty string stands for "absent" (relabeling treats both alike),
  and its *taint* — the forbidden input labels its value may derive from.
* Every other name lives in `RestClass`es: a language of names that may be present, the taint
  of their values (`SELF` = each label's own input value) and the taint of their *names* (a
  dynamic `target_label` can turn a customer id into a label name).

Also here: what a rule's regex may / must match per flavour (`rule_lang`, `rule_lang_must`) and
the image of a replacement template (Go's Expand syntax), which every transfer function uses.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Sequence

import re2

from .engine import Rule, escapes_anchors, group_number, plain_positions, vm_replace_skips_regex
from .regexlang import Lang, UnsupportedRegex

SELF = "<self>"          # rest-class taint: each label's own input value
ANY_ORIGIN = "<any forbidden label>"

ANY = Lang.any()
EPS = Lang.literal("")
NOTHING = Lang.empty()
DIGITS = Lang.from_re2("[0-9]+")
RESERVED = Lang.from_re2("__.*")
EXPORTED = Lang.from_re2("(?:exported_)+")


@lru_cache(maxsize=4096)
def lit(s: str) -> Lang:
    return Lang.literal(s)


@lru_cache(maxsize=8192)
def _rule_lang(pattern: str, dotall: bool) -> Lang | None:
    try:
        return Lang.from_relabel(pattern, dotall=dotall)
    except UnsupportedRegex:
        return None


def rule_lang(rule: Rule, flavor: str) -> Lang | None:
    """Values `rule` *may* treat as matching, as `flavor` matches them; None when we cannot model it.

    For the Prometheus flavour, agents differ on `.` and a newline: current Prometheus anchors
    `^(?s:re)$`, Alloy's own relabel config (internal/component/common/relabel) and Prometheus
    2.x `^(?:re)$`. `rule_lang` is the dotall language (the larger one: `(?s)` only widens `.`),
    `rule_lang_must` the other, so every transfer function is sound for both."""
    if flavor == "vmagent":
        return _vmagent_lang(rule)
    return _rule_lang(rule.regex, True)


def rule_lang_must(rule: Rule, flavor: str) -> Lang | None:
    """Values `rule` matches under every anchoring its flavour's agents use (see `rule_lang`)."""
    if flavor == "vmagent":
        return _vmagent_lang(rule, must=True)
    return _rule_lang(rule.regex, False)


def _vmagent_lang(rule: Rule, must: bool = False) -> Lang | None:
    """vmagent v1.150's match, exactly where the engine (`_vm_action`) decides it.

    * A default regex (unset, or one that simplifies to `.*`) matches everything, and `replace`
      with a constant target and a replacement of `$1` or without `$` never runs the regex.
    * Otherwise the match is `PromRegex`: the regex (anchors at the ends removed) where `.`
      matches a newline, except a literal prefix then one lone `.` (`VmRegex.dotall`); with
      `(?i` in the regex a lone `.` between flag conflicts misses a newline too, which the
      engine does not model: there the "must" language is the non-dotall one (sound both ways).
    """
    vm = rule.vm
    if vm is None:
        return _rule_lang(rule.regex, False)
    if vm.regex.default or (rule.action == "replace" and vm_replace_skips_regex(rule)):
        return ANY
    text = vm.regex.match_text
    return _rule_lang(text, vm.regex.dotall and not (must and "(?i" in text))


def present(values: Lang) -> bool:
    """Whether a label with these possible values may be present (non-empty)."""
    return not (values - EPS).is_empty()


# --------------------------------------------------------------------------------------------
# Replacement templates (Go's regexp.Expand syntax)


def _group_exists(rule: Rule | None, name: str) -> bool:
    """Whether `name` refers to a group of the rule's regex (Go expands any other reference to "")."""
    return rule is None or group_number(rule.pattern(), name) is not None


def _template_parts(template: str, rule: Rule | None) -> list[tuple[str, str | None]]:
    """The template as (literal text, group reference or None) pieces, in Go's Expand syntax.

    `$$` is a literal dollar, a `$` without a valid name stays literal, and a reference to a
    group the regex does not have (`$1abc` names the group `1abc`) expands to nothing."""
    from .engine import _extract  # the engine's own reader of `$name`, so both agree

    parts: list[tuple[str, str | None]] = []
    buf: list[str] = []
    i, n = 0, len(template)
    while i < n:
        c = template[i]
        if c != "$":
            buf.append(c)
            i += 1
            continue
        if i + 1 < n and template[i + 1] == "$":
            buf.append("$")
            i += 2
            continue
        name, rest = _extract(template, i + 1)
        if name is None:
            buf.append("$")
            i += 1
            continue
        i = rest
        if _group_exists(rule, name):
            parts.append(("".join(buf), name))
            buf = []
    parts.append(("".join(buf), None))
    return parts


def template_refs(template: str, rule: Rule | None = None) -> list[str]:
    """Group names a template references (`$1`, `${1}`, `$name`) that `rule`'s regex has."""
    return [ref for _, ref in _template_parts(template, rule) if ref is not None]


def const_template(template: str, rule: Rule | None = None) -> str:
    """Expansion of a template without live group references."""
    return "".join(text for text, _ in _template_parts(template, rule))


def template_image(template: str, rule: Rule | None = None) -> Lang:
    """Every string the template can expand to: its literal parts, any text for each reference."""
    out = EPS
    for text, ref in _template_parts(template, rule):
        out = out.concat(lit(text))
        if ref is not None:
            out = out.concat(ANY)
    return out


def _whole_group(pattern: str) -> bool:
    """True when group 1 spans the whole pattern: `(X)` with the outer parens matching."""
    if len(pattern) < 2 or pattern[0] != "(" or pattern[1] == "?":
        return False
    depth = 0
    for i in plain_positions(pattern):
        if pattern[i] == "(":
            depth += 1
        elif pattern[i] == ")":
            depth -= 1
            if depth == 0:
                return i == len(pattern) - 1
    return False


_PREFIX_CAPTURE = re2.compile(r"^([^\\.+*?()|\[\]{}^$]*)\((?:\?P<(\w+)>)?\.([*+])\)$")


def prefix_capture(rule: Rule) -> tuple[str, str, str] | None:
    """(literal prefix, text before, text after) when `rule`'s regex is a literal prefix then one
    group of `.*`/`.+` (numbered or named) and its replacement refers to that group once: then
    a name's rename is exactly before + (the name minus the prefix) + after."""
    m = _PREFIX_CAPTURE.search(rule.regex)
    if m is None:
        return None
    prefix, name = m.group(1), m.group(2)
    parts = _template_parts(rule.replacement, rule)
    refs = [i for i, (_, ref) in enumerate(parts) if ref is not None]
    if len(refs) != 1 or parts[refs[0]][1] not in ("1", name):
        return None
    k = refs[0]
    return prefix, "".join(t for t, _ in parts[:k + 1]), "".join(t for t, _ in parts[k + 1:])


def copies_whole_value(rule: Rule, template: str) -> bool:
    """The template expands to exactly the matched value (`$0`, or `$1` of `(…)`)."""
    if escapes_anchors(rule.regex):  # the match may be part of the value only
        return False
    refs = template_refs(template)
    if template in ("$0", "${0}"):
        return True
    pattern = _unwrap(rule.regex)
    if template in ("$1", "${1}") and refs == ["1"]:
        return _whole_group(pattern) or (pattern.startswith("(?P<") and _whole_group("(" + pattern[pattern.index(">") + 1:]))
    named = re2.compile(r"^\$(?:\{(\w+)\}|(\w+))$").search(template)
    if named is None or not pattern.startswith("(?P<"):
        return False
    name = named.group(1) or named.group(2)
    return pattern[4:pattern.index(">")] == name and _whole_group("(" + pattern[pattern.index(">") + 1:])


_NONCAPTURING = re2.compile(r"^\(\?[imsU-]*:")


def _unwrap(pattern: str) -> str:
    """The pattern without non-capturing groups around all of it (`(?i:(x))` → `(x)`; flags only
    change which strings match, never what a group spans)."""
    while True:
        m = _NONCAPTURING.search(pattern)
        if m is None or not _whole_group("(" + pattern[m.end():]):
            return pattern
        pattern = pattern[m.end():-1]


# --------------------------------------------------------------------------------------------
# Abstract state


@dataclass(frozen=True)
class Cell:
    """A tracked label: possible values ("" = absent), taint, and which rules may have set it."""

    values: Lang
    taint: frozenset[str] = frozenset()
    writers: frozenset[int] = frozenset()
    ident: bool = True  # still the input value (guides the witness search only)

    def join(self, other: "Cell") -> "Cell":
        return Cell(self.values | other.values, self.taint | other.taint,
                    self.writers | other.writers, False)


@dataclass(frozen=True)
class RestClass:
    """Untracked names that may be present, with the taint of their values and of their names."""

    names: Lang
    taint: frozenset[str] = frozenset({SELF})
    name_taint: frozenset[str] = frozenset()
    writers: frozenset[int] = frozenset()


@dataclass
class State:
    cells: dict[str, Cell]
    rest: list[RestClass]
    tracked: Lang                      # union of the tracked names (rest classes exclude them)
    dead: bool = False                 # no series survives
    constraints: dict[str, Lang] = field(default_factory=dict)  # input-value hints for witnesses

    def copy(self) -> "State":
        return State(dict(self.cells), list(self.rest), self.tracked, self.dead, dict(self.constraints))


@dataclass(frozen=True)
class AbstractLeak:
    kind: str                  # "label" | "value" | "job"
    label: str                 # example label name
    origins: frozenset[str]    # forbidden labels the value/name derives from
    writers: frozenset[int]    # flat rule indexes that may have produced it
    example_value: str = ""    # for "job": an offending job value ("" = absent)


_NAME_PREFER = ("team", "owner", "tenant", "customer", "x")


def _valid_name(name: str) -> bool:
    from .engine import is_valid_label_name

    return is_valid_label_name(name)


@lru_cache(maxsize=64)
def _forbidden_lang(patterns: tuple[str, ...]) -> Lang:
    out = NOTHING
    for p in patterns:
        out = out | Lang.from_re2(p)
    return out


def tracked_names(flat: Sequence[tuple[Rule, str]]) -> set[str]:
    """Every label name a rule spells out (sources, static targets)."""
    names: set[str] = set()
    for rule, _ in flat:
        names.update(rule.source_labels)
        target = rule.target_label or ""
        if target and not template_refs(target, rule):
            names.add(const_template(target, rule))
        vm = getattr(rule, "vm", None)
        if vm is not None:  # vmagent: `if` filters, graphite targets, `{{label}}` references
            if vm.if_expr is not None:
                names.update(f.label or "__name__" for f in vm.if_expr.filters())
            names.update(name for name, _ in vm.graphite_labels)
            if vm.graphite_labels:
                names.add("__name__")
            if "{{" in rule.replacement:
                from .vmagent import fill_label_references
                fill_label_references(rule.replacement, lambda n: names.add(n) or "")
    return names

