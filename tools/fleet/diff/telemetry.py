"""The semantic telemetry diff: what can reach each destination, before and after.

For each unit (a cluster, or a region's droplets) and each destination:
* Grafana Cloud (every external destination of the policy): the platform path, each
  `config.alloy` (a cluster's, or a region's `alloy/<droplet>.alloy`);
* the region's VictoriaMetrics: the customer path, vmagent's scrape jobs and `remoteWrite`
  (`urlRelabelConfig`) in `vmagent.yaml`;
the summary says which scrape jobs' series can arrive there and, per job, which label names
they can carry (the relabel proof's abstract state at the end of each path, with the job's
value fixed at the start: `relabel/analyzer.py`), and the GDPR verdict: the findings of the
proof (`relabel/proof.prove`) on every external path.

A summary is a pure function of a file's normalised text (`checks/gdpr.normalise`: comments and
external label values blanked; for vmagent, the cluster id abstracted), so a thousand clusters
cost one analysis per distinct text. Units whose telemetry files did not change are skipped.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable

from .. import yamlio
from ..checks import gdpr
from ..relabel import policy as pol
from ..relabel.absdomain import ANY, EPS, NOTHING, RESERVED, Lang, lit, present
from ..relabel.analyzer import Analyzer
from ..relabel.pipeline import PipelinePath, scrape_config_paths
from ..relabel.proof import Pipeline, TargetChain, _cache_key, prove
from .grouping import Unit

#: The destination of the customer path, whatever the region's URL.
REGION_VM = "region-victoriametrics"
TITLES = {"grafana-cloud": "Grafana Cloud", REGION_VM: "the region's VictoriaMetrics"}
#: Stands for "series of any job" when a path's job cannot be told from the configuration.
ANY_JOB = "*"
#: A name set with more members than this is described by its prefix and an example.
MAX_LISTED = 40


def title(destination: str) -> str:
    return TITLES.get(destination, destination)


@dataclass(frozen=True)
class Names:
    """A set of label names as a reviewer reads it: every member when few, else what all
    members start with and one example."""

    members: tuple[str, ...] | None
    prefix: str = ""
    example: str = ""

    @property
    def empty(self) -> bool:
        return self.members == ()

    def to_json(self) -> dict:
        if self.members is not None:
            return {"names": list(self.members)}
        return {"names": None, "prefix": self.prefix, "example": self.example}

    def __str__(self) -> str:
        if self.members is not None:
            return ", ".join(f"`{m}`" for m in self.members)
        start = f"starting with `{self.prefix}` " if self.prefix else ""
        return f"labels {start}(infinitely many names, e.g. `{self.example}`)"


def describe(names: Lang) -> Names:
    members = names.members(MAX_LISTED)
    if members is not None:
        return Names(tuple(members))
    example = names.example(("pod", "namespace", "instance")) or ""
    prefix = ""
    for k in range(len(example), 0, -1):
        if names.is_subset(lit(example[:k]).concat(ANY)):
            prefix = example[:k]
            break
    return Names(None, prefix, example)


@dataclass
class Reach:
    """What can reach one destination: label names per entering job, and the proof's findings."""

    jobs: dict[str, Lang] = field(default_factory=dict)
    findings: set[str] = field(default_factory=set)


Summary = dict[str, Reach]


@dataclass(frozen=True)
class JobLabels:
    """Label names that start / stop reaching a destination from some jobs."""

    jobs: tuple[str, ...]
    added: Names
    removed: Names

    def to_json(self) -> dict:
        return {"jobs": list(self.jobs), "added": self.added.to_json(), "removed": self.removed.to_json()}


