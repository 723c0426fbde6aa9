"""Node metrics: node-exporter is installed on every cluster, scraped by Alloy only.

The pod and service labels below are what prometheus-node-exporter 4.56.1 puts on its objects
with our values (chart defaults for names, port and annotations, read from the pinned chart's
values.yaml), so a chart bump that renames them, or a vmagent job that starts selecting them,
fails here.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from fleet import yamlio
from fleet.alloy import graph as alloy_graph
from fleet.alloy import syntax
from fleet.relabel import policy as pol
from fleet.relabel.engine import apply, rule_from_mapping
from fleet.relabel.pipeline import paths_for_file
from fleet.relabel.proof import run_concrete, run_target, scraped_series
from fleet.render.templates import label_name

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FLEET_SHARED", ROOT.parent / "shared"))
CLUSTERS = sorted(p.parent.name for p in (ROOT / "clusters").glob("*/cluster.yaml"))
COMPONENT = yamlio.plain(yamlio.load_file(ROOT / "base/components/node-exporter/component.yaml"))
JOBS = {j["job"]: j for j in yamlio.plain(yamlio.load_file(ROOT / "base/components/alloy/platform-jobs.yaml"))}


def _chart_defaults() -> dict:
    chart = COMPONENT["chart"]
    path = SHARED / "charts" / chart["name"] / chart["version"] / "values.yaml"
    if not path.is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"pinned chart defaults missing: {path}")
        pytest.skip(f"pinned chart defaults not available: {path}")
    return yamlio.plain(yamlio.load_file(path))


def _meta(prefix: str, kind: str, mapping: dict) -> dict[str, str]:
    return {f"__meta_kubernetes_{prefix}_{kind}_{label_name(k)}": str(v) for k, v in mapping.items()}


def _node_exporter_targets(defaults: dict) -> dict[str, dict[str, str]]:
    """SD role → the node-exporter target that role discovers (hostNetwork: the node's IP)."""
    labels = {"app.kubernetes.io/name": "prometheus-node-exporter", "app.kubernetes.io/instance": "node-exporter",
              "app.kubernetes.io/component": "metrics", "app.kubernetes.io/part-of": "prometheus-node-exporter"}
    port = defaults["service"]["portName"]
    common = {"__address__": "10.110.0.7:9100", "__meta_kubernetes_namespace": COMPONENT["namespace"],
              "__meta_kubernetes_pod_name": "node-exporter-prometheus-node-exporter-abcde",
              "__meta_kubernetes_pod_ip": "10.110.0.7"}
    pod = {**common, **_meta("pod", "label", labels), **_meta("pod", "annotation", defaults["podAnnotations"]),
           "__meta_kubernetes_pod_container_port_name": port}
    service = {**pod, **_meta("service", "label", labels),
               **_meta("service", "annotation", defaults["service"]["annotations"]),
               "__meta_kubernetes_endpointslice_port_name": port, "__meta_kubernetes_endpoint_port_name": port}
    return {"pod": pod, "endpointslice": service, "endpoints": service, "service": service}


def test_every_cluster_installs_the_pinned_chart_with_alloy() -> None:
    for cid in CLUSTERS:
        stage = ROOT / f"rendered/clusters/{cid}/stages/03-telemetry"
        docs = list(yaml.safe_load_all((stage / "node-exporter.yaml").read_text()))
        release = next(d for d in docs if d["kind"] == "HelmRelease")
        assert release["metadata"]["namespace"] == "kube-system"
        assert release["spec"]["chart"]["spec"]["chart"] == "prometheus-node-exporter"
        assert release["spec"]["chart"]["spec"]["version"] == "4.56.1"
        assert release["spec"]["values"]["image"]["tag"] == "v1.12.1"
        assert "node-exporter.yaml" in yamlio.plain(yamlio.load_file(stage / "kustomization.yaml"))["resources"]


def test_alloy_job_selects_what_the_chart_runs() -> None:
    """The Alloy job's namespace, pod label and port name are the chart's (a rename breaks the scrape)."""
    defaults = _chart_defaults()
    job = JOBS["node-exporter"]
    assert COMPONENT["namespace"] in job["namespaces"]
    assert job["podLabel"] == {"name": "app.kubernetes.io/name", "value": COMPONENT["chart"]["name"]}
    assert job["port"] == defaults["service"]["portName"]
    assert not defaults["nameOverride"]


@pytest.mark.parametrize("cid", CLUSTERS)
def test_vmagent_never_scrapes_node_exporter(cid: str) -> None:
    """Every vmagent scrape job whose discovery could see the exporter's pods drops them."""
    targets = _node_exporter_targets(_chart_defaults())
    docs = yaml.safe_load_all((ROOT / f"rendered/clusters/{cid}/stages/03-telemetry/vmagent.yaml").read_text())
    values = next(d for d in docs if d["kind"] == "HelmRelease")["spec"]["values"]
    checked = 0
    for job in values["config"]["scrape_configs"]:
        rules = [rule_from_mapping(r, flavor="vmagent") for r in job.get("relabel_configs") or []]
        for sd in job.get("kubernetes_sd_configs") or []:
            names = (sd.get("namespaces") or {}).get("names")
            if sd["role"] not in targets or (names and COMPONENT["namespace"] not in names):
                continue
            checked += 1
            kept = apply(rules, targets[sd["role"]], "vmagent")
            assert kept is None, f"vmagent job {job['job_name']} scrapes node-exporter: {kept}"
    assert checked, "no vmagent job discovers kube-system pods: the test would prove nothing"


def test_a_vmagent_job_that_selects_the_exporter_is_caught() -> None:
    """The failing case: a job keeping on the service's prometheus.io/scrape annotation sees it."""
    targets = _node_exporter_targets(_chart_defaults())
    rules = [rule_from_mapping({"source_labels": ["__meta_kubernetes_service_annotation_prometheus_io_scrape"],
                                "regex": "true", "action": "keep"}, flavor="vmagent")]
    assert apply(rules, targets["endpointslice"], "vmagent") is not None


def _node_exporter_path(config: Path):
    policy = pol.load_policy(ROOT / "policies/gdpr-labeldrop.yaml")
    graph = alloy_graph.build_graph(syntax.parse(config.read_text(), config.name), config.name)
    for path in paths_for_file(config, config.name, policy):
        if alloy_graph.scrape_job(graph, path.description.split(" → ")[0]).job_name == "node-exporter":
            return path
    raise AssertionError(f"{config}: no node-exporter scrape")


@pytest.mark.parametrize("cid", CLUSTERS)
def test_node_series_reach_grafana_cloud_without_customer_labels(cid: str) -> None:
    config = ROOT / f"rendered/clusters/{cid}/stages/03-telemetry/config.alloy"
    path = _node_exporter_path(config)
    job = JOBS["node-exporter"]
    target = {"__address__": "10.110.0.7:9100", "__meta_kubernetes_namespace": job["namespaces"][0],
              f"__meta_kubernetes_pod_label_{label_name(job['podLabel']['name'])}": job["podLabel"]["value"],
              "__meta_kubernetes_pod_container_port_name": job["port"],
              "__meta_kubernetes_pod_name": "node-exporter-prometheus-node-exporter-abcde"}
    chain = next(c for c in path.pipeline.targets if run_target(c, target) is not None)
    labels = run_target(chain, target) | {"job": "node-exporter"}
    node = run_concrete(path.pipeline, scraped_series(
        chain, labels, {"__name__": "node_filesystem_avail_bytes", "mountpoint": "/", "device": "/dev/vda1"}))
    assert node is not None and node["job"] == "node-exporter" and node["mountpoint"] == "/"
    assert node["cluster_id"] == cid
    # A customer id smuggled onto a node series (textfile collector, a pod label copied by a
    # future rule) never leaves: the series goes, the identifiers stay behind.
    customer = run_concrete(path.pipeline, scraped_series(
        chain, labels, {"__name__": "node_textfile_scrape_error", "project_id": "p-1",
                        "label_starform_io_workspace_id": "w-1", "namespace": "p-1"}))
    assert customer is not None
    assert not {"project_id", "label_starform_io_workspace_id", "exported_namespace"} & set(customer)
    assert customer["namespace"] == "kube-system"
