"""Platform-only telemetry is scraped by Alloy alone: no vmagent scrape job keeps its pods.

Node metrics (node-exporter) belong on the platform path (Alloy → Grafana Cloud). vmagent
ships to the region's customer store; a vmagent job that also selected node-exporter would put
node series into customer storage and double the scrape load. For each `alloyOnly` job of
platform-jobs.yaml, a worst-case target is built for every Kubernetes SD role a vmagent job
uses (the job's namespace, pod label and port name on the pod and on its Service, and a
`prometheus.io/scrape: "true"` annotation on both, as charts commonly set) and run through the
job's relabel_configs with the relabel engine (vmagent semantics). A job that keeps it is an
error at the line that set that scrape config (base/, overlays/, regions/ or clusters/).
"""
from __future__ import annotations

import json
from typing import Iterable

from ..errors import Finding, Severity, SourceRef
from ..relabel.engine import apply, rule_from_mapping
from ..render.alloy import platform_jobs
from ..render.templates import label_name
from ..render.wiring import wired_values
from . import CheckContext

NAME = "alloy-only"
DESCRIPTION = "no vmagent scrape job keeps the pods of an Alloy-only platform job (node-exporter)"
ORDER = 62
SCOPE = "cluster"
_POD_ROLES = ("pod",)
_SERVICE_ROLES = ("endpointslice", "endpoints", "service")


def worst_case_targets(job: dict) -> dict[str, dict[str, str]]:
    """SD role → a target of the job's pods as that role discovers them."""
    key, value = label_name(job["podLabel"]["name"]), job["podLabel"]["value"]
    pod = {"__address__": "10.0.0.7:9100", "__meta_kubernetes_namespace": job["namespaces"][0],
           "__meta_kubernetes_pod_name": f"{job['job']}-abcde", "__meta_kubernetes_pod_ip": "10.0.0.7",
           f"__meta_kubernetes_pod_label_{key}": value, f"__meta_kubernetes_pod_labelpresent_{key}": "true",
           "__meta_kubernetes_pod_annotation_prometheus_io_scrape": "true",
           "__meta_kubernetes_pod_container_port_name": job["port"]}
    service = {**pod, f"__meta_kubernetes_service_label_{key}": value,
               "__meta_kubernetes_service_annotation_prometheus_io_scrape": "true",
               "__meta_kubernetes_endpointslice_port_name": job["port"],
               "__meta_kubernetes_endpoint_port_name": job["port"]}
    return {**{r: pod for r in _POD_ROLES}, **{r: service for r in _SERVICE_ROLES}}


def keeping_jobs(scrape_configs: list, job: dict) -> list[tuple[int, str]]:
    """(index, job_name) of the scrape configs that keep a target of `job`'s pods; computed once
    per distinct (scrape configs, job): a thousand clusters share a handful of merged configs."""
    key = json.dumps([[(s.get("job_name"), s.get("relabel_configs"), s.get("kubernetes_sd_configs"))
                       for s in scrape_configs], job], sort_keys=True, default=str)
    found = _KEEPING.get(key)
    if found is None:
        found = _KEEPING[key] = list(_keeping_jobs(scrape_configs, job))
    return found


_KEEPING: dict[str, list[tuple[int, str]]] = {}


def _keeping_jobs(scrape_configs: list, job: dict) -> Iterable[tuple[int, str]]:
    targets = worst_case_targets(job)
    for index, scrape in enumerate(scrape_configs):
        rules = [rule_from_mapping(r, flavor="vmagent") for r in scrape.get("relabel_configs") or []]
        for sd in scrape.get("kubernetes_sd_configs") or []:
            names = (sd.get("namespaces") or {}).get("names")
            if sd.get("role") not in targets or (names and not set(names) & set(job["namespaces"])):
                continue
            if apply(rules, targets[sd["role"]], "vmagent") is not None:
                yield index, str(scrape.get("job_name"))
                break


def check(ctx: CheckContext) -> Iterable[Finding]:
    only = [j for j in platform_jobs(ctx.root) if j.get("alloyOnly")]
    reported: set[tuple] = set()
    for cid, cluster in sorted(ctx.fleet.clusters.items()):
        component = cluster.components.get("vmagent")
        if component is None or not only:
            continue
        scrape_configs = (wired_values(ctx, cluster, component).get("config") or {}).get("scrape_configs") or []
        for job in only:
            for index, name in keeping_jobs(scrape_configs, job):
                source = (component.source_of("values", "config", "scrape_configs", index)
                          or SourceRef(cluster.source))
                if (source, job["job"]) in reported:
                    continue
                reported.add((source, job["job"]))
                yield Finding(NAME, Severity.ERROR, source,
                              f"vmagent job {name!r} (cluster {cid}) scrapes {job['job']}'s pods, which only Alloy may scrape",
                              f"exclude them (namespace {job['namespaces'][0]}, {job['podLabel']['name']}="
                              f"{job['podLabel']['value']}) from this job")
