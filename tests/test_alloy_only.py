"""`alloy-only`: a vmagent scrape job that keeps node-exporter's pods fails at the line that set it."""
from __future__ import annotations

from pathlib import Path

from fleet import model
from fleet.checks import CheckContext, alloy_only


def _findings(root: Path):
    return list(alloy_only.check(CheckContext(root=root, fleet=model.load(root), rendered=root / "rendered")))


def _line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_shipped_vmagent_jobs_leave_node_exporter_to_alloy(repo_root: Path) -> None:
    assert _findings(repo_root) == []


def _add_job(root: Path, job: str) -> Path:
    values = root / "base/components/vmagent/values.yaml"
    text = values.read_text()
    anchor = "  scrape_configs:\n"
    assert anchor in text
    values.write_text(text.replace(anchor, anchor + job, 1))
    return values


#: A vmagent scrape job that keeps node-exporter's pods (an alloyOnly job): the failing seed.
NODE_METRICS_JOB = """    - job_name: node-metrics
      kubernetes_sd_configs:
        - role: pod
          namespaces:
            names: [kube-system]
      relabel_configs:
        - source_labels: [__meta_kubernetes_pod_label_app_kubernetes_io_name]
          regex: prometheus-node-exporter
          action: keep
"""


def test_a_job_selecting_node_exporter_pods_fails_at_its_line(fleet_copy: Path) -> None:
    values = _add_job(fleet_copy, NODE_METRICS_JOB)
    found = _findings(fleet_copy)
    assert found and {(f.source.file, f.source.line) for f in found} == {
        ("base/components/vmagent/values.yaml", _line_of(values, "- job_name: node-metrics"))}
    assert "'node-metrics'" in found[0].message and "node-exporter" in found[0].message


def test_an_annotation_driven_service_job_is_caught_too(fleet_copy: Path) -> None:
    """The chart annotates its Service prometheus.io/scrape: "true": a classic endpoints job keeps it."""
    values = _add_job(fleet_copy, """    - job_name: annotated-services
      kubernetes_sd_configs:
        - role: endpointslice
      relabel_configs:
        - source_labels: [__meta_kubernetes_service_annotation_prometheus_io_scrape]
          regex: "true"
          action: keep
""")
    (f,) = _findings(fleet_copy)
    assert (f.source.file, f.source.line) == ("base/components/vmagent/values.yaml",
                                              _line_of(values, "- job_name: annotated-services"))


def test_a_job_excluding_kube_system_passes(fleet_copy: Path) -> None:
    _add_job(fleet_copy, """    - job_name: annotated-services
      kubernetes_sd_configs:
        - role: endpointslice
      relabel_configs:
        - source_labels: [__meta_kubernetes_service_annotation_prometheus_io_scrape]
          regex: "true"
          action: keep
        - source_labels: [__meta_kubernetes_namespace]
          regex: kube-system
          action: drop
""")
    assert _findings(fleet_copy) == []
