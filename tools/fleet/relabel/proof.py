"""The GDPR proof: can ANY input series reach an external destination carrying a customer id?

Abstract interpretation of a relabel pipeline (a list of rule stages) over label *sets*:

* A tracked label (every name a rule or the policy mentions) has a `Cell`: the language of its
  possible values, where the empty string stands for "absent" (relabeling treats both alike),
  and its *taint* — the forbidden input labels its value may derive from.
* Every other name lives in `RestClass`es: a language of names that may be present, the taint
  of their values (`SELF` = each label's own input value) and the taint of their *names* (a
  dynamic `target_label` can turn a customer id into a label name).
* The input is arbitrary: every tracked label may hold any value or be absent, and every other
  name may be present with any value.  Each action's transfer function over-approximates what
  the engine (engine.py) can do, for both flavors, so "no abstract leak" proves "no concrete
  leak".  Filters (`keep`/`drop` on one label) narrow value languages; `labeldrop`/`labelkeep`
  narrow name languages; copies join cells (a copy *may* happen).  A regex we cannot model
  (`UnsupportedRegex`) is treated as "may match anything, may fail to match anything".

Every abstract leak is then searched for a concrete witness: an input series run through the
real engine along the same path that really leaks.  A leak with no witness found is still a
leak (soundness first), marked `verified: False`.
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Iterable, Sequence

from .engine import (Rule, apply, expand, group_number, trace, vm_map_name, vm_prefix_shortcut,
                     vm_replace_skips_regex)
from .policy import Policy
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
        return _vmagent_lang(rule)
    return _rule_lang(rule.regex, False)


def _vmagent_lang(rule: Rule) -> Lang | None:
    """vmagent 1.79.5's match, shortcuts included, exactly where the engine (`_vm_action`) takes them.

    * `replace` with an unset regex, a constant target and a replacement of `$1` or without `$`
      never runs the regex: it always writes.  Any other `replace` runs the regex, where `.`
      does not match a newline (so the default `(.*)` misses a value with one).
    * keep/drop/labeldrop/labelkeep on a literal prefix + `.*`/`.+` only compare the prefix,
      and labelmap does the same with `$1` over `(.*)`/`(.+)`: there a newline is just a byte.
    """
    if rule.action == "replace" and vm_replace_skips_regex(rule):
        return ANY
    fast = vm_prefix_shortcut(rule)
    if fast is not None:
        prefix, kind = fast
        return lit(prefix).concat(ANY if kind == "*" else ANY - EPS)
    return _rule_lang(rule.regex, False)


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
    depth, i, in_class = 0, 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            if pattern.startswith("[]", i) or pattern.startswith("[^]", i):
                i += 2 if pattern[i + 1] == "]" else 3
                continue
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i == len(pattern) - 1
        i += 1
    return False


def copies_whole_value(rule: Rule, template: str) -> bool:
    """The template expands to exactly the matched value (`$0`, or `$1` of `(…)`)."""
    refs = template_refs(template)
    if template in ("$0", "${0}"):
        return True
    return template in ("$1", "${1}") and refs == ["1"] and _whole_group(rule.regex)


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


# --------------------------------------------------------------------------------------------
# The analyser


class Analyzer:
    """Transfer functions for one policy over a flat list of (rule, flavor)."""

    def __init__(self, policy: Policy, discovery: bool = False):
        """`discovery`: the rules are target relabeling (`discovery.relabel`), where the values of
        meta labels such as `__meta_kubernetes_pod_label_starform_io_project_id` are customer ids
        too (policy.discovery_patterns): they are taint origins there."""
        self.policy = policy
        self.forbidden = _forbidden_lang(tuple(policy.forbidden_patterns))
        self.discovery = discovery
        self.origin_lang = self.forbidden | (_forbidden_lang(tuple(policy.discovery_patterns))
                                             if discovery else NOTHING)
        self.allowed_jobs = NOTHING
        for job in policy.job_allow:
            self.allowed_jobs = self.allowed_jobs | lit(job)
        if not policy.require_job:
            self.allowed_jobs = self.allowed_jobs | EPS
        self.forbidden_examples = policy.example_forbidden_names()

    # -- state set-up

    def initial(self, names: Iterable[str], input_names: Lang = ANY) -> State:
        """Every input is possible: tracked labels any value or absent, any other name present
        (of the names the input may carry at all, `input_names`)."""
        tracked_names = sorted(set(names) | {"job", "__name__"} | set(self.policy.literal_forbidden_names))
        tracked = NOTHING
        cells = {}
        for n in tracked_names:
            tracked = tracked | lit(n)
            values = ANY if input_names.contains(n) else EPS
            cells[n] = Cell(values, frozenset({n}) if self.is_origin(n) else frozenset())
        rest = [RestClass(input_names - EPS - tracked)]
        return State(cells, rest, tracked, constraints={n: ANY for n in tracked_names})

    def track(self, state: State, name: str) -> Cell:
        """The cell of `name`, moving it out of the rest classes on first use."""
        if name in state.cells:
            return state.cells[name]
        values, taint, writers = EPS, frozenset(), frozenset()
        new_rest = []
        for rc in state.rest:
            if rc.names.contains(name):
                values = ANY
                taint |= self._resolve_self(rc.taint, name) | rc.name_taint
                writers |= rc.writers
                rc = replace(rc, names=rc.names - lit(name))
            new_rest.append(rc)
        state.rest = new_rest
        state.tracked = state.tracked | lit(name)
        cell = state.cells[name] = Cell(values, taint, writers, False)
        return cell

    def is_origin(self, name: str) -> bool:
        """Whether a label's own input value is a customer id (a taint origin)."""
        return self.policy.is_forbidden(name) or (self.discovery and self.policy.is_discovery_origin(name))

    def _resolve_self(self, taint: frozenset[str], name: str) -> frozenset[str]:
        if SELF not in taint:
            return taint
        rest = taint - {SELF}
        return rest | {name} if self.is_origin(name) else rest

    def _self_origins(self, rc: RestClass, names: Lang) -> frozenset[str]:
        """Origins carried by copying labels of `rc` restricted to `names`."""
        origins = rc.taint - {SELF}
        if SELF in rc.taint:
            hit = names & self.origin_lang
            if not hit.is_empty():
                origins |= {hit.example(self.forbidden_examples) or ANY_ORIGIN}
        return origins | rc.name_taint

    # -- helpers over a rule

    def joined_value(self, state: State, rule: Rule) -> Lang:
        """The language of the joined source value `val`."""
        srcs = rule.source_labels
        if not srcs:
            return EPS
        cells = [self.track(state, s) for s in srcs]
        if len(srcs) == 1:
            return cells[0].values
        if all(not present(c.values) for c in cells):
            return lit(rule.separator * (len(srcs) - 1))
        out = cells[0].values
        for c in cells[1:]:
            out = out.concat(lit(rule.separator)).concat(c.values)
        return out

    def source_taint(self, state: State, rule: Rule) -> frozenset[str]:
        taint: frozenset[str] = frozenset()
        for s in rule.source_labels:
            taint |= self.track(state, s).taint
        return taint

    def write(self, state: State, name: str, cell: Cell, definite: bool) -> None:
        old = self.track(state, name)
        state.cells[name] = cell if definite else old.join(cell)

    def write_names(self, state: State, names: Lang, cell: Cell, name_taint: frozenset[str]) -> None:
        """A label with any name in `names` may be written with `cell`'s value."""
        names = names - EPS
        if names.is_empty():
            return
        for n in list(state.cells):
            if names.contains(n):
                self.write(state, n, replace(cell, taint=cell.taint | name_taint), False)
        others = names - state.tracked
        if not others.is_empty():
            state.rest.append(RestClass(others, cell.taint, name_taint, cell.writers))

    # -- transfer functions

    def step(self, state: State, rule: Rule, flavor: str, index: int) -> State:
        if state.dead:
            return state
        state = state.copy()
        handler = getattr(self, "_t_" + rule.action, None)
        if handler is None:
            self._havoc(state, index)
        else:
            handler(state, rule, flavor, index)
        return state

    def _filter(self, state: State, rule: Rule, flavor: str, keep: bool) -> None:
        R = rule_lang(rule, flavor) if keep else rule_lang_must(rule, flavor)  # what surviving allows
        if R is None:
            return
        V = self.joined_value(state, rule)
        remaining = (V & R) if keep else (V - R)
        if remaining.is_empty():
            state.dead = True
            return
        if len(rule.source_labels) == 1:
            name = rule.source_labels[0]
            cell = state.cells[name]
            state.cells[name] = replace(cell, values=remaining)
            if cell.ident:
                c = state.constraints.get(name, ANY)
                state.constraints[name] = (c & R) if keep else (c - R)

    def _t_keep(self, state, rule, flavor, index):
        self._filter(state, rule, flavor, True)

    def _t_drop(self, state, rule, flavor, index):
        self._filter(state, rule, flavor, False)

    def _t_keepequal(self, state, rule, flavor, index):
        """Filters only remove series; not refining is sound."""

    _t_dropequal = _t_keep_if_equal = _t_drop_if_equal = _t_keepequal

    def _t_replace(self, state, rule, flavor, index):
        V = self.joined_value(state, rule)
        R, R_must = rule_lang(rule, flavor), rule_lang_must(rule, flavor)
        taint_src = self.source_taint(state, rule)
        vm_fast = flavor == "vmagent" and vm_replace_skips_regex(rule)
        if R is None or R_must is None:
            matched, always = V, False
        else:
            matched = V & R
            if matched.is_empty():
                return
            always = (V - R_must).is_empty()
        if vm_fast and rule.replacement == "$1":
            result, taint = V, taint_src
        elif not template_refs(rule.replacement, rule):
            # a constant, but written only when the regex matches: a lookup table on project_id
            # (`regex: p1` → `replacement: p1`) or a shard bit derives the label from it. A regex
            # that only tells present from absent (`.+`) reveals no more than presence: not tainted.
            result = lit(const_template(rule.replacement, rule))
            some = V - EPS  # (a split only on whether a value has a newline is not counted)
            presence_only = R is not None and ((some - R).is_empty() or (some & R).is_empty())
            taint = frozenset() if always or presence_only else taint_src
        elif copies_whole_value(rule, rule.replacement):
            result, taint = matched, taint_src
        else:
            result, taint = template_image(rule.replacement, rule), taint_src
        cell = Cell(result, taint, frozenset({index}), False)
        target = rule.target_label or ""
        if not template_refs(target, rule):
            name = const_template(target, rule)
            if not always and R_must is not None and list(rule.source_labels) == [name]:
                # rewriting a label in place: where the regex does not match, the value is in V - R
                old = state.cells[name]
                state.cells[name] = replace(old, values=V - R_must)
                self.write(state, name, cell, False)
                return
            self.write(state, name, cell, always and (flavor == "vmagent" or _valid_name(name)))
            return
        names = matched if copies_whole_value(rule, target) else template_image(target, rule)
        self.write_names(state, names, cell, taint_src if self.policy.derived_forbidden else frozenset())

    def _t_lowercase(self, state, rule, flavor, index):
        self._case_map(state, rule, index, str.lower)

    def _t_uppercase(self, state, rule, flavor, index):
        self._case_map(state, rule, index, str.upper)

    def _case_map(self, state, rule, index, fn):
        from .engine import _go_case

        V = self.joined_value(state, rule)
        members = V.members(64) if V.is_finite() else None
        if members is not None:
            result = NOTHING
            for m in members:
                result = result | lit(_go_case(m, upper=fn is str.upper))
        else:
            result = ANY if V.contains("") else ANY - EPS
        cell = Cell(result, self.source_taint(state, rule), frozenset({index}), False)
        self.write(state, rule.target_label or "", cell, True)

    def _t_hashmod(self, state, rule, flavor, index):
        taint = self.source_taint(state, rule) if self.policy.hashed_forbidden else frozenset()
        self.write(state, rule.target_label or "", Cell(DIGITS, taint, frozenset({index}), False), True)

    def _t_labeldrop(self, state, rule, flavor, index):
        R = rule_lang_must(rule, flavor)  # only names dropped under every anchoring
        if R is None:
            return
        for n, cell in state.cells.items():
            if R.contains(n):
                state.cells[n] = Cell(EPS, frozenset(), cell.writers | {index}, False)
        state.rest = [replace(rc, names=rc.names - R) for rc in state.rest if not (rc.names - R).is_empty()]

    def _t_labelkeep(self, state, rule, flavor, index):
        R = rule_lang(rule, flavor)
        if R is None:
            return
        for n, cell in state.cells.items():
            if not R.contains(n):
                state.cells[n] = Cell(EPS, frozenset(), cell.writers | {index}, False)
        state.rest = [replace(rc, names=rc.names & R) for rc in state.rest if not (rc.names & R).is_empty()]

    def _t_labelmap(self, state, rule, flavor, index):
        """Copy every matching label to its expanded name.

        Prometheus copies from a snapshot; vmagent updates entries in place while it walks them,
        so a value can hop through several matching labels in one rule: for vmagent every target
        receives the union of all matching values (a sound cover of every chain).
        """
        R = rule_lang(rule, flavor)
        refs = template_refs(rule.replacement, rule)
        before = state.copy()
        copies: list[tuple[Lang, Cell, frozenset[str]]] = []   # (target names, value cell, name taint)
        for n, cell in before.cells.items():
            if (R is not None and not R.contains(n)) or (flavor == "prometheus" and not present(cell.values)):
                continue
            if R is None:
                target = ANY
            elif flavor == "vmagent":
                target = lit(vm_map_name(rule, n) or "")
            else:
                target = lit(expand(rule.replacement, n, rule.match(n, flavor)))
            values = cell.values - EPS if flavor == "prometheus" else cell.values
            copies.append((target, Cell(values, cell.taint, cell.writers | {index}, False), frozenset()))
        for rc in before.rest:
            names = rc.names if R is None else rc.names & R
            if names.is_empty():
                continue
            if R is not None and not refs:
                target = lit(const_template(rule.replacement, rule))
            elif R is not None and copies_whole_value(rule, rule.replacement):
                target = names
            else:
                target = template_image(rule.replacement, rule)
            origins = self._self_origins(rc, names)
            name_taint = rc.name_taint if refs else frozenset()
            values = ANY - EPS if flavor == "prometheus" else ANY
            copies.append((target, Cell(values, origins, rc.writers | {index}, False), name_taint))
        if flavor == "vmagent" and len(copies) > 1:
            merged = copies[0][1]
            for _, c, _ in copies[1:]:
                merged = merged.join(c)
            copies = [(t, merged, nt) for t, _, nt in copies]
        for target, cell, name_taint in copies:
            if flavor == "prometheus" and target.contains(""):
                # Prometheus' labelmap sets an empty name too (no name check), and remote write sends it
                self.write(state, "", replace(cell, taint=cell.taint | name_taint), False)
            self.write_names(state, target, cell, name_taint)

    def _havoc(self, state: State, index: int) -> None:
        """An action we do not model: anything may happen to any label."""
        everything = frozenset({ANY_ORIGIN}) | frozenset(
            n for n in state.cells if self.is_origin(n))
        for c in state.cells.values():
            everything |= c.taint
        for n in state.cells:
            state.cells[n] = Cell(ANY, everything, state.cells[n].writers | {index}, False)
        state.rest.append(RestClass(ANY - EPS - state.tracked, everything | {SELF}, everything,
                                    frozenset({index})))

    # -- the sink

    def add_external_labels(self, state: State, external_labels: dict[str, str]) -> State:
        """The remote write's external labels: each is set where the series lacks it."""
        if state.dead:
            return state
        state = state.copy()
        for name, value in external_labels.items():
            cell = self.track(state, name)
            if cell.values.contains("") and value:
                state.cells[name] = Cell((cell.values - EPS) | lit(value), cell.taint, cell.writers, False)
        return state

    def leaks(self, state: State) -> list[AbstractLeak]:
        """What may reach an external destination in `state`."""
        if state.dead:
            return []
        out: list[AbstractLeak] = []
        derived = self.policy.derived_forbidden
        for n, cell in sorted(state.cells.items()):
            if not present(cell.values):
                continue
            if self.policy.is_forbidden(n):
                out.append(AbstractLeak("label", n, cell.taint, cell.writers))
            elif derived and cell.taint:
                out.append(AbstractLeak("value", n, cell.taint, cell.writers))
        for rc in state.rest:
            hit = rc.names & self.forbidden
            if not hit.is_empty():
                out.append(AbstractLeak("label", hit.example(self.forbidden_examples) or "?",
                                        self._resolve_origin(rc), rc.writers))
            clean = rc.names - self.forbidden
            if derived and not clean.is_empty() and ((rc.taint - {SELF}) or rc.name_taint):
                out.append(AbstractLeak("value", clean.example(_NAME_PREFER) or "?",
                                        (rc.taint - {SELF}) | rc.name_taint, rc.writers))
        job = state.cells["job"]
        bad = job.values - self.allowed_jobs
        if not bad.is_empty():
            example = bad.example(("", "customer-app", "envoy-self", "app"))
            out.append(AbstractLeak("job", "job", frozenset(), job.writers, example or ""))
        return out

    def _resolve_origin(self, rc: RestClass) -> frozenset[str]:
        return (rc.taint - {SELF}) | rc.name_taint

    # -- whole path

    def target_taints(self, state: State) -> list[tuple[Lang, frozenset[str], frozenset[str]]]:
        """After target relabeling: (names, value taint, name taint) of the target labels a scrape
        copies onto every series.  Labels with a `__` prefix never reach a series (Prometheus'
        Target.Labels), every other one may, whatever `honor_labels` says (it only decides
        whether the scraped or the target value wins when both are present)."""
        if state.dead:
            return []
        out = []
        for n, cell in sorted(state.cells.items()):
            if not n.startswith("__") and present(cell.values) and cell.taint:
                out.append((lit(n), cell.taint, frozenset()))
        address = self.track(state, "__address__")
        instance = self.track(state, "instance")
        if address.taint and instance.values.contains(""):
            # a target without `instance` gets its `__address__` there (Prometheus' PopulateLabels)
            out.append((lit("instance"), address.taint, frozenset()))
        for rc in state.rest:
            names = rc.names - RESERVED
            taint = rc.taint - {SELF}
            if not names.is_empty() and (taint or rc.name_taint):
                out.append((names, taint | rc.name_taint, rc.name_taint))
        return out

    def exported_taints(self, state: State) -> list[tuple[Lang, frozenset[str], frozenset[str]]]:
        """With `honor_labels` off, a scraped label that a target label shadows is kept under
        `exported_<name>` (`exported_exported_<name>`, ... while taken; Prometheus'
        resolveConflictingExposedLabels).  A target that may carry a forbidden name therefore
        moves the scraped customer id to a name the policy does not list: its value is the id."""
        if state.dead:
            return []
        names = NOTHING
        for n, cell in state.cells.items():
            if not n.startswith("__") and present(cell.values):
                names = names | lit(n)
        for rc in state.rest:
            names = names | (rc.names - RESERVED)
        shadowed = names & self.forbidden
        if shadowed.is_empty():
            return []
        members = shadowed.members(16) if shadowed.is_finite() else None
        origins = frozenset(members) if members else frozenset({ANY_ORIGIN})
        return [(EXPORTED.concat(shadowed), origins, frozenset())]

    def seed(self, state: State, taints: Iterable[tuple[Lang, frozenset[str], frozenset[str]]]) -> None:
        """Series may carry target labels with these taints (see `target_taints`)."""
        for names, taint, name_taint in taints:
            self.write_names(state, names, Cell(ANY, taint, frozenset(), False), name_taint)

    def run(self, flat: Sequence[tuple[Rule, str]], extra_names: Iterable[str] = (),
            seeds: Iterable[tuple[Lang, frozenset[str], frozenset[str]]] = (),
            input_names: Lang = ANY, external_labels: dict[str, str] | None = None,
            external_at: int | None = None) -> State:
        """Every rule of `flat` in order; the external labels are added before rule `external_at`
        (the remote write's own write_relabel_configs see them), or after the last one."""
        state = self.initial(tracked_names(flat) | set(extra_names) | set(external_labels or {}), input_names)
        self.seed(state, seeds)
        at = len(flat) if external_at is None else external_at
        for index, (rule, flavor) in enumerate(flat):
            if index == at:
                state = self.add_external_labels(state, external_labels or {})
            state = self.step(state, rule, flavor, index)
            if state.dead:
                break
        if at >= len(flat):
            state = self.add_external_labels(state, external_labels or {})
        return state


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
    return names


