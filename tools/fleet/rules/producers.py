"""The metric-producer catalogue (base/rules/producers.yaml) as data.

Why: "no rule reads a series nothing produces" needs to know, per plane, which scrape job yields
which metric names. The customer plane is vmagent → the region's VictoriaMetrics; the platform
plane is Alloy → Grafana Cloud. A rule may only read its own plane's jobs (and its own plane's
recording rules): a platform alert can never see a customer series, and the reverse.

Format:

    <plane>:                       # customer | platform
      external_labels: [..]        # labels every series of the plane carries (agent external labels)
      every_job: [up, ...]         # series the scraper adds for every target
      jobs:
        <job>:
          source: "<where these come from>"
          labels: [..]             # labels every series of this job carries (non-empty)
          metrics: [name, ...]     # exact names the exporter emits

Names are exact, never globs: a glob such as `fluentbit_*` accepts every typo of a Fluent Bit
metric, and a rule reading a misspelt name silently never fires. The shape is checked against
fleet/schemas/producers.schema.json (unknown keys, globs → InputError at file:line).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import schema, yamlio
from ..errors import InputError, InputErrors, SourceRef
from .layout import PRODUCERS

PLANES = ("customer", "platform")


@dataclass
class Job:
    name: str
    source: str
    labels: frozenset[str]
    metrics: frozenset[str]
    where: SourceRef

    def produces(self, metric: str) -> bool:
        return metric in self.metrics


@dataclass
class Plane:
    name: str
    external_labels: frozenset[str]
    every_job: list[str]
    jobs: dict[str, Job]

    def jobs_producing(self, metric: str, job: str | None = None) -> list[Job]:
        """Jobs of this plane that produce `metric` (restricted to `job` when the selector names one)."""
        candidates = [self.jobs[job]] if job is not None and job in self.jobs else (
            [] if job is not None else list(self.jobs.values()))
        if metric in self.every_job:
            return candidates
        return [j for j in candidates if j.produces(metric)]


@dataclass
class Catalogue:
    planes: dict[str, Plane]
    path: str


def _str_list(node: Any, key: str, name: str) -> list[str]:
    value = node.get(key, []) if isinstance(node, dict) else []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        line, col = yamlio.position(node, key)
        raise InputError(f"`{key}` must be a list of non-empty strings", SourceRef(name, line, col))
    return [str(v) for v in value]


def load_catalogue(root: Path) -> Catalogue:
    """Load base/rules/producers.yaml; InputError with positions on a bad shape."""
    path = root / PRODUCERS
    name = str(PRODUCERS)
    if not path.is_file():
        raise InputError("the metric producer catalogue is missing", SourceRef(name))
    doc = yamlio.load_file(path, name)
    if not isinstance(doc, dict):
        raise InputError("expected a mapping of planes", SourceRef(name, 1, 1), expected=", ".join(PLANES))
    problems = schema.validate(doc, "producers", name)
    if problems:
        raise problems[0] if len(problems) == 1 else InputErrors(problems)
    planes: dict[str, Plane] = {}
    for plane_name, node in doc.items():
        line, col = yamlio.position(doc, plane_name)
        if plane_name not in PLANES or not isinstance(node, dict):
            raise InputError(f"unknown plane {plane_name!r}", SourceRef(name, line, col), expected=", ".join(PLANES))
        jobs_node = node.get("jobs", {})
        if not isinstance(jobs_node, dict):
            raise InputError("`jobs` must be a mapping", SourceRef(name, *yamlio.position(node, "jobs")))
        jobs = {}
        for job_name, job_node in jobs_node.items():
            where = SourceRef(name, *yamlio.position(jobs_node, job_name))
            if not isinstance(job_node, dict):
                raise InputError(f"job {job_name!r} must be a mapping", where)
            jobs[str(job_name)] = Job(str(job_name), str(job_node.get("source", "")),
                                      frozenset(_str_list(job_node, "labels", name)),
                                      frozenset(_str_list(job_node, "metrics", name)), where)
        planes[plane_name] = Plane(plane_name, frozenset(_str_list(node, "external_labels", name)),
                                   _str_list(node, "every_job", name), jobs)
    return Catalogue(planes, name)
