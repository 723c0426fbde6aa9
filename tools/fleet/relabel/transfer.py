"""The GDPR proof's transfer functions: one per relabel action, over the abstract domain.

This mirrors the engine's one switch over actions (engine._prom_step / engine._vm_action): each
function over-approximates what that action can do to any series the abstract state stands
for, for both flavours, so "no abstract leak" proves "no concrete leak". `TRANSFER` is the
switch; an action without an entry (an opaque stage) is `havoc`: anything may happen.
"""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from .absdomain import (ANY, ANY_ORIGIN, DIGITS, EPS, NOTHING, SELF, Cell, Lang, RestClass, State,
                        _valid_name, const_template, copies_whole_value, lit, prefix_capture, present,
                        rule_lang, rule_lang_must, template_image, template_refs)
from .engine import Rule, escapes_anchors, replace_all, vm_map_name, vm_replace_skips_regex

if TYPE_CHECKING:
    from .analyzer import Analyzer


def step(an: "Analyzer", state: State, rule: Rule, flavor: str, index: int) -> State:
    """One rule on an abstract state: the action's transfer function (a copy; `state` is kept).

    A vmagent `if:` filter is over-approximated: the rule may or may not apply, so the result
    is the join of the state before and after it — except for `keep`, which drops a series
    the filter does not match (so what survives is within what `keep` alone lets through)."""
    if state.dead:
        return state
    before = state
    state = state.copy()
    TRANSFER.get(rule.action, lambda an, s, r, f, i: havoc(an, s, i))(an, state, rule, flavor, index)
    if rule.if_expr is not None and rule.action != "keep":
        return join(an, before, state)
    if rule.if_expr is not None and not state.dead:
        _narrow_by_if(an, state, rule.if_expr)
    return state


def _narrow_by_if(an: "Analyzer", state: State, if_expr) -> None:
    """`keep` with `if:` keeps only series some selector group matches: a label that every
    group pins with `=` or `=~` lies in the union of what the groups allow."""
    from .absdomain import _rule_lang

    groups = [g for selector in if_expr.selectors for g in selector]
    if not groups:
        state.dead = True
        return
    pinned = None
    for group in groups:
        names = {f.label or "__name__" for f in group if f.op in ("=", "=~")}
        pinned = names if pinned is None else pinned & names
    for name in sorted(pinned or ()):
        allowed = NOTHING
        for group in groups:
            mine = ANY
            for f in group:
                if (f.label or "__name__") != name or f.op not in ("=", "=~"):
                    continue
                lang = lit(f.value) if f.op == "=" else _rule_lang(f.value, True)
                mine = mine & (ANY if lang is None else lang)
            allowed = allowed | mine
        _narrow(an, state, name, allowed)
        if state.cells[name].values.is_empty():
            state.dead = True
            return


def join(an: "Analyzer", a: State, b: State) -> State:
    """The least state covering both `a` and `b` (either may have happened)."""
    if a.dead:
        return b
    if b.dead:
        return a
    a, b = a.copy(), b.copy()
    for name in set(a.cells) | set(b.cells):
        an.track(a, name)
        an.track(b, name)
    cells = {n: a.cells[n].join(b.cells[n]) for n in a.cells}
    constraints = {n: a.constraints[n] | b.constraints[n] for n in a.constraints if n in b.constraints}
    return State(cells, a.rest + b.rest, a.tracked | b.tracked, False, constraints)


def _filter(an, state: State, rule: Rule, flavor: str, keep: bool) -> None:
    R = rule_lang(rule, flavor) if keep else rule_lang_must(rule, flavor)  # what surviving allows
    if R is None:
        return
    V = an.joined_value(state, rule)
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
    elif len(set(rule.source_labels)) <= _PRESENCE_LABELS:
        _refine_presence(an, state, rule, R, keep)


_PRESENCE_LABELS = 4


def _refine_presence(an, state: State, rule: Rule, R: Lang, keep: bool) -> None:
    """A filter over several labels, by which of them are present: each presence pattern (each
    label absent, or present with any value) survives when its joined values can pass; a label
    absent in every surviving pattern is absent after the filter, one present in every surviving
    pattern is present (`keep` on `project_id;service_id` = ";" keeps only series with neither).
    Patterns are judged with any value per present label (coarser than the cells, so sound, and
    computed once per rule: `_surviving_patterns`)."""
    names = list(dict.fromkeys(rule.source_labels))
    cells = {n: state.cells[n] for n in names}
    can_absent = {n for n in names if cells[n].values.contains("")}
    can_present = {n for n in names if present(cells[n].values)}
    seen_absent: set[str] = set()
    seen_present: set[str] = set()
    for on in _surviving_patterns(rule, R, keep):
        if not on <= can_present or not (set(names) - on) <= can_absent:
            continue
        seen_present |= on
        seen_absent |= set(names) - on
    for n in names:
        cell = cells[n]
        if n not in seen_present:
            values = EPS
        elif n not in seen_absent:
            values = cell.values - EPS
        else:
            continue
        state.cells[n] = replace(cell, values=values)
        if cell.ident:
            state.constraints[n] = state.constraints.get(n, ANY) & values


