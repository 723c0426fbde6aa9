"""relabel-vs-rules: a relabel rule that removes a label a recording rule or alert reads.

A `labeldrop: namespace` looks harmless in a relabel diff; it silently empties every rule that
groups or joins by `namespace`. This check ties the two together, per plane:

* customer recording rules (vmalert on the region's VictoriaMetrics) read what the vmagent of
  each cluster in the region writes: per scrape job, `metric_relabel_configs`, the fleet's
  external labels (`cluster_id`, `region`), then the customer remote-write rules
  (base/relabel/customer.yaml + the cluster's own); the report series (`up`, `scrape_*`) go
  through the job's `relabel_configs` instead;
* platform alerts (Grafana Cloud) read what Alloy writes: each scrape path of every rendered
  cluster `config.alloy` and regional droplet `*.alloy` (discovery.relabel, the GDPR gate).

The labels a rule reads are traced through its PromQL (`promql.input_label_uses`: matchers,
`by`, `on`, `group_left/right`, label_replace/label_join sources; not labels the expression
writes itself) to the selectors whose series must carry them; a selector's jobs are its `job`
matcher, else the jobs base/rules/producers.yaml says produce its metric. Selectors of recorded
metrics are skipped: the rule that records them is checked instead. For each job the relabel
abstract interpretation (relabel/survival.py) decides whether the label can still arrive; a
label the pipeline *definitely* removes is an error at the relabel rule that removes it (its
source line: base/relabel/*.yaml, a cluster's relabel, vmagent values), naming every rule that
breaks. A label no input could ever carry is not a relabel change and is left to rules-static.

A finding gathers every cluster and config whose pipeline the rule breaks (its message names
them all), so the check runs whole (SCOPE "fleet"), but only when what it reads changes.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from ..alloy import graph as alloy_graph
from ..alloy import syntax
from ..errors import Finding, Severity, SourceRef
from ..relabel.survival import Fate, JobPipeline, alloy_pipelines, vmagent_pipelines
from ..rules import promql
from ..rules.layout import discover_regions
from ..rules.lint import alert_files, region_sets
from ..rules.producers import Plane, load_catalogue
from . import CheckContext
from .gdpr import _policy, platform_paths
from .rule_jobs import PLATFORM_ALLOY, _distinct

NAME = "relabel-vs-rules"
DESCRIPTION = ("a relabel rule that drops or renames a label a recording rule or alert reads (by, on, "
               "group_left, matchers, label_replace sources) is an error at the relabel rule")
ORDER = 62
#: Rules and the producers catalogue, relabel rules, vmagent values (base, overlays, regions,
#: clusters), the GDPR policy, region membership, and the rendered Alloy configs.
#: Of a cluster folder, only its rules and (`@relabel-inputs`) its vmagent values and relabel patches.
READS = ("base/fleet.yaml", "base/rules/*", "base/relabel/*", "base/components/*", "policies/*", "overlays/*",
         "regions/*", "clusters/*/rules/*", "@relabel-inputs", "@membership", "rendered/clusters/*.alloy",
         "rendered/regions/*")
_ALTERNATION = re.compile(r"^[-a-zA-Z0-9_]+(?:\|[-a-zA-Z0-9_]+)*$")


def selector_jobs(use: promql.SelectorUse, plane: Plane) -> set[str]:
    """Jobs whose series a selector reads: its literal `job` matcher, else the catalogue's
    producers of its metric (none when neither is known)."""
    jobs: set[str] = set()
    for label, op, value in use.matchers:
        if label == "job" and op == "=":
            jobs.add(value)
        elif label == "job" and op == "=~" and _ALTERNATION.match(value):
            jobs |= set(value.split("|"))
    if jobs or use.name is None:
        return jobs
    return {job.name for job in plane.jobs_producing(use.name)}


class _Reads:
    """What a plane's rules read: (job, metric) → label → [(rule, use)]."""

    def __init__(self, rules: Iterable[Any], plane: Plane):
        self.plane = plane
        rules = list(rules)
        recorded = {r.name for r in rules if r.kind == "record"}
        self.by_input: dict[tuple[str, str | None], dict[str, list]] = {}
        for rule in rules:
            try:
                uses = promql.input_label_uses(promql.parse(rule.expr))
            except ValueError:
                continue  # rules-promql reports it
            for use in uses:
                if use.selector.name in recorded or use.label == "__name__":
                    continue
                for job in selector_jobs(use.selector, plane):
                    per_label = self.by_input.setdefault((job, use.selector.name), {})
                    readers = per_label.setdefault(use.label, [])
                    if (rule, use) not in readers:
                        readers.append((rule, use))


def _renamed_to(pipe: JobPipeline, label: str, before: int) -> str | None:
    """The label an earlier rule copied `label`'s value to (a rename is copy + drop)."""
    for rule, _ in reversed(pipe.flat[:before]):
        if rule.action == "replace" and rule.source_labels == (label,) and rule.target_label \
                and rule.target_label != label:
            return rule.target_label
    return None


@dataclass
class _Break:
    """One relabel rule removing one label: every series and rule it breaks, and where."""

    series: set[str] = field(default_factory=set)
    readers: dict[str, str] = field(default_factory=dict)   # "kind 'name'" → "file:line"
    pipelines: set[str] = field(default_factory=set)
    owners: set[str] = field(default_factory=set)


