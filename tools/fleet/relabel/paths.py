"""The path model: what an agent sends, and along which rules.

A `Pipeline` is one path from where series enter to one destination: rule stages (relabel
lists of a flavour, or OPAQUE for a component we do not model), the remote write's external
labels, and the target relabeling chains in front of a scrape (`TargetChain`). The concrete
side (`run_concrete`, `run_target`, `scraped_series`) runs the engine along a path; the
abstract side (`add_external_labels`, `sent_leaks`, `target_taints`, `exported_taints`) says
what of an abstract state leaves the agent: every part of what a write sends is a path.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .absdomain import (ANY_ORIGIN, EPS, EXPORTED, NOTHING, RESERVED, SELF, AbstractLeak, Cell, Lang,
                        RestClass, State, _NAME_PREFER, lit, present)
from .engine import Rule, apply, apply_alloy_targets, trace

if TYPE_CHECKING:
    from .analyzer import Analyzer


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
    #: Alloy's discovery.relabel (its target builder, see engine.apply_alloy_targets); False for a
    #: YAML scrape job's relabel_configs (Prometheus, vmagent)
    alloy: bool = True

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
        # Alloy's discovery.relabel may rename again what a labelmap adds
        alloy = chain.alloy and flavor == "prometheus"
        out = apply_alloy_targets(rules, out) if alloy else apply(rules, out, flavor)  # type: ignore[arg-type]
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
    #: what the write sends besides the relabeled series (`exemplars`, `metadata`, `payload`),
    #: each with where it is configured: relabeling never touches these parts
    sends: dict[str, str] = field(default_factory=dict)
    #: the input is a scrape *target* (a YAML job's report series `up`, `scrape_*`): the values of
    #: service-discovery meta labels are customer ids (policy.discovery_patterns), `fixed_input`
    #: labels hold their value (the job's `job_name`), and with `meta_only_input` the discovery
    #: emits only `__`-prefixed names besides them
    discovery_input: bool = False
    fixed_input: dict[str, str] = field(default_factory=dict)
    meta_only_input: bool = False

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


# --------------------------------------------------------------------------------------------
# What of an abstract state leaves the agent


def add_external_labels(an: "Analyzer", state: State, external_labels: dict[str, str]) -> State:
    """The remote write's external labels: each is set where the series lacks it."""
    if state.dead:
        return state
    state = state.copy()
    for name, value in external_labels.items():
        cell = an.track(state, name)
        if cell.values.contains("") and value:
            state.cells[name] = Cell((cell.values - EPS) | lit(value), cell.taint, cell.writers, False)
    return state

def sent_leaks(an: "Analyzer", state: State) -> list[AbstractLeak]:
    """What may reach an external destination in `state` (a series with no label left is no
    series: both agents drop it)."""
    if state.dead or (not state.rest and not any(present(c.values) for c in state.cells.values())):
        return []
    out: list[AbstractLeak] = []
    derived = an.policy.derived_forbidden
    for n, cell in sorted(state.cells.items()):
        if not present(cell.values):
            continue
        if an.policy.is_forbidden(n):
            out.append(AbstractLeak("label", n, cell.taint, cell.writers))
        elif derived and cell.taint:
            out.append(AbstractLeak("value", n, cell.taint, cell.writers))
    for rc in state.rest:
        hit = rc.names & an.forbidden
        if not hit.is_empty():
            out.append(AbstractLeak("label", hit.example(an.forbidden_examples) or "?",
                                    _resolve_origin(rc), rc.writers))
        clean = rc.names - an.forbidden
        if derived and not clean.is_empty() and ((rc.taint - {SELF}) or rc.name_taint):
            out.append(AbstractLeak("value", clean.example(_NAME_PREFER) or "?",
                                    (rc.taint - {SELF}) | rc.name_taint, rc.writers))
    job = state.cells["job"]
    bad = job.values - an.allowed_jobs
    if not bad.is_empty():
        example = bad.example(("", "customer-app", "envoy-self", "app"))
        out.append(AbstractLeak("job", "job", frozenset(), job.writers, example or ""))
    return out

def _resolve_origin(rc: RestClass) -> frozenset[str]:
    return (rc.taint - {SELF}) | rc.name_taint


def target_taints(an: "Analyzer", state: State) -> list[tuple[Lang, frozenset[str], frozenset[str]]]:
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
    address = an.track(state, "__address__")
    instance = an.track(state, "instance")
    if address.taint and instance.values.contains(""):
        # a target without `instance` gets its `__address__` there (Prometheus' PopulateLabels)
        out.append((lit("instance"), address.taint, frozenset()))
    for rc in state.rest:
        names = rc.names - RESERVED
        taint = rc.taint - {SELF}
        if not names.is_empty() and (taint or rc.name_taint):
            out.append((names, taint | rc.name_taint, rc.name_taint))
    return out

def exported_taints(an: "Analyzer", state: State) -> list[tuple[Lang, frozenset[str], frozenset[str]]]:
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
    shadowed = names & an.forbidden
    if shadowed.is_empty():
        return []
    members = shadowed.members(16) if shadowed.is_finite() else None
    origins = frozenset(members) if members else frozenset({ANY_ORIGIN})
    return [(EXPORTED.concat(shadowed), origins, frozenset())]


#: The parts of a write that relabeling never touches, and why each may carry a customer id.
UNRELABELED_PARTS = {
    "exemplars": ("exemplar", "exemplar labels (e.g. a trace or request id an exporter attaches) are sent as "
                  "scraped: no relabel rule, write_relabel_config included, ever sees them; set "
                  "`send_exemplars = false` on the endpoint"),
    "metadata": ("metadata", "metric metadata (family name, HELP, unit) is sent for every scraped family, "
                 "also for series the rules drop; set `metadata_config { send = false }` on the endpoint"),
    "payload": ("payload", "this sink sends more than labels (log lines, profiles, spans, exemplars) and the "
                "analysis models only labels: the path is refused"),
}