_PATTERNS: dict[tuple, tuple[Lang, list[frozenset[str]]]] = {}


def _surviving_patterns(rule: Rule, R: Lang, keep: bool) -> list[frozenset[str]]:
    """The sets of present source labels with which some series can pass the filter."""
    key = (rule.source_labels, rule.separator, rule.regex, rule.action, keep, id(R))
    hit = _PATTERNS.get(key)
    if hit is not None and hit[0] is R:
        return hit[1]
    names = list(dict.fromkeys(rule.source_labels))
    out = []
    for mask in range(1 << len(names)):
        on = frozenset(n for i, n in enumerate(names) if mask >> i & 1)
        joined = EPS
        for i, n in enumerate(rule.source_labels):
            part = ANY - EPS if n in on else EPS
            joined = (joined if i == 0 else joined.concat(lit(rule.separator))).concat(part)
        if not ((joined & R) if keep else (joined - R)).is_empty():
            out.append(on)
    _PATTERNS[key] = (R, out)  # R kept alive with the entry, so its id stays its own
    return out


def t_keep(an, state, rule, flavor, index):
    _filter(an, state, rule, flavor, True)


def t_drop(an, state, rule, flavor, index):
    _filter(an, state, rule, flavor, False)


def t_keepequal(an, state, rule, flavor, index):
    """`keepequal`: the joined source value equals `target_label`'s; both sides then lie in the
    intersection of their languages (`keepequal project_id` against an absent label keeps only
    series without a project id).  vmagent's `keep_if_equal`: every source label alike."""
    if rule.action == "keep_if_equal":
        names = list(dict.fromkeys(rule.source_labels))
    else:
        names = [rule.target_label or ""] + (list(rule.source_labels) if len(rule.source_labels) == 1 else [])
    if len(names) < 2:
        if rule.action == "keepequal":  # several sources: only the target is narrowed
            _narrow(an, state, rule.target_label or "", an.joined_value(state, rule))
        return
    common = ANY
    for n in names:
        common = common & an.track(state, n).values
    if common.is_empty():
        state.dead = True
        return
    for n in names:
        _narrow(an, state, n, common)


def t_dropequal(an, state, rule, flavor, index):
    """`dropequal`: the joined source value differs from `target_label`'s; a side that can hold
    only one value excludes that value from the other (dropequal against an absent label drops
    every series without the source)."""
    if rule.action == "drop_if_equal" or len(rule.source_labels) != 1:
        return
    a, b = rule.source_labels[0], rule.target_label or ""
    for this, other in ((a, b), (b, a)):
        only = an.track(state, other).values.members(1) if an.track(state, other).values.is_finite() else None
        if only is not None and len(only) == 1:
            _narrow(an, state, this, ANY - lit(only[0]))
            if state.cells[this].values.is_empty():
                state.dead = True
                return


def _narrow(an, state: State, name: str, allowed: Lang) -> None:
    cell = an.track(state, name)
    state.cells[name] = replace(cell, values=cell.values & allowed)
    if cell.ident:
        state.constraints[name] = state.constraints.get(name, ANY) & allowed

def t_replace(an, state, rule, flavor, index):
    if flavor == "vmagent" and "{{" in rule.replacement:
        return _replace_filled(an, state, rule, index)
    V = an.joined_value(state, rule)
    R, R_must = rule_lang(rule, flavor), rule_lang_must(rule, flavor)
    taint_src = an.source_taint(state, rule)
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
    slip = _vm_slip(rule, V) if flavor == "vmagent" and not vm_fast else NOTHING
    if not slip.is_empty():
        # vmagent: the dotall match holds but the non-dotall `^(?:re)$` finds no groups there,
        # so the replacement is the source value itself
        result, taint = result | slip, taint | taint_src
    cell = Cell(result, taint, frozenset({index}), False)
    target = rule.target_label or ""
    if not template_refs(target, rule):
        name = const_template(target, rule)
        if not always and R_must is not None and list(rule.source_labels) == [name]:
            # rewriting a label in place: where the regex does not match, the value is in V - R
            old = state.cells[name]
            state.cells[name] = replace(old, values=V - R_must)
            an.write(state, name, cell, False)
            return
        an.write(state, name, cell, always and (flavor == "vmagent" or _valid_name(name)))
        return
    names = matched if copies_whole_value(rule, target) else template_image(target, rule)
    an.write_names(state, names, cell, taint_src if an.policy.derived_forbidden else frozenset())