def _record(found: dict, pipe: JobPipeline, fate: Fate, label: str, metric: str | None,
            readers: list, owner: str) -> None:
    rule, _ = pipe.flat[fate.removed_by]  # type: ignore[index]
    renamed = _renamed_to(pipe, label, fate.removed_by)  # type: ignore[arg-type]
    entry = found.setdefault((rule.source or SourceRef(""), rule.action, label, renamed), _Break())
    entry.series.add(f"{metric or ''}{{job=\"{pipe.job}\"}}")
    for r, _use in readers:
        entry.readers.setdefault(f"{r.kind} {r.name!r}", f"{r.source.file}:{r.source.line}")
    entry.pipelines.add(pipe.where)
    entry.owners.add(owner)


def _fates(ctx: CheckContext, pipe: JobPipeline, labels: Iterable[str], metric: str | None) -> dict[str, Fate]:
    """Fates, cached across clusters and config shapes by the pipeline's rule content."""
    cache = ctx.cache.setdefault("relabel-vs-rules.fates", {})
    key = (pipe.key, metric, tuple(sorted(labels)))
    if key not in cache:
        cache[key] = pipe.fates(labels, _policy(ctx), metric)
    return cache[key]


def _breaks(reads: _Reads, pipelines: dict[str, list[JobPipeline]], ctx: CheckContext, owner: str,
            found: dict) -> None:
    """Record every label a job's pipeline removes that a rule reads. One run per pipeline for
    every label its rules read (any series name) finds the candidates, plus the labels a rule
    keyed on `__name__` writes (`_name_keyed`); a run with the series' name decides each (such a
    rule may remove the label only for some series, or keep it for the ones a rule reads)."""
    by_job: dict[str, list[tuple[str | None, dict]]] = {}
    for (job, metric), per_label in reads.by_input.items():
        by_job.setdefault(job, []).append((metric, per_label))
    for job, inputs in sorted(by_job.items()):
        for report in (False, True):
            picked = [(m, per) for m, per in inputs if (m in reads.plane.every_job) == report]
            pipes = [p for p in pipelines.get(job, []) if p.report == report] or \
                [p for p in pipelines.get(job, []) if not p.report]
            wanted = {label for _m, per in picked for label in per}
            for pipe in pipes if wanted else []:
                removed = {label for label, fate in _fates(ctx, pipe, wanted, None).items() if not fate.carried}
                removed |= _name_keyed(pipe, wanted)
                for metric, per_label in picked:
                    labels = sorted(removed & set(per_label))
                    if not labels:
                        continue
                    for label, fate in sorted(_fates(ctx, pipe, labels, metric).items()):
                        if not fate.carried and fate.removed_by is not None:
                            _record(found, pipe, fate, label, metric, per_label[label], owner)


def _name_keyed(pipe: JobPipeline, labels: set[str]) -> set[str]:
    """Labels whose fate may depend on the series' name: written by a rule that reads `__name__`
    (a replace emptying `pod` for some metrics only). The name-blind run cannot rule them out."""
    out: set[str] = set()
    for rule, _ in pipe.flat:
        if "__name__" in rule.source_labels and rule.target_label:
            out |= labels if "$" in rule.target_label else ({rule.target_label} & labels)
    return out


def _finding(key: tuple, entry: _Break) -> Finding:
    source, action, label, renamed = key
    what = f"drops label {label!r}" + (f" (an earlier rule copied it to {renamed!r}: a rename)" if renamed else "")
    readers = ", ".join(f"{name} ({where})" for name, where in sorted(entry.readers.items(), key=lambda kv: kv[1]))
    message = (f"{action} {what} from {', '.join(sorted(entry.series))}, which {len(entry.readers)} rule(s) "
               f"read: {readers}; in {', '.join(sorted(entry.owners))}")
    return Finding(NAME, Severity.ERROR, source, message,
                   "keep the label on these series (narrow the relabel rule), or change the rules that read "
                   "it in the same change",
                   details={"label": label, "rules": dict(sorted(entry.readers.items())),
                            "series": sorted(entry.series), "in": sorted(entry.owners),
                            "pipelines": sorted(entry.pipelines)})


def _customer(ctx: CheckContext, plane: Plane, found: dict) -> None:
    regions = discover_regions(ctx.root, ctx.fleet)
    for region, merged in region_sets(ctx.root, ctx.fleet, ctx.cache).items():
        reads = _Reads([rule for _group, rule in merged.rules()], plane)
        for cluster_id in regions.get(region, []):
            cluster = ctx.fleet.clusters.get(cluster_id)
            if cluster is not None:
                _breaks(reads, vmagent_pipelines(cluster), ctx, cluster_id, found)


def _platform(ctx: CheckContext, plane: Plane, found: dict) -> None:
    alerts = [r for f in alert_files(ctx.root, ctx.cache) for g in f.groups for r in g.rules]
    reads = _Reads(alerts, plane)
    policy = _policy(ctx)
    for pattern in PLATFORM_ALLOY:
        for path, text in _distinct(ctx.rendered, pattern):
            name = path.relative_to(ctx.rendered.parent).as_posix()
            graph = alloy_graph.build_graph(syntax.parse(text, name), name)
            jobs = {job.component: job.job_name for job in alloy_graph.scrape_jobs(graph)}
            pipelines = alloy_pipelines(platform_paths(text, name, policy, []), jobs)
            _breaks(reads, pipelines, ctx, name, found)


def check(ctx: CheckContext) -> Iterable[Finding]:
    catalogue = load_catalogue(ctx.root)
    found: dict[tuple, _Break] = {}
    if "customer" in catalogue.planes and ctx.fleet is not None:
        _customer(ctx, catalogue.planes["customer"], found)
    if "platform" in catalogue.planes and (ctx.rendered / "clusters").is_dir():
        _platform(ctx, catalogue.planes["platform"], found)
    for key in sorted(found, key=lambda k: (k[0], k[2])):
        yield _finding(key, found[key])