@dataclass(frozen=True)
class DestinationChange:
    """How one destination's reach changed: the telemetry diff's grouping key (the change only,
    so clusters that run different job sets but gained the same label group together)."""

    destination: str
    jobs_added: tuple[str, ...]
    jobs_removed: tuple[str, ...]
    labels: tuple[JobLabels, ...]
    gdpr_before: tuple[str, ...]
    gdpr_after: tuple[str, ...]

    @property
    def gdpr_new(self) -> list[str]:
        return sorted(set(self.gdpr_after) - set(self.gdpr_before))

    @property
    def gdpr_resolved(self) -> list[str]:
        return sorted(set(self.gdpr_before) - set(self.gdpr_after))

    def to_json(self) -> dict:
        return {"destination": self.destination, "title": title(self.destination),
                "jobs": {"added": list(self.jobs_added), "removed": list(self.jobs_removed)},
                "labels": [j.to_json() for j in self.labels],
                "gdpr": {"before": list(self.gdpr_before), "after": list(self.gdpr_after),
                         "new": self.gdpr_new, "resolved": self.gdpr_resolved}}


def telemetry_files(unit: Unit, paths: Iterable[str]) -> list[str]:
    """The files of a unit the telemetry diff reads (paths under rendered/)."""
    if unit.scope == "cluster":
        prefix = f"clusters/{unit.name}/"
        return sorted(p for p in paths if p.startswith(prefix) and p.endswith(("/config.alloy", "/vmagent.yaml")))
    if unit.scope == "region":
        prefix = f"regions/{unit.name}/"
        return sorted(p for p in paths if p.startswith(prefix) and p.endswith(".alloy"))
    return []


#: vmagent values a summary does not depend on: external label values (only their names reach
#: the store) and remote-write URLs (only their class: the region's store or not).
_EXTERNAL_LABEL_VALUE = re.compile(r"(?m)^(\s+(?:cluster_id|region):).*$")
#: classify_url's names for a URL no destination of the policy names.
_UNNAMED = ("default", "unknown", "unsafe-url")
_URL = re.compile(r"(?m)^(\s+(?:- )?url: )(\S+)\s*$")