def _vm_slip(rule: Rule, V: Lang) -> Lang:
    """Source values vmagent's PromRegex matches while its `^(?:re)$` misses them."""
    vm = rule.vm
    if vm is None or vm.regex.default:
        return NOTHING
    may = rule_lang(rule, "vmagent")
    plain = _plain_lang(vm.regex.text)
    if may is None or plain is None:
        return V - EPS
    return (V & may) - plain


def _plain_lang(text: str) -> Lang | None:
    from .absdomain import _rule_lang

    return _rule_lang(text, False)


def _replace_filled(an, state, rule, index):
    """vmagent `replace` whose replacement has `{{label}}` references: any value, derived from the
    source labels and every referenced label; it may or may not be written."""
    from .vmagent import fill_label_references

    refs: list[str] = []
    fill_label_references(rule.replacement, lambda n: refs.append(n) or "")
    taint = an.source_taint(state, rule)
    for name in refs:
        taint |= an.track(state, name).taint
    cell = Cell(ANY, taint, frozenset({index}), False)
    target = rule.target_label or ""
    if not template_refs(target, rule):
        an.write(state, const_template(target, rule), cell, False)
        return
    names = template_image(target, rule) | lit(const_template(target, rule))
    an.write_names(state, names, cell, taint if an.policy.derived_forbidden else frozenset())


def t_replace_all(an, state, rule, flavor, index):
    """vmagent `replace_all`: every match in the joined value replaced; the target gets the
    result (when it differs from the value), which keeps the unmatched parts: derived from the
    sources whatever the replacement."""
    taint = an.source_taint(state, rule)
    an.write(state, rule.target_label or "", Cell(ANY, taint, frozenset({index}), False), False)


def t_labelmap_all(an, state, rule, flavor, index):
    """vmagent `labelmap_all`: every label renamed in place by replacing each match in its name.
    A tracked label moves to its new name (computed with the engine's own rename) and keeps its
    value and taint; names of the rest may become any name, carrying what they carry."""
    from .engine import _vm_replace_all

    before = state.copy()
    for n, cell in before.cells.items():
        new = _vm_replace_all(rule, n)
        if new == n:
            continue
        state.cells[n] = Cell(EPS, frozenset(), cell.writers | {index}, False)
        moved = Cell(cell.values, cell.taint, cell.writers | {index}, False)
        if new:
            an.write(state, new, moved, False)
    hit_lang = _contains_match(rule)
    renamed = []
    kept = []
    for rc in before.rest:
        hit = rc.names if hit_lang is None else rc.names & hit_lang
        if not (rc.names - hit).is_empty():
            kept.append(replace(rc, names=rc.names - hit))
        if not hit.is_empty():
            taint = an._self_origins(rc, hit) | (rc.taint - {SELF})
            renamed.append(RestClass(_renamed_all(rule, hit), taint, rc.name_taint, rc.writers | {index}))
    state.rest = kept + [rc for rc in state.rest if rc not in before.rest]
    for rc in renamed:
        an.write_names(state, rc.names, Cell(ANY, rc.taint, rc.writers, False), rc.name_taint)


def _renamed_all(rule: Rule, names: Lang) -> Lang:
    """The names `labelmap_all` gives to `names`: exact for a few, else any name."""
    from .engine import _vm_replace_all

    members = names.members(32) if names.is_finite() else None
    if members is None:
        return ANY - EPS
    out = NOTHING
    for m in members:
        out = out | lit(_vm_replace_all(rule, m))
    return out - EPS


def _contains_match(rule: Rule) -> Lang | None:
    """Names in which the unanchored regex of a vmagent `*_all` rule matches somewhere (None:
    not computed, every name may)."""
    text = rule.vm.regex.original.pattern if hasattr(rule.vm.regex.original, "pattern") else None
    if not isinstance(text, str) or any(c in text for c in "^$") or "\\b" in text or "\\B" in text \
            or "\\A" in text or "\\z" in text:
        return None
    from .absdomain import _rule_lang

    lang = _rule_lang(text, False)
    return None if lang is None else ANY.concat(lang).concat(ANY)