# --------------------------------------------------------------------------------------------
# Concrete witnesses


@dataclass
class Leak:
    """One leak on one path, with its witness (verified by running the engine) when found."""

    kind: str
    label: str
    witness_input: dict | None
    witness_output: dict | None
    rules: list[str]
    path: str = ""
    verified: bool = True
    note: str = ""
    origin: str = ""

    def to_json(self) -> dict:
        out = {"kind": self.kind, "label": self.label,
               "witness": {"input": self.witness_input, "output": self.witness_output},
               "rules": self.rules, "path": self.path, "verified": self.verified}
        if self.origin:
            out["origin"] = self.origin
        if self.note:
            out["note"] = self.note
        return out


@dataclass
class TargetChain:
    """Target relabeling in front of a scrape (`discovery.relabel` stages, upstream first).

    The scrape copies the resulting target labels (all but `__`-prefixed ones) onto every series
    it scrapes, so a target label copied from a pod label `starform.io/*` reaches the metrics
    pipeline.  An opaque stage is a component that may change targets in ways not modelled."""

    stages: list[tuple[list[Rule], str]]
    name: str = ""
    honor_labels: bool = False
    #: the discovery behind the chain emits only `__`-prefixed labels (e.g. discovery.kubernetes)
    meta_only: bool = False

    @property
    def flat(self) -> list[tuple[Rule, str]]:
        out: list[tuple[Rule, str]] = []
        for rules, flavor in self.stages:
            out.extend([(OPAQUE_RULE, OPAQUE)] if flavor == OPAQUE else [(r, flavor) for r in rules])
        return out