class Analysis:
    """Summaries of one side's files under one policy (see `key`: a summary per distinct key)."""

    def __init__(self, policy: pol.Policy):
        self.policy = policy
        self._names: dict[tuple[str, str], Lang | None] = {}
        self._chain_jobs: dict[str, list[str] | None] = {}
        self._analyzers: dict[tuple[bool, bool], Analyzer] = {}

    def analyzer(self, discovery: bool, alloy_targets: bool = False) -> Analyzer:
        """One analyser per mode: building one costs more than running it (its languages)."""
        key = (discovery, alloy_targets)
        if key not in self._analyzers:
            self._analyzers[key] = Analyzer(self.policy, discovery=discovery, alloy_targets=alloy_targets)
        return self._analyzers[key]

    def key(self, unit: Unit, path: str, data: bytes) -> str:
        """What a file's summary depends on: its text with what differs per unit blanked."""
        text = data.decode("utf-8", "replace")
        if path.endswith(".alloy"):
            return "alloy\0" + hashlib.sha256(gdpr.normalise(text)[0].encode()).hexdigest()
        normalised = text.replace(unit.name, "<cluster>") if unit.name else text
        normalised = _EXTERNAL_LABEL_VALUE.sub(r"\1", normalised)
        normalised = _URL.sub(lambda m: m.group(1) + self._url_class(m.group(2).strip("'\"")), normalised)
        return "vmagent\0" + hashlib.sha256(normalised.encode()).hexdigest()

    def _url_class(self, url: str) -> str:
        klass, name = self.policy.classify_url(url)
        return f"{klass}:{name}" if name not in _UNNAMED else url

    def destinations(self, path: str, data: bytes) -> set[str]:
        """Where a file's series may go, without analysing any path (a superset for vmagent: every
        `url:` of the file)."""
        text = data.decode("utf-8", "replace")
        if path.endswith(".alloy"):
            try:
                return {self._destination(p) for p in gdpr.platform_paths(text, path, self.policy, [])}
            except Exception:  # noqa: BLE001 - unreadable here: the summary reports it; assume it goes anywhere
                return {"*"}
        out = set()
        for m in _URL.finditer(text):
            url = m.group(2).strip("'\"")
            klass, name = self.policy.classify_url(url)
            out.add(REGION_VM if klass == pol.IN_REGION else name if name not in _UNNAMED else url)
        return out

    def file_summary(self, path: str, data: bytes) -> Summary:
        """One telemetry file's summary (an Alloy config, or a vmagent HelmRelease)."""
        text = data.decode("utf-8", "replace")
        return self._alloy(text, path) if path.endswith(".alloy") else self._vmagent(text, path)

    # -- the platform path: Alloy

    def _alloy(self, text: str, name: str) -> Summary:
        from ..alloy import graph as alloy_graph
        from ..alloy import syntax

        graph = alloy_graph.build_graph(syntax.parse(text, name), name)
        summary: Summary = {}
        for path in gdpr.platform_paths(text, name, self.policy, []):
            self._add_path(summary, path, graph, None)
        return summary

    # -- the customer path: vmagent

    def _vmagent(self, text: str, name: str) -> Summary:
        summary: Summary = {}
        for doc in yamlio.load_all_text(text, name):
            values = _helm_values(doc)
            config = values.get("config") if isinstance(values.get("config"), dict) else {}
            jobs = config.get("scrape_configs")
            writes = values.get("remoteWrite")
            if not isinstance(jobs, list) or not isinstance(writes, list):
                continue
            external = (config.get("global") or {}).get("external_labels") or {}
            for entry in writes:
                if isinstance(entry, dict):
                    self._add_remote_write(summary, name, jobs, entry, dict(external))
        return summary

    def _add_remote_write(self, summary: Summary, name: str, jobs: list, entry: dict, external: dict) -> None:
        """Each scrape job, then the URL's `urlRelabelConfig` (as its write_relabel_configs)."""
        from ruamel.yaml.comments import CommentedSeq

        url = str(entry.get("url") or "") or None
        klass, _ = self.policy.classify_url(url)
        rules = entry.get("urlRelabelConfig")
        for job in jobs:
            if isinstance(job, dict):
                job["write_relabel_configs"] = rules if isinstance(rules, CommentedSeq) else CommentedSeq()
        paths = scrape_config_paths(Path(name), {"scrape_configs": jobs}, name, self.policy, "vmagent")
        labels = {str(k): "?" for k in external}
        for index, path in enumerate(paths):
            job = jobs[index // 2]  # two paths per job: its series, its report series
            path = replace(path, url=url, klass=klass, pipeline=replace(path.pipeline, external_labels=labels))
            self._add_path(summary, path, None, str(job.get("job_name", "")) if isinstance(job, dict) else None)

    # -- one path

    def _add_path(self, summary: Summary, path: PipelinePath, graph: Any, job_name: str | None) -> None:
        dest = self._destination(path)
        reach = summary.setdefault(dest, Reach())
        for job in self._entering_jobs(path, graph, job_name):
            names = self._reaching_names(path.pipeline, job)
            if names is not None:
                reach.jobs[job] = reach.jobs.get(job, NOTHING) | names
        if path.external:
            reach.findings.update(gdpr._message(leak) for leak in prove(path.pipeline, self.policy))

    def _destination(self, path: PipelinePath) -> str:
        if path.klass == pol.IN_REGION:
            return REGION_VM
        _, name = self.policy.classify_url(path.url)
        return name if name not in _UNNAMED else f"{path.url or 'a non-literal URL'}"

    def _entering_jobs(self, path: PipelinePath, graph: Any, job_name: str | None) -> list[str]:
        """The `job` values series start the path's relabel rules with: the scrape's job name,
        unless target relabeling sets another (Alloy's `job_name` only fills a missing `job`);
        [ANY_JOB] when the configuration does not tell."""
        pipeline = path.pipeline
        if pipeline.fixed_input.get("job"):
            return [pipeline.fixed_input["job"]]
        if job_name is None and graph is not None:
            from ..alloy.graph import scrape_job

            source = path.description.split(" → ", 1)[0]
            comp = graph.components.get(source)
            if comp is not None and comp.kind == "prometheus.scrape":
                job = scrape_job(graph, source)
                inline = _literal_targets(job.targets)
                if inline is not None:  # targets written out: their `job`, else the job name
                    return sorted({str(t.get("job") or job.job_name) for t in inline}) or []
                job_name = job.job_name
        if not job_name:
            return [ANY_JOB]
        if not pipeline.targets:
            return [job_name]
        jobs: set[str] = set()
        for chain in pipeline.targets:
            members = self._target_jobs(chain)
            if members is None:
                return [ANY_JOB]
            jobs.update(m or job_name for m in members)
        return sorted(jobs)

    def _target_jobs(self, chain: TargetChain) -> list[str] | None:
        """The `job` values a target may have after its relabeling ("" = none: the scrape's job
        name fills it); None when any value is possible."""
        key = _cache_key(Pipeline(chain.stages, name="", targets=[chain]), self.policy)
        if key not in self._chain_jobs:
            an = self.analyzer(True, chain.alloy)
            state = an.run(chain.flat, input_names=RESERVED if chain.meta_only else ANY)
            self._chain_jobs[key] = [] if state.dead else an.track(state, "job").values.members(MAX_LISTED)
        return self._chain_jobs[key]

    def _reaching_names(self, pipeline: Pipeline, job: str) -> Lang | None:
        """Label names a series entering with `job` may carry at the destination; None when no
        such series gets there."""
        key = (_cache_key(replace(pipeline, targets=[]), self.policy), job)
        if key in self._names:
            return self._names[key]
        fixed = dict(pipeline.fixed_input)
        if job != ANY_JOB:
            fixed["job"] = job
        input_names = ANY
        if pipeline.meta_only_input:
            input_names = RESERVED
            for name in fixed:
                input_names = input_names | lit(name)
        an = self.analyzer(pipeline.discovery_input)
        state = an.run(pipeline.flat, external_labels=pipeline.external_labels, external_at=pipeline.external_at,
                       input_names=input_names, fixed=fixed)
        names: Lang | None = None
        if not state.dead:
            names = NOTHING
            for label, cell in state.cells.items():
                if present(cell.values):
                    names = names | lit(label)
            for rest in state.rest:
                names = names | rest.names
            names = names - EPS
            if names.is_empty():
                names = None  # a series with no label left is no series
        self._names[key] = names
        return names


def _literal_targets(expr: Any) -> list[dict] | None:
    """A scrape's `targets` when written as a literal array of objects; None otherwise."""
    from ..alloy.syntax import NotLiteral, literal_value

    if expr is None:
        return None
    try:
        value = literal_value(expr)
    except NotLiteral:
        return None
    return value if isinstance(value, list) and all(isinstance(t, dict) for t in value) else None


def merge(parts: Iterable[Summary]) -> Summary:
    """One unit's summary from its files' summaries."""
    out: Summary = {}
    for part in parts:
        for dest, reach in part.items():
            into = out.setdefault(dest, Reach())
            for job, names in reach.jobs.items():
                into.jobs[job] = into.jobs.get(job, NOTHING) | names
            into.findings |= reach.findings
    return out


def _helm_values(doc: Any) -> dict:
    if not isinstance(doc, dict) or doc.get("kind") != "HelmRelease":
        return {}
    values = (doc.get("spec") or {}).get("values")
    return values if isinstance(values, dict) else {}


def compare(before: Summary, after: Summary) -> list[DestinationChange]:
    """Per destination whose reach changed: jobs, label names per job, GDPR findings."""
    out = []
    for dest in sorted(set(before) | set(after)):
        old, new = before.get(dest, Reach()), after.get(dest, Reach())
        per_job: dict[tuple[Names, Names], list[str]] = {}
        for job in sorted(set(old.jobs) & set(new.jobs)):
            added, removed = new.jobs[job] - old.jobs[job], old.jobs[job] - new.jobs[job]
            if added.is_empty() and removed.is_empty():
                continue
            per_job.setdefault((describe(added), describe(removed)), []).append(job)
        labels = tuple(JobLabels(tuple(jobs), a, r) for (a, r), jobs in sorted(per_job.items(), key=lambda kv: kv[1]))
        change = DestinationChange(dest, tuple(sorted(set(new.jobs) - set(old.jobs))),
                                   tuple(sorted(set(old.jobs) - set(new.jobs))), labels,
                                   tuple(sorted(old.findings)), tuple(sorted(new.findings)))
        if change.jobs_added or change.jobs_removed or labels or change.gdpr_new or change.gdpr_resolved:
            out.append(change)
    return out
