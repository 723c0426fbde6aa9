"""Which label names survive a job's relabel pipeline, and which rule removes one that does not.

The GDPR proof asks "may a forbidden label leave?"; the rules ask the opposite question: "may
the label my `by (namespace)` needs still arrive?". Both are the same abstract interpretation
(analyzer.py over absdomain.py): the input is arbitrary (an exporter may emit any label), the
job's `job` (and, when known, the series' name) are fixed, and each rule narrows or widens the
languages. A label the final state cannot carry is one the pipeline *definitely* removes, so a
finding is never a guess. Stepping through the rules one at a time tells which rule removed it:
the last one after which the label went from possible to impossible.

The per-job pipelines are built here too: vmagent's scrape jobs from the merged component values
(metric_relabel_configs, the global external labels, then the customer remote-write rules) and
Alloy's scrape paths from a rendered `config.alloy` (pipeline.alloy_paths).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from ..errors import SourceRef
from .absdomain import ANY, EPS, RESERVED, Lang, State, lit, present, tracked_names
from .analyzer import Analyzer
from .engine import Rule, rule_from_mapping
from .paths import OPAQUE, Pipeline
from .policy import Policy


@dataclass(frozen=True)
class Fate:
    """What a pipeline does to one label: `carried` whether it may arrive; `removed_by` the flat
    index of the rule after which it no longer can (None when it never could, or still can);
    `dead_at` the rule after which no series of the input survives at all."""

    carried: bool
    removed_by: int | None = None
    dead_at: int | None = None


def may_carry(state: State, label: str) -> bool:
    """Whether a series in `state` may carry `label` with a non-empty value."""
    if state.dead:
        return False
    cell = state.cells.get(label)
    if cell is not None:
        return present(cell.values)
    return any(rc.names.contains(label) for rc in state.rest)


def label_fates(flat: Sequence[tuple[Rule, str]], labels: Iterable[str], policy: Policy, *,
                fixed: dict[str, str] | None = None, input_names: Lang = ANY,
                external_labels: dict[str, str] | None = None, external_at: int | None = None) -> dict[str, Fate]:
    """Run `flat` abstractly once and follow each of `labels` (see the module docstring)."""
    analyzer = shared_analyzer(policy)
    external = external_labels or {}
    labels = sorted(set(labels))
    state = analyzer.initial(tracked_names(flat) | set(labels) | set(external), input_names, fixed)
    at = len(flat) if external_at is None else external_at
    possible = {label: may_carry(state, label) for label in labels}
    removed_by: dict[str, int | None] = dict.fromkeys(labels)

    def update(index: int | None) -> None:
        for label in labels:
            now = may_carry(state, label)
            if possible[label] and not now:
                removed_by[label] = index
            elif now:
                removed_by[label] = None
            possible[label] = now

    for index, (rule, flavor) in enumerate(flat):
        if index == at:
            state = analyzer.add_external_labels(state, external)
            update(None)
        state = analyzer.step(state, rule, flavor, index)
        if state.dead:
            return {label: Fate(False, None, index) for label in labels}
        update(index)
    if at >= len(flat):
        state = analyzer.add_external_labels(state, external)
        update(None)
    return {label: Fate(possible[label], None if possible[label] else removed_by[label]) for label in labels}


_ANALYZERS: dict[str, Analyzer] = {}


def shared_analyzer(policy: Policy) -> Analyzer:
    """One analyzer per policy: building its languages costs more than a short pipeline's run."""
    if policy.fingerprint not in _ANALYZERS:
        _ANALYZERS[policy.fingerprint] = Analyzer(policy)
    return _ANALYZERS[policy.fingerprint]