def run_target(chain: TargetChain, target: dict[str, str]) -> dict | None:
    """Target labels a scrape puts on its series: the chain's rules, then `__*` removed."""
    out: dict | None = dict(target)
    for rules, flavor in chain.stages:
        if flavor == OPAQUE:
            continue
        out = apply(rules, out, flavor)  # type: ignore[arg-type]
        if out is None:
            return None
    labels = {k: v for k, v in out.items() if not k.startswith("__")}
    if "instance" not in labels and out.get("__address__"):
        labels["instance"] = out["__address__"]
    return labels


def scraped_series(chain: TargetChain, target_labels: dict, sample: dict) -> dict:
    """A scraped sample with its target's labels, as Prometheus' mutateSampleLabels does it.

    With `honor_labels` the sample's own label wins; without, the target's does and the
    sample's value moves to `exported_<name>` (shortest names first, prefixing until free).
    With honor_labels an exposed label counts as *present* even with an empty value (`lset.Has`)
    and keeps the target's label off the series; a rename skips only non-empty names
    (`lb.Get(name) == ""` is free), so an empty exposed `exported_<name>` is overwritten. Only a
    non-empty exposed value is shadowed (and renamed). Checked against the Prometheus release
    Alloy vendors (tools/upstream.lock; 2.42 still skipped empty names), tests/test_scrape_exported.py."""
    target_labels = {k: v for k, v in target_labels.items() if v}
    out = dict(sample)
    if chain.honor_labels:
        for k, v in target_labels.items():
            if k not in sample:
                out[k] = v
        return out
    shadowed = sorted(((k, out[k]) for k in sorted(target_labels) if out.get(k)), key=lambda kv: len(kv[0]))
    out.update(target_labels)
    for name, value in shadowed:
        new = "exported_" + name
        while out.get(new):  # a non-empty exposed name, a target label, an earlier rename
            new = "exported_" + new
        out[new] = value
    return out


