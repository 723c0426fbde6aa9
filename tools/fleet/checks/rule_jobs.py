"""Every job a rule reads is scraped by a configuration this repo renders.

An alert on `up{job="clickhouse"} == 0` is silent forever if nothing scrapes a `clickhouse` job:
it reads as coverage and is none. The producer catalogue (base/rules/producers.yaml) says what a
job would yield; this check asks whether the job exists at all in what Flux applies:

* platform alerts (Grafana Cloud) read only what Alloy ships: the `job` of every
  `prometheus.scrape` in the rendered `config.alloy` files (any cluster, any profile) and in
  the regional droplets' own Alloy configs (`regions/<region>/alloy/*.alloy`: ClickHouse,
  VictoriaMetrics, the Vector aggregator, and the `cluster:` customer rules the VictoriaMetrics
  droplet federates from its store, job customer-rules);
* customer recording rules (vmalert, the region's VictoriaMetrics) read only what vmagent ships:
  the `job_name`s of every rendered vmagent scrape config.

A `job="X"` matcher (or each alternative of a `job=~"a|b"` literal alternation) naming a job no
rendered config of its plane produces is an error at the rule's `alert:`/`record:` line.

The platform alerts also rely on the catalogue's platform `external_labels` being on every series
(severity derives from `environment`): a rendered platform Alloy config whose remote_write lacks
one is an error at that `prometheus.remote_write` block.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

from ..alloy import graph as alloy_graph
from ..alloy import syntax
from .. import yamlio
from ..errors import Finding, Severity, SourceRef
from ..normalize import shape_digest
from ..relabel.pipeline import external_labels
from ..rules import promql
from ..rules.producers import load_catalogue
from ..rules.lint import alert_files, region_sets
from . import CheckContext

NAME = "rule-jobs"
DESCRIPTION = "every job a rule reads is scraped by a rendered Alloy (platform) or vmagent (customer) config"
#: Every rendered Alloy config that writes to Grafana Cloud: each cluster's, each regional droplet's.
PLATFORM_ALLOY = ("clusters/*/stages/*/config.alloy", "regions/*/alloy/*.alloy")
ORDER = 61
#: Rules, tests, the catalogue and the rendered configs that run scrape jobs (fleet.changed).
READS = ("base/*", "regions/*", "clusters/*/rules/*", "tests/rules/*", "@membership",
         "rendered/clusters/*/config.alloy", "rendered/clusters/*/vmagent.yaml", "rendered/regions/*", "rendered/platform/*")
_ALTERNATION = re.compile(r"^[-a-zA-Z0-9_]+(?:\|[-a-zA-Z0-9_]+)*$")


def file_shape(rendered: Path, path: Path, text: str) -> str:
    """A rendered file's shape (normalize.shape_digest of its text)."""
    return shape_digest(text, path.relative_to(rendered.parent).as_posix())


def _distinct(rendered: Path, pattern: str) -> Iterable[tuple[Path, str]]:
    """(path, text) of each rendered file matching `pattern`, once per shape: files that differ
    only by cluster ID are read as one (a fleet has a handful of shapes, not 1,000)."""
    seen: set[str] = set()
    for path in sorted(rendered.glob(pattern)):
        text = path.read_text()
        shape = file_shape(rendered, path, text)
        if shape not in seen:
            seen.add(shape)
            yield path, text


def alloy_jobs(rendered: Path, patterns: tuple[str, ...] = PLATFORM_ALLOY) -> set[str]:
    """The `job` label of every prometheus.scrape in every rendered Alloy config of `patterns`."""
    jobs: set[str] = set()
    for pattern in patterns:
        for path, text in _distinct(rendered, pattern):
            graph = alloy_graph.build_graph(syntax.parse(text, str(path)), str(path))
            jobs |= {job.job_name for job in alloy_graph.scrape_jobs(graph)}
    return jobs


def missing_external_labels(rendered: Path, required: frozenset[str]) -> Iterable[Finding]:
    """Each rendered platform Alloy remote_write that does not set every label in `required`."""
    for pattern in PLATFORM_ALLOY:
        for path, text in _distinct(rendered, pattern):
            graph = alloy_graph.build_graph(syntax.parse(text, str(path)), str(path))
            for write in graph.of_kind("prometheus.remote_write"):
                labels = external_labels(write.block)
                missing = sorted(required - set(labels)) if labels is not None else []
                if missing:
                    rel = path.relative_to(rendered.parent).as_posix()
                    yield Finding(NAME, Severity.ERROR, SourceRef(rel, write.pos.line),
                                  f"{write.id} sets no external label {', '.join(map(repr, missing))}, which "
                                  "base/rules/producers.yaml says every platform series carries (alert "
                                  "severities derive from environment)",
                                  "set it in the template that renders this file (external_labels)")


def vmagent_jobs(rendered: Path) -> set[str]:
    """The job_name of every scrape config in every rendered vmagent HelmRelease."""
    jobs: set[str] = set()
    for path, text in _distinct(rendered, "clusters/*/stages/*/vmagent.yaml"):
        for doc in yamlio.load_all_text(text, str(path)):
            if isinstance(doc, dict) and doc.get("kind") == "HelmRelease":
                config = (doc["spec"].get("values") or {}).get("config") or {}
                jobs |= {str(j["job_name"]) for j in config.get("scrape_configs") or [] if "job_name" in j}
    return jobs


def jobs_read(expr: str) -> set[str]:
    """Job names a PromQL expression selects by a literal `job` matcher."""
    try:
        ast = promql.parse(expr)
    except ValueError:
        return set()  # rules-promql reports it
    out: set[str] = set()
    for use in promql.selectors(ast):
        for label, op, value in use.matchers:
            if label != "job":
                continue
            if op == "=":
                out.add(value)
            elif op == "=~" and _ALTERNATION.match(value):
                out |= set(value.split("|"))
    return out


def _unfed(rules: Iterable, produced: set[str], plane: str, scraper: str) -> Iterable[Finding]:
    for rule in rules:
        for job in sorted(jobs_read(rule.expr) - produced):
            yield Finding(NAME, Severity.ERROR, rule.source,
                          f"{plane} {rule.kind} {rule.name!r} reads job {job!r}, which no rendered {scraper} scrapes",
                          "scrape the job in a rendered config (platform-jobs.yaml, a cluster profile, "
                          "a regional droplet's agent: tools/fleet/tier/render.py AGENT_JOBS) "
                          "or stop shipping the rule")


def check(ctx: CheckContext) -> Iterable[Finding]:
    if not (ctx.rendered / "clusters").is_dir():
        yield Finding(NAME, Severity.ERROR, SourceRef("rendered/"), "nothing rendered: run `fleet render` first")
        return
    alerts = [r for f in alert_files(ctx.root, ctx.cache) for g in f.groups for r in g.rules]
    yield from _unfed(alerts, alloy_jobs(ctx.rendered), "platform", "Alloy config (cluster or regional droplet)")
    platform = load_catalogue(ctx.root).planes.get("platform")
    if platform is not None:
        yield from missing_external_labels(ctx.rendered, platform.external_labels)
    seen: set[tuple] = set()
    recording = []
    for merged in region_sets(ctx.root, ctx.fleet, ctx.cache).values():
        for _group, rule in merged.rules():
            key = (rule.source, rule.name)
            if key not in seen:
                seen.add(key)
                recording.append(rule)
    yield from _unfed(recording, vmagent_jobs(ctx.rendered), "customer", "vmagent config")
