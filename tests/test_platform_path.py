"""Every platform scrape job of the rendered config.alloy reaches Grafana Cloud, as its own job.

The GDPR gate keeps only allowlisted jobs, so a job label that is not what the scrape's
job_name says (an exporter's target carries job="integrations/<name>", which job_name does
not override) silently drops that job's series. Representative targets are run through each
scrape's target relabeling, the scrape, the gate and the remote write's external labels.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from fleet import yamlio
from fleet.alloy import graph as alloy_graph
from fleet.alloy import syntax
from fleet.relabel import policy as pol
from fleet.relabel.pipeline import paths_for_file
from fleet.relabel.proof import run_concrete, run_target, scraped_series
from fleet.render.templates import label_name

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "rendered/clusters").glob("*/stages/03-telemetry/config.alloy"))


def _environment(cluster_id: str) -> str:
    return yamlio.plain(yamlio.load_file(ROOT / f"clusters/{cluster_id}/cluster.yaml"))["environment"]


def _profile(cluster_id: str) -> str:
    doc = yamlio.plain(yamlio.load_file(ROOT / f"clusters/{cluster_id}/cluster.yaml"))
    return doc.get("profile", "customer")


def _targets(profile: str) -> dict[str, tuple[str, dict[str, str]]]:
    """job → (the discovery component kind, a target as it emits it) for a cluster of `profile`."""
    jobs = yamlio.plain(yamlio.load_file(ROOT / "base/components/alloy/platform-jobs.yaml"))
    out = {}
    for job in jobs:
        if job.get("profile", profile) != profile:
            continue
        out[job["job"]] = ("discovery.kubernetes", {
            "__address__": "10.0.0.5:9090",
            "__meta_kubernetes_namespace": job["namespaces"][0],
            f"__meta_kubernetes_pod_label_{label_name(job['podLabel']['name'])}": job["podLabel"]["value"],
            "__meta_kubernetes_pod_container_port_name": job["port"],
            "__meta_kubernetes_pod_name": f"{job['job']}-0",
        })
    out["alloy"] = ("prometheus.exporter.self", {"__address__": "127.0.0.1:12345", "__scheme__": "http",
                    "instance": "alloy-0", "job": "integrations/self"})
    if profile == "control-plane":
        # Alloy's embedded exporters name their targets integrations/<exporter>.
        out["postgres"] = ("prometheus.exporter.postgres", {
            "__address__": "127.0.0.1:12345", "instance": "postgresql://db.example:25060/defaultdb",
            "job": "integrations/postgres"})
        out["do-loadbalancer"] = ("prometheus.exporter.blackbox", {
            "__address__": "127.0.0.1:12345", "__param_target": "https://edge.nyc3-staging-01.starform.cloud/healthz",
            "job": "integrations/blackbox/nyc3-staging-01", "environment": "staging"})
    return out


@pytest.mark.parametrize("config", CONFIGS, ids=[c.parts[-4] for c in CONFIGS])
def test_every_platform_job_reaches_grafana_cloud_as_itself(config: Path) -> None:
    policy = pol.load_policy(ROOT / "policies/gdpr-labeldrop.yaml")
    graph = alloy_graph.build_graph(syntax.parse(config.read_text(), config.name), config.name)
    cluster_id = config.parts[-4]
    reached: dict[str, dict] = {}
    for path in paths_for_file(config, config.name, policy):
        assert path.external
        scrape = path.description.split(" → ")[0]
        job = alloy_graph.scrape_job(graph, scrape)
        job_name = job.job_name
        roots = {graph.components[c].kind for c in job.target_sources if not graph.target_sources(c)}
        for target_job, (root, target) in _targets(_profile(cluster_id)).items():
            if roots != {root}:
                continue  # a scrape only sees what its own discovery emits
            for chain in path.pipeline.targets:
                labels = run_target(chain, target)
                if labels is None:
                    continue
                labels.setdefault("job", job_name)  # the scrape fills a missing job from job_name
                out = run_concrete(path.pipeline, scraped_series(chain, labels, {"__name__": "up"}))
                assert out is not None, f"{scrape}: up from a {target_job} target is dropped before Grafana Cloud"
                assert target_job == job_name == out["job"], (scrape, target_job, out)
                assert out["cluster_id"] == cluster_id
                # the severity of every alert derives from it: the cluster's own, or a probed one's
                assert out["environment"] == target.get("environment", _environment(cluster_id))
                assert out["cluster_profile"] == _profile(cluster_id)
                reached[job_name] = out
    assert sorted(reached) == sorted(_targets(_profile(cluster_id))), "every platform job is scraped by exactly its own scrape"
    assert set(reached) <= set(policy.job_allow)