@dataclass
class Pipeline:
    """What the proof needs of a path: rule stages (rules, flavor), external labels, a name, and
    the target relabeling chains in front of the source (an Alloy scrape's discovery.relabel)."""

    stages: list[tuple[list[Rule], str]]
    external_labels: dict[str, str] = field(default_factory=dict)
    name: str = ""
    targets: list[TargetChain] = field(default_factory=list)
    #: trailing stages that are the remote write's write_relabel_configs: Prometheus' queue adds
    #: the external labels first, so these rules see (and may drop or rewrite) them
    write_stages: int = 0

    @property
    def flat(self) -> list[tuple[Rule, str]]:
        """All rules in order; an opaque stage (a component we do not model) is one havoc step."""
        return _flat(self.stages)

    @property
    def write_from(self) -> int:
        """Index in `stages` of the first write_relabel stage (the external labels come before it)."""
        return len(self.stages) - self.write_stages

    @property
    def external_at(self) -> int:
        """Index in `flat` before which the external labels are added."""
        return len(_flat(self.stages[:self.write_from]))


def _flat(stages: list[tuple[list[Rule], str]]) -> list[tuple[Rule, str]]:
    out: list[tuple[Rule, str]] = []
    for rules, flavor in stages:
        out.extend([(OPAQUE_RULE, OPAQUE)] if flavor == OPAQUE else [(r, flavor) for r in rules])
    return out


