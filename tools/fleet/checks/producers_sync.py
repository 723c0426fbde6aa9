"""The rules' producer catalogue (base/rules/producers.yaml) names exactly the jobs we scrape.

"No rule reads a series nothing produces" is only as true as the catalogue: customer-plane jobs
must be vmagent's scrape jobs (both ways), and every platform job Alloy scrapes must be listed:
a cluster's (platform-jobs.yaml) and a regional droplet's (tools/fleet/tier/render.py AGENT_JOBS).
Whether each job a rule reads is scraped at all, by a rendered config, is the `rule-jobs` check.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from .. import yamlio
from ..errors import Finding, Severity, SourceRef
from ..render.alloy import platform_jobs
from ..tier import render as tier_render
from ..tier.render import AGENT_JOBS
from . import CheckContext

NAME = "producers-sync"
DESCRIPTION = "producer catalogue of the rules matches the configured scrape jobs"
ORDER = 60
SCOPE = "cluster"
CATALOGUE = "base/rules/producers.yaml"
AGENT_JOBS_FILE = "tools/fleet/tier/render.py"
PLATFORM_JOBS = "base/components/alloy/platform-jobs.yaml"


def check(ctx: CheckContext) -> Iterable[Finding]:
    path = ctx.root / CATALOGUE
    if not path.exists():
        return
    node = yamlio.load_file(path, CATALOGUE)
    catalogue = yamlio.plain(node)
    customer = set((catalogue.get("customer") or {}).get("jobs") or {})
    platform = set((catalogue.get("platform") or {}).get("jobs") or {})
    alloy_jobs = {j["job"] for j in platform_jobs(ctx.root)} | {"alloy"}
    for cluster in ctx.fleet.clusters.values():
        vmagent = cluster.components["vmagent"]
        configured = {j.get("job_name") for j in vmagent.values.get("config", {}).get("scrape_configs", [])}
        for job in sorted(customer - configured):
            line, col = yamlio.position(node["customer"]["jobs"], job)
            yield Finding(NAME, Severity.ERROR, SourceRef(CATALOGUE, line, col),
                          f"customer job {job!r} is not a vmagent scrape job in cluster {cluster.id}",
                          hint="rules that read its metrics would read nothing")
        for job in sorted(configured - customer):
            yield Finding(NAME, Severity.WARNING, vmagent.source_of("values", "config", "scrape_configs") or SourceRef(cluster.source),
                          f"vmagent job {job!r} (cluster {cluster.id}) is missing from {CATALOGUE}")
    for job in sorted(alloy_jobs - platform):
        yield Finding(NAME, Severity.ERROR, _platform_job_ref(ctx.root, job),
                      f"Alloy scrapes platform job {job!r}, which {CATALOGUE} does not list")
    droplet_jobs = {job for jobs in AGENT_JOBS.values() for job, _address, _path in jobs}
    for job in sorted(droplet_jobs - platform):
        yield Finding(NAME, Severity.ERROR, _agent_jobs_ref(),
                      f"a regional droplet's Alloy scrapes platform job {job!r}, which {CATALOGUE} does not list")


def _platform_job_ref(root: Path, job: str) -> SourceRef:
    """The `- job:` entry of `job` in platform-jobs.yaml (the file itself for a job it does not
    list, such as Alloy's own `alloy`): the line a reviewer fixes, or the catalogue gap it opens."""
    node = yamlio.load_file(root / PLATFORM_JOBS, PLATFORM_JOBS)
    for index, entry in enumerate(node or []):
        if isinstance(entry, dict) and entry.get("job") == job:
            line, col = yamlio.position(node, index)
            return SourceRef(PLATFORM_JOBS, line, col)
    return SourceRef(PLATFORM_JOBS)


def _agent_jobs_ref() -> SourceRef:
    """Where the droplets' scrape jobs are declared: the `AGENT_JOBS = {` line of the tier
    renderer that runs (its own source, so the line is right in any checkout)."""
    lines = Path(tier_render.__file__).read_text(encoding="utf-8").splitlines()
    line = next((i for i, text in enumerate(lines, 1) if text.startswith("AGENT_JOBS = {")), None)
    return SourceRef(AGENT_JOBS_FILE, line)