def t_contains(an, state, rule, flavor, index):
    """vmagent `keep_if_contains` / `drop_if_contains`: a filter; nothing is written."""


def t_graphite(an, state, rule, flavor, index):
    """vmagent `graphite`: each `labels` target may be set from parts of the metric name (a
    template without `$n` is a constant, set only when the name matches: derived from it)."""
    name_cell = an.track(state, "__name__")
    for target, parts in rule.vm.graphite_labels:
        refs = [n for n, _ in parts if n >= 0]
        values = ANY if refs else lit("".join(t for _, t in parts))
        an.write(state, target, Cell(values, name_cell.taint, frozenset({index}), False), False)


def t_lowercase(an, state, rule, flavor, index):
    _case_map(an, state, rule, index, str.lower)

def t_uppercase(an, state, rule, flavor, index):
    _case_map(an, state, rule, index, str.upper)

def _case_map(an, state, rule, index, fn):
    from .engine import _go_case

    V = an.joined_value(state, rule)
    members = V.members(64) if V.is_finite() else None
    if members is not None:
        result = NOTHING
        for m in members:
            result = result | lit(_go_case(m, upper=fn is str.upper))
    else:
        result = ANY if V.contains("") else ANY - EPS
    cell = Cell(result, an.source_taint(state, rule), frozenset({index}), False)
    an.write(state, rule.target_label or "", cell, True)

def t_hashmod(an, state, rule, flavor, index):
    taint = an.source_taint(state, rule) if an.policy.hashed_forbidden else frozenset()
    an.write(state, rule.target_label or "", Cell(DIGITS, taint, frozenset({index}), False), True)

def t_labeldrop(an, state, rule, flavor, index):
    R = rule_lang_must(rule, flavor)  # only names dropped under every anchoring
    if R is None:
        return
    for n, cell in state.cells.items():
        if R.contains(n):
            state.cells[n] = Cell(EPS, frozenset(), cell.writers | {index}, False)
    state.rest = [replace(rc, names=rc.names - R) for rc in state.rest if not (rc.names - R).is_empty()]

def t_labelkeep(an, state, rule, flavor, index):
    R = rule_lang(rule, flavor)
    if R is None:
        return
    for n, cell in state.cells.items():
        if not R.contains(n):
            state.cells[n] = Cell(EPS, frozenset(), cell.writers | {index}, False)
    state.rest = [replace(rc, names=rc.names & R) for rc in state.rest if not (rc.names & R).is_empty()]

def t_labelmap(an, state, rule, flavor, index):
    """Copy every matching label to its renamed name (Go's ReplaceAllString on the anchored regex).

    Prometheus copies from a snapshot; vmagent updates entries in place while it walks them,
    so a value can hop through several matching labels in one rule: for vmagent every target
    receives the union of all matching values (a sound cover of every chain).  Alloy's
    `discovery.relabel` (v1.18) walks first its Go map of labels added by earlier rules while
    the rule adds to that map, so a label renamed from an *added* one may be renamed again by
    the same rule, in any order: such a copy goes to every name of its chain of renames
    (`_renamed_again`); a label the target came with is renamed once.
    """
    R = rule_lang(rule, flavor)
    # a pattern that escapes the anchors replaces part of a name and the rest survives: a renamed
    # label may have any name (and keeps its name taint)
    partial = flavor == "prometheus" and escapes_anchors(rule.regex)
    refs = template_refs(rule.replacement, rule)
    before = state.copy()
    copies: list[tuple[Lang, Cell, frozenset[str], bool]] = []   # (names, cell, name taint, was added)
    sources: list[Lang] = []                                      # the names each copy reads
    for n, cell in before.cells.items():
        if (R is not None and not R.contains(n)) or (flavor == "prometheus" and not present(cell.values)):
            continue
        if R is None:
            target = ANY
        elif flavor == "vmagent":
            target = lit(vm_map_name(rule, n) or "")
        else:
            target = lit(replace_all(rule.pattern(flavor), n, rule.replacement))
        values = cell.values - EPS if flavor == "prometheus" else cell.values
        copies.append((target, Cell(values, cell.taint, cell.writers | {index}, False), frozenset(),
                       bool(cell.writers)))
        sources.append(lit(n))
    for rc in before.rest:
        matching = rc.names if R is None else rc.names & R
        # customer-id names apart from the others, so that only their copies carry the taint
        split = [matching & an.origin_lang, matching - an.origin_lang] if SELF in rc.taint else [matching]
        for names in split:
            if names.is_empty():
                continue
            target = _renamed(rule, flavor, names, R, refs, partial)
            name_taint = rc.name_taint if refs or partial else frozenset()
            values = ANY - EPS if flavor == "prometheus" else ANY
            copies.append((target, Cell(values, an._self_origins(rc, names), rc.writers | {index}, False),
                           name_taint, bool(rc.writers)))
            sources.append(names)
    if flavor == "vmagent" and len(copies) > 1:
        copies = _vm_hops(copies, sources)
    for target, cell, name_taint, added in copies:
        if an.alloy_targets and flavor == "prometheus" and added:
            target = _renamed_again(rule, flavor, target, R, refs, partial)
        if flavor == "prometheus" and target.contains(""):
            # Prometheus' labelmap sets an empty name too (no name check), and remote write sends it
            an.write(state, "", replace(cell, taint=cell.taint | name_taint), False)
        an.write_names(state, target, cell, name_taint)