def _with_external(labels: dict[str, str], external: dict[str, str]) -> dict[str, str]:
    out = dict(labels)
    for name, value in external.items():
        if value and not out.get(name):
            out[name] = value
    return out


OPAQUE = "opaque"
OPAQUE_RULE = Rule(action="opaque")


def run_concrete(pipeline: Pipeline, labels: dict[str, str]) -> dict | None:
    """The engine along the whole path; the remote write's external labels (where absent) are
    added before its write_relabel_configs, as Prometheus' queue manager does."""
    out: dict | None = dict(labels)
    split = pipeline.write_from
    for i, (rules, flavor) in enumerate(pipeline.stages):
        if i == split:
            out = _with_external(out, pipeline.external_labels)
        if flavor == OPAQUE:
            continue  # passing labels through unchanged is one thing an opaque stage may do
        out = apply(rules, out, flavor)  # type: ignore[arg-type]
        if out is None:
            return None
    if split >= len(pipeline.stages):
        out = _with_external(out, pipeline.external_labels)
    return dict(sorted(out.items()))


def trace_concrete(pipeline: Pipeline, labels: dict[str, str]) -> list[tuple[int, Rule, dict | None]]:
    """(index in `pipeline.flat`, rule, labels after it) along the whole path."""
    steps: list[tuple[int, Rule, dict | None]] = []
    current: dict | None = dict(labels)
    offset = 0
    split = pipeline.write_from
    for i, (rules, flavor) in enumerate(pipeline.stages):
        if current is None:
            break
        if i == split:
            current = _with_external(current, pipeline.external_labels)
        if flavor == OPAQUE:
            offset += 1
            continue
        st = trace(rules, current, flavor)  # type: ignore[arg-type]
        steps.extend((offset + i, rule, after) for i, (rule, after) in enumerate(st))
        offset += len(rules)
        if st:
            current = st[-1][1]
    return steps


_MARKERS = ("p7c1a9", "s4e2b8", "w1f6d3", "k9d4e7", "m3a8c2", "q5b7f1", "r2c9a4", "t8e1b6")
_ALT_MARKERS = ("x0zz11", "y2zz33", "z4zz55", "u6zz77", "v8zz99", "n1zz02", "o3zz04", "h5zz06")