@dataclass
class JobPipeline:
    """One way a job's series reach a store: the rules in order (flat), the external labels and
    before which rule they are added, and whether the input is a scrape target's report series
    (`up`, `scrape_*`: only the target's labels, not the exporter's)."""

    job: str
    flat: list[tuple[Rule, str]]
    external_labels: dict[str, str]
    external_at: int
    report: bool = False
    where: str = ""

    def fates(self, labels: Iterable[str], policy: Policy, metric: str | None = None) -> dict[str, Fate]:
        """What this pipeline does to each of `labels` on series named `metric` (any name when None)."""
        fixed = {"job": self.job}
        if metric:
            fixed["__name__"] = metric
        names = ANY
        if self.report:
            names = RESERVED | lit("job") | (lit("__name__") if metric else EPS)
        return label_fates(self.flat, labels, policy, fixed=fixed, input_names=names,
                           external_labels=self.external_labels, external_at=self.external_at)

    @property
    def key(self) -> str:
        """Same rules, same external label names: same fates (sources aside, which a finding
        takes from the pipeline's own rule at `removed_by`)."""
        parts = [repr((r.action, r.source_labels, r.separator, r.regex, r.regex_set, r.target_label,
                       r.replacement, r.modulus, flavor)) for r, flavor in self.flat]
        return repr((self.job, self.report, self.external_at, sorted(self.external_labels), parts))


_RULES: dict[tuple, Rule] = {}


def cached_rule(raw: Any, source: SourceRef | None, flavor: str) -> Rule:
    """rule_from_mapping, once per (mapping, source, flavour): a fleet's clusters share most
    rules, and building one compiles its regex."""
    key = (repr(raw), str(source), flavor)
    rule = _RULES.get(key)
    if rule is None:
        rule = _RULES[key] = rule_from_mapping(raw, source, flavor)  # type: ignore[arg-type]
    return rule


def _rules(items: Any, source_of: Any, path: tuple, flavor: str) -> list[Rule]:
    return [cached_rule(item, source_of(*path, index) or SourceRef(""), flavor)
            for index, item in enumerate(items or [])]


def _report_rules(flavor: str) -> list[Rule]:
    """The scrape's own series get `instance` from `__address__` and lose every `__` label."""
    rules = [{"source_labels": ["instance", "__address__"], "regex": ";(.*)", "target_label": "instance"},
             {"action": "labeldrop", "regex": "__.*"}]
    return [cached_rule(r, None, flavor) for r in rules]  # every job of every cluster: compile once


def vmagent_pipelines(cluster: Any) -> dict[str, list[JobPipeline]]:
    """job → the customer-path pipelines of one cluster's vmagent: for scraped series
    metric_relabel_configs, the global external labels, the remote write's urlRelabelConfig;
    for report series (`up`, ...) relabel_configs instead of metric_relabel_configs."""
    vmagent = cluster.components.get("vmagent")
    if vmagent is None:
        return {}
    config = vmagent.values.get("config") or {}
    # Fleet-owned (render/wiring.py), set after the layers: the model's values do not hold them yet.
    external = {"cluster_id": cluster.id, "region": cluster.region.slug}
    write = [cached_rule(r.rule, r.source, "vmagent") for r in cluster.customer_relabel]
    out: dict[str, list[JobPipeline]] = {}
    for index, job in enumerate(config.get("scrape_configs") or []):
        if not isinstance(job, dict) or "job_name" not in job:
            continue
        name = str(job["job_name"])
        base = ("values", "config", "scrape_configs", index)
        series = _rules(job.get("metric_relabel_configs"), vmagent.source_of, base + ("metric_relabel_configs",), "vmagent")
        targets = _rules(job.get("relabel_configs"), vmagent.source_of, base + ("relabel_configs",), "vmagent")
        report = targets + _report_rules("vmagent")
        where = f"vmagent scrape job {name}"
        out[name] = [
            JobPipeline(name, [(r, "vmagent") for r in series + write], external, len(series), False, where),
            JobPipeline(name, [(r, "vmagent") for r in report + write], external, len(report), True, where),
        ]
    return out


def alloy_pipelines(paths: Iterable[Any], jobs_by_source: dict[str, str]) -> dict[str, list[JobPipeline]]:
    """job → the pipelines of a rendered Alloy config's scrape paths (pipeline.alloy_paths);
    `jobs_by_source` maps each prometheus.scrape component id to its job name."""
    out: dict[str, list[JobPipeline]] = {}
    for path in paths:
        source = path.description.split(" → ")[0]
        job = jobs_by_source.get(source)
        pipe: Pipeline = path.pipeline
        if job is None or any(flavor == OPAQUE for _, flavor in pipe.stages):
            continue
        out.setdefault(job, []).append(JobPipeline(job, pipe.flat, dict(pipe.external_labels),
                                                   pipe.external_at, False, path.description))
    return out