def havoc(an, state: State, index: int) -> None:
    """An action we do not model: anything may happen to any label."""
    everything = frozenset({ANY_ORIGIN}) | frozenset(
        n for n in state.cells if an.is_origin(n))
    for c in state.cells.values():
        everything |= c.taint
    for n in state.cells:
        state.cells[n] = Cell(ANY, everything, state.cells[n].writers | {index}, False)
    state.rest.append(RestClass(ANY - EPS - state.tracked, everything | {SELF}, everything,
                                frozenset({index})))

# -- the sink


TRANSFER = {
    "keep": t_keep, "drop": t_drop,
    "keepequal": t_keepequal, "dropequal": t_dropequal, "keep_if_equal": t_keepequal, "drop_if_equal": t_dropequal,
    "replace": t_replace, "lowercase": t_lowercase, "uppercase": t_uppercase, "hashmod": t_hashmod,
    "labeldrop": t_labeldrop, "labelkeep": t_labelkeep, "labelmap": t_labelmap,
    "replace_all": t_replace_all, "labelmap_all": t_labelmap_all, "keep_if_contains": t_contains,
    "drop_if_contains": t_contains, "graphite": t_graphite,
    # keep_metrics / drop_metrics arrive as keep / drop on __name__ (as vmagent parses them)
    "keep_metrics": t_keep, "drop_metrics": t_drop,
}


def _vm_hops(copies: list, sources: list[Lang]) -> list:
    """vmagent's labelmap writes into entries it has yet to visit: a value copied onto a label
    that the rule later copies on carries over. A copy therefore writes its own value joined with
    the value of every copy whose target may be (transitively) one of its source labels, in any
    order of the entries."""
    n = len(copies)
    feeds = [[i != j and not (copies[i][0] & sources[j]).is_empty() for j in range(n)] for i in range(n)]
    for k in range(n):  # transitive closure
        for i in range(n):
            if feeds[i][k]:
                for j in range(n):
                    feeds[i][j] = feeds[i][j] or feeds[k][j]
    out = []
    for j, (target, cell, name_taint, added) in enumerate(copies):
        for i in range(n):
            if feeds[i][j]:
                cell = cell.join(copies[i][1])
        out.append((target, cell, name_taint, added))
    return out


def _renamed(rule: Rule, flavor: str, names: Lang, R: Lang | None, refs: list, partial: bool) -> Lang:
    """Names `labelmap` may give to labels named in `names` (all matching `R`)."""
    if R is None or partial:
        return ANY
    if names.is_finite():
        members = names.members(32)
        if members is not None:
            out = NOTHING
            for n in members:
                new = vm_map_name(rule, n) if flavor == "vmagent" else replace_all(rule.pattern(flavor), n, rule.replacement)
                out = out | lit(new or "")
            return out
    if not refs:
        return lit(const_template(rule.replacement, rule))
    if copies_whole_value(rule, rule.replacement):
        return names
    around = prefix_capture(rule)
    if around is not None:
        prefix, before, after = around
        return lit(before).concat(names.strip_prefix(prefix)).concat(lit(after))
    return template_image(rule.replacement, rule)


_RENAME_CHAIN_BOUND = 8


def _renamed_again(rule: Rule, flavor: str, target: Lang, R: Lang | None, refs: list, partial: bool) -> Lang:
    """Every name a copy can end under when the rule may rename the labels it adds again
    (Alloy's discovery.relabel): the closure of `target` under the rename; ANY if it does not settle."""
    if R is None:
        return ANY
    reached, frontier = target, target
    for _ in range(_RENAME_CHAIN_BOUND):
        again = frontier & R
        if again.is_empty():
            return reached
        new = _renamed(rule, flavor, again, R, refs, partial) - reached
        if new.is_empty():
            return reached
        reached, frontier = reached | new, new
    return ANY