class WitnessFinder:
    """Search for a concrete input that leaks; verified by the engine, then minimised."""

    def __init__(self, policy: Policy, analyzer: Analyzer, pipeline: Pipeline, state0_constraints: dict):
        self.policy = policy
        self.an = analyzer
        self.pipeline = pipeline
        self.flat = pipeline.flat
        self.constraints = state0_constraints
        self._hints: dict[str, tuple[str, ...]] | None = None

    @property
    def hints(self) -> dict[str, tuple[str, ...]]:
        """Values per label that its rules match and miss: computed only when a leak needs a witness."""
        if self._hints is None:
            self._hints = _value_hints(self.flat, self.constraints)
        return self._hints

    # concrete leak predicates

    def leaking(self, leak: AbstractLeak, labels: dict[str, str], markers: dict[str, str]) -> str | None:
        """Name of the label that concretely leaks like `leak` on input `labels`, else None."""
        out = run_concrete(self.pipeline, labels)
        if out is None:
            return None
        if leak.kind == "label":
            hits = [n for n in out if self.policy.is_forbidden(n)]
            return leak.label if leak.label in hits else (hits[0] if hits else None)
        if leak.kind == "job":
            return None if self.policy.job_allowed(out.get("job")) else "job"
        return self._derived(labels, out, markers)

    def _derived(self, labels: dict, out: dict, markers: dict[str, str]) -> str | None:
        found = self._marker_hits(out, markers.values())
        if found is not None:
            return found
        # non-interference: change only the forbidden values; a label that changes derives from them
        if not markers:
            return None
        swapped = dict(labels)
        for (name, _), alt in zip(markers.items(), _ALT_MARKERS):
            swapped[name] = alt
        other = run_concrete(self.pipeline, swapped)
        if other is None:
            return None
        for n in sorted(out):
            if not self.policy.is_forbidden(n) and n in other and other[n] != out[n]:
                return n
        return None

    def _marker_hits(self, out: dict, markers: Iterable[str]) -> str | None:
        markers = [m.lower() for m in markers if len(m) >= 4]  # short hint values: non-interference decides
        for n, v in sorted(out.items(), key=lambda kv: (len(kv[0]), kv[0])):
            if self.policy.is_forbidden(n):
                continue
            if any(m in v.lower() or m in n.lower() for m in markers):
                return n
        return None

    # candidate inputs

    def _value_for(self, name: str, rng: random.Random | None) -> str:
        """A value for tracked label `name` satisfying the filters seen on it (if any)."""
        lang = self.constraints.get(name, ANY)
        if name == "job":
            prefer = list(self.policy.job_allow)
        elif name == "__name__":
            prefer = ["kube_pod_labels", "up"]
        else:
            prefer = ["v1"]
        if rng is None:
            return lang.example(prefer) or ""
        guesses = (lang.example(), lang.example(prefer), "", "v" + str(rng.randint(0, 99)),
                   rng.choice(self.an.forbidden_examples + ["job"] * 3),
                   *self.hints.get(name, ()))
        options = [o for o in guesses if o is not None and lang.contains(o)]
        return rng.choice(options) if options else ""

    def candidates(self, leak: AbstractLeak, tries: int) -> Iterable[tuple[dict, dict]]:
        """(labels, markers) to try: a rich input first, then seeded random variations."""
        forbidden_names = list(dict.fromkeys(
            [leak.label] * (leak.kind == "label") + sorted(o for o in leak.origins if o != ANY_ORIGIN and o != SELF)
            + self.an.forbidden_examples))
        forbidden_names += [n for n in sorted(tracked_names(self.flat)) if n not in forbidden_names]
        forbidden_names = [n for n in forbidden_names if self.policy.is_forbidden(n)]
        map_sources = self._labelmap_sources(
            ([leak.label] if leak.kind == "job" else []) + forbidden_names + [leak.label])
        names = sorted(tracked_names(self.flat) | {"job", "__name__"})
        rng = None
        for attempt in range(tries):
            labels: dict[str, str] = {}
            markers: dict[str, str] = {}
            for n in names:
                if n in forbidden_names:
                    continue
                v = self._value_for(n, rng)
                if v:
                    labels[n] = v
            if leak.kind == "job" and attempt % 2 == 0:
                bad = leak.example_value
                (labels.__setitem__("job", bad) if bad else labels.pop("job", None))
            if not labels.get("__name__"):
                labels["__name__"] = "kube_pod_labels"
            for i, n in enumerate(forbidden_names + map_sources):
                if rng is not None and rng.random() < 0.35:
                    continue
                marker = _MARKERS[i % len(_MARKERS)] + ("" if i < len(_MARKERS) else str(i))
                if rng is not None and self.hints.get(n) and rng.random() < 0.5:
                    marker = rng.choice(self.hints[n])  # a value the rules reading it match (or miss)
                labels[n] = marker
                if self.policy.is_forbidden(n) or n in map_sources:
                    markers[n] = marker
            yield labels, markers
            rng = rng or random.Random(attempt + 7)

    def _labelmap_sources(self, forbidden_names: list[str]) -> list[str]:
        """Names that labelmap rules would turn into forbidden ones, e.g. `__meta_..._project_id`."""
        out = []
        for rule, flavor in self.flat:
            if rule.action != "labelmap":
                continue
            R = rule_lang(rule, flavor)
            if R is None:
                continue
            prefix = _literal_prefix(rule.regex)
            prefer = (list(forbidden_names) + [prefix + f for f in forbidden_names]
                      + [prefix + "x_" + f for f in forbidden_names])
            hits = [p for p in prefer if R.contains(p)] or [(R - EPS).example(prefer)]
            out.extend(h for h in hits[:12] if h and h not in out)
        return out

    def find(self, leak: AbstractLeak, tries: int = 120) -> tuple[dict, dict | None, str, bool]:
        """(input, output, concrete label, verified)."""
        first: tuple[dict, dict] | None = None
        for labels, markers in self.candidates(leak, tries):
            first = first or (labels, markers)
            hit = self.leaking(leak, labels, markers)
            if hit is not None:
                labels = self.minimise(leak, labels, markers, hit)
                return labels, run_concrete(self.pipeline, labels), hit, True
        assert first is not None
        return first[0], run_concrete(self.pipeline, first[0]), leak.label, False

    def minimise(self, leak: AbstractLeak, labels: dict, markers: dict, hit: str) -> dict:
        """Drop labels one at a time while the input still leaks `hit` (readable witnesses)."""
        current = dict(labels)
        for name in sorted(labels, key=lambda n: (n == "__name__", n == "job", n)):
            if name == "__name__":
                continue
            trial = {k: v for k, v in current.items() if k != name}
            if self.leaking(leak, trial, {k: v for k, v in markers.items() if k in trial}) == hit:
                current = trial
        return current


