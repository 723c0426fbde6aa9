"""The GDPR proof's analyser: the abstract state of one policy, carried along a path.

The input is arbitrary: every tracked label may hold any value or be absent, and every other
name may be present with any value.  `run` applies each rule's transfer function (transfer.py)
in order and adds the remote write's external labels where the path model (paths.py) says the
agent adds them.  Filters narrow value languages; `labeldrop`/`labelkeep` narrow name
languages; copies join cells (a copy *may* happen).  A regex we cannot model
(`UnsupportedRegex`) is treated as "may match anything, may fail to match anything".
"""
from __future__ import annotations

from dataclasses import replace
from typing import Iterable, Sequence

from . import paths, transfer
from .absdomain import (ANY, ANY_ORIGIN, EPS, NOTHING, SELF, AbstractLeak, Cell, Lang, RestClass, State,
                        _forbidden_lang, lit, present, tracked_names)
from .engine import Rule
from .policy import Policy


class Analyzer:
    """Transfer functions for one policy over a flat list of (rule, flavor)."""

    def __init__(self, policy: Policy, discovery: bool = False, alloy_targets: bool = False):
        """`discovery`: the rules are target relabeling (`discovery.relabel`, a scrape job's
        `relabel_configs`), where the values of meta labels such as
        `__meta_kubernetes_pod_label_starform_io_project_id` are customer ids too
        (policy.discovery_patterns): they are taint origins there.  `alloy_targets`: the
        prometheus-flavour rules run on Alloy's target builder (transfer.t_labelmap)."""
        self.policy = policy
        self.alloy_targets = alloy_targets and discovery
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

    def initial(self, names: Iterable[str], input_names: Lang = ANY, fixed: dict[str, str] | None = None) -> State:
        """Every input is possible: tracked labels any value or absent, any other name present
        (of the names the input may carry at all, `input_names`); a `fixed` label has its value."""
        fixed = fixed or {}
        tracked_names = sorted(set(names) | {"job", "__name__"} | set(self.policy.literal_forbidden_names) | set(fixed))
        tracked = NOTHING
        cells = {}
        constraints = {}
        for n in tracked_names:
            tracked = tracked | lit(n)
            values = lit(fixed[n]) if n in fixed else ANY if input_names.contains(n) else EPS
            cells[n] = Cell(values, frozenset({n}) if self.is_origin(n) else frozenset())
            constraints[n] = values if n in fixed else ANY
        rest = [RestClass(input_names - EPS - tracked)]
        return State(cells, rest, tracked, constraints=constraints)

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

    # -- one rule, and the end of the path

    def step(self, state: State, rule: Rule, flavor: str, index: int) -> State:
        return transfer.step(self, state, rule, flavor, index)

    def add_external_labels(self, state: State, external_labels: dict[str, str]) -> State:
        return paths.add_external_labels(self, state, external_labels)

    def leaks(self, state: State) -> list[AbstractLeak]:
        return paths.sent_leaks(self, state)

    def target_taints(self, state: State) -> list[tuple[Lang, frozenset[str], frozenset[str]]]:
        return paths.target_taints(self, state)

    def exported_taints(self, state: State) -> list[tuple[Lang, frozenset[str], frozenset[str]]]:
        return paths.exported_taints(self, state)

    def seed(self, state: State, taints: Iterable[tuple[Lang, frozenset[str], frozenset[str]]]) -> None:
        """Series may carry target labels with these taints (see `target_taints`)."""
        for names, taint, name_taint in taints:
            self.write_names(state, names, Cell(ANY, taint, frozenset(), False), name_taint)

    def run(self, flat: Sequence[tuple[Rule, str]], extra_names: Iterable[str] = (),
            seeds: Iterable[tuple[Lang, frozenset[str], frozenset[str]]] = (),
            input_names: Lang = ANY, external_labels: dict[str, str] | None = None,
            external_at: int | None = None, fixed: dict[str, str] | None = None) -> State:
        """Every rule of `flat` in order; the external labels are added before rule `external_at`
        (the remote write's own write_relabel_configs see them), or after the last one."""
        state = self.initial(tracked_names(flat) | set(extra_names) | set(external_labels or {}), input_names, fixed)
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