def _value_hints(flat: Sequence[tuple[Rule, str]], constraints: dict) -> dict[str, tuple[str, ...]]:
    """Per label read alone by a rule: a value the rule's regex matches and one it misses
    (within the filters seen on the label), so witnesses reach both branches of every rule."""
    hints: dict[str, list[str]] = {}
    for rule, flavor in flat:
        if len(rule.source_labels) != 1 or rule.action == "opaque":
            continue
        R = rule_lang(rule, flavor)
        if R is None:
            continue
        name = rule.source_labels[0]
        lang = constraints.get(name, ANY)
        for part in (lang & R, lang - R):
            example = (part - EPS).example(["v1", "x"])
            if example is not None and example not in hints.setdefault(name, []):
                hints[name].append(example)
    return {n: tuple(v) for n, v in hints.items()}


def _literal_prefix(pattern: str) -> str:
    out = []
    for c in pattern:
        if c in "\\.^$|?*+()[]{}":
            break
        out.append(c)
    return "".join(out)


# --------------------------------------------------------------------------------------------
# Entry point


def rule_ref(rule: Rule) -> str:
    """`file:line` of a rule (its `// source:` file when the rule was rendered from one)."""
    src = rule.source
    if src is None:
        return "<rule>"
    return f"{src.file}:{src.line}" if src.line else src.file


def involved_rules(leak_kind: str, label: str, pipeline: Pipeline, witness: dict | None,
                   writers: frozenset[int]) -> list[str]:
    """Where a reviewer should look, most telling first: the rules that changed the leaking
    label on the witness run (the culprits), the rules the analysis saw writing it, then the
    rules that were meant to stop it (labeldrop/labelkeep for names and values, keep/drop on
    `job` for jobs)."""
    flat = pipeline.flat
    changed: set[int] = set()
    if witness is not None:
        prev = dict(witness)
        for i, rule, after in trace_concrete(pipeline, witness):
            after = after or {}
            if prev.get(label) != after.get(label):
                changed.add(i)
            prev = after
    gates: set[int] = set()
    for i, (rule, _) in enumerate(flat):
        if leak_kind in ("label", "value") and rule.action in ("labeldrop", "labelkeep"):
            gates.add(i)
        if leak_kind == "job" and rule.action in ("keep", "drop") and "job" in rule.source_labels:
            gates.add(i)
    ordered = [*sorted(changed - gates), *sorted(set(writers) - changed - gates), *sorted(gates | (changed & gates))]
    return list(dict.fromkeys(rule_ref(flat[i][0]) for i in ordered if i < len(flat)))


def prove(pipeline: Pipeline, policy: Policy) -> list[Leak]:
    """Leaks of one path to an external destination; [] is a proof that none exists."""
    key = _cache_key(pipeline, policy)
    cached = _CACHE.get(key)
    if cached is not None:  # same rules, other cluster: recompute outputs (external label values)
        return [replace(leak, path=pipeline.name, witness_output=run_concrete(pipeline, leak.witness_input)
                        if leak.witness_input is not None else None) for leak in cached]
    analyzer = Analyzer(policy)
    flat = pipeline.flat
    seeds, chain_states = [], []
    for chain in pipeline.targets:
        d_an = Analyzer(policy, discovery=True)
        d_state = d_an.run(chain.flat, input_names=RESERVED if chain.meta_only else ANY)
        chain_states.append((chain, d_an, d_state))
        seeds.extend(d_an.target_taints(d_state))
        if not chain.honor_labels:
            seeds.extend(d_an.exported_taints(d_state))
    state = analyzer.run(flat, seeds=seeds, external_labels=pipeline.external_labels,
                         external_at=pipeline.external_at)
    abstract = analyzer.leaks(state)
    finder = WitnessFinder(policy, analyzer, pipeline, state.constraints)
    leaks: list[Leak] = []
    seen: set[tuple[str, str]] = set()
    for al in abstract:
        witness, output, label, verified = finder.find(al)
        target_note = ""
        if not verified and chain_states:
            found = _target_witness(policy, finder, pipeline, chain_states, al)
            if found is not None:
                witness, output, label, target_note = found
                verified = True
        if (al.kind, label) in seen:
            continue
        seen.add((al.kind, label))
        origin = ", ".join(sorted(o for o in al.origins if o != SELF))
        note = "" if verified else ("the analysis cannot exclude this leak but found no concrete "
                                    "input showing it; the witness is a best effort")
        rules = involved_rules(al.kind, label, pipeline, witness, al.writers)
        if target_note or (not verified and chain_states):
            rules = _target_rules(chain_states) + rules
        note = target_note or note
        leaks.append(Leak(al.kind, label, witness, output, rules, pipeline.name, verified, note, origin))
    _CACHE[key] = leaks
    return leaks


_CACHE: dict[str, list[Leak]] = {}


def _cache_key(pipeline: Pipeline, policy: Policy) -> str:
    h = hashlib.sha256(policy.fingerprint.encode())
    for rules, flavor in pipeline.stages:
        h.update(flavor.encode())
        for r in rules:
            h.update(repr((r.action, r.source_labels, r.separator, r.regex, r.regex_set, r.target_label,
                           r.replacement, r.modulus, str(r.source))).encode())
        h.update(b"|")
    # Values matter only as job / non-empty, unless write rules run after them (they may test them).
    exact = pipeline.write_stages > 0
    h.update(repr((pipeline.write_stages, sorted((k, v if k == "job" or exact else bool(v))
                                                 for k, v in pipeline.external_labels.items()))).encode())
    for chain in pipeline.targets:
        h.update(repr(("targets", chain.honor_labels, chain.meta_only)).encode())
        for rules, flavor in chain.stages:
            h.update(flavor.encode())
            for r in rules:
                h.update(repr((r.action, r.source_labels, r.separator, r.regex, r.regex_set, r.target_label,
                               r.replacement, r.modulus, str(r.source))).encode())
            h.update(b"|")
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# Witnesses through target relabeling


def _target_rules(chain_states: list) -> list[str]:
    """Rules of the target relabeling that copy a value (where a reviewer should look)."""
    out = []
    for chain, _, _ in chain_states:
        for rule, _ in chain.flat:
            if rule.action in ("replace", "labelmap", "lowercase", "uppercase", "hashmod", "opaque"):
                out.append(rule_ref(rule))
    return list(dict.fromkeys(out))


def _target_candidates(policy: Policy, chain: TargetChain, constraints: dict, tries: int) -> Iterable[tuple[dict, dict]]:
    """(target, markers): discovery labels that pass the chain's filters, customer-id labels marked."""
    flat = chain.flat
    names = sorted(tracked_names(flat) | {"__address__"})
    disc = _forbidden_lang(tuple(policy.discovery_patterns))
    for rule, flavor in flat:  # labelmap sources: a meta label the map would copy
        if rule.action == "labelmap":
            R = rule_lang(rule, flavor)
            hit = (R & disc) if R is not None else disc
            ex = hit.example(["__meta_kubernetes_pod_label_starform_io_project_id"])
            if ex and ex not in names:
                names.append(ex)
    if not any(policy.is_discovery_origin(n) for n in names):
        names.append("__meta_kubernetes_pod_label_starform_io_project_id")
    fixed: dict[str, str] = {}
    for rule, flavor in flat:  # multi-label keep filters: split an example of the regex
        if rule.action == "keep" and len(rule.source_labels) > 1:
            R = rule_lang(rule, flavor)
            ex = R.example() if R is not None else None
            parts = ex.split(rule.separator) if ex is not None and rule.separator else []
            if len(parts) == len(rule.source_labels):
                fixed.update(zip(rule.source_labels, parts))
    rng: random.Random | None = None
    for attempt in range(tries):
        target, markers = {"__address__": "10.0.0.1:9100"}, {}
        for i, n in enumerate(names):
            lang = constraints.get(n, ANY)
            if policy.is_discovery_origin(n) or policy.is_forbidden(n):
                marker = _MARKERS[i % len(_MARKERS)]
                value = marker if lang.contains(marker) else (lang - EPS).example() or ""
                if value:
                    markers[n] = value
            elif n in fixed and (rng is None or rng.random() < 0.8):
                value = fixed[n]
            else:
                value = (lang.example(["v1"]) if rng is None else
                         rng.choice([lang.example(["v1"]) or "", "", "v1"])) or ""
            if value and (rng is None or rng.random() < 0.9 or n in markers):
                target[n] = value
        yield target, markers
        rng = rng or random.Random(attempt + 11)


def _target_witness(policy: Policy, finder: "WitnessFinder", pipeline: Pipeline, chain_states: list,
                    leak: AbstractLeak) -> tuple[dict, dict | None, str, str] | None:
    """A target whose relabeled labels, on a scraped series, leak through the path."""
    for chain, _, d_state in chain_states:
        for target, markers in _target_candidates(policy, chain, d_state.constraints, 40):
            tlabels = run_target(chain, target)
            if not tlabels or not markers:
                continue
            for sample, sample_markers in finder.candidates(leak, 6):
                if chain.honor_labels:  # the scraped customer ids: only an exported_ rename moves them
                    sample = {k: v for k, v in sample.items() if not policy.is_forbidden(k)}
                    sample_markers = {}
                series = scraped_series(chain, tlabels, sample)
                out = run_concrete(pipeline, series)
                if out is None:
                    continue
                hit = finder._marker_hits(out, [*markers.values(), *sample_markers.values()])
                if hit is not None:
                    note = (f"scrape target {dict(sorted(target.items()))} gets target labels "
                            f"{dict(sorted(tlabels.items()))} from {chain.name or 'target relabeling'}; "
                            "the witness input is a series scraped from it")
                    return series, out, hit, note
    return None
