"""`relabel-vs-rules`: a relabel rule that removes a label a recording rule or alert reads is an
error at the relabel rule's source line, naming the rules that break; in every report format."""
from __future__ import annotations

from pathlib import Path

import pytest

from _lintrun import FORMATS, assert_errors_at, check_findings
from fleet import model
from fleet.checks import relabel_vs_rules
from fleet.rules import promql

VALUES = "base/components/vmagent/values.yaml"
CUSTOMER = "base/relabel/customer.yaml"
PLATFORM = "base/relabel/platform.yaml"
KSM_METRIC_RELABEL = """        - source_labels: [__meta_kubernetes_endpointslice_port_name]
          regex: http
          action: keep
      metric_relabel_configs:
"""
KSM_DROP_NAMESPACE = KSM_METRIC_RELABEL + """        - action: labeldrop
          regex: namespace
"""


def _line_of(path: Path, text: str, after: int = 0) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line and i > after)


def _drop_namespace_on_ksm(root: Path) -> int:
    """A labeldrop of `namespace` in the KSM scrape job's metric_relabel_configs; its line."""
    values = root / VALUES
    text = values.read_text()
    assert text.count(KSM_METRIC_RELABEL) == 1
    values.write_text(text.replace(KSM_METRIC_RELABEL, KSM_DROP_NAMESPACE))
    return _line_of(values, "- action: labeldrop", _line_of(values, "job_name: kube-state-metrics"))


def test_shipped_fleet_is_clean(repo_root: Path) -> None:
    assert check_findings(repo_root, relabel_vs_rules, rendered=True) == []


def test_labeldrop_of_namespace_on_ksm_breaks_the_rules_grouped_by_namespace(fleet_copy: Path) -> None:
    line = _drop_namespace_on_ksm(fleet_copy)
    (found,) = check_findings(fleet_copy, relabel_vs_rules)
    assert (found.source.file, found.source.line, found.severity.value) == (VALUES, line, "error")
    assert found.details["label"] == "namespace"
    rules = found.details["rules"]
    identity = fleet_copy / "base/rules/recording/00-identity.yaml"
    assert rules["record 'project_service_pod:kube_pod_labels:max'"] == \
        f"base/rules/recording/00-identity.yaml:{_line_of(identity, 'record: project_service_pod:kube_pod_labels:max')}"
    assert set(rules) == {"record 'project_service_pod:kube_pod_labels:max'",
                          "record 'project_service:kube_service_labels:max'",
                          "record 'project_service:kube_pod_container_status_restarts:increase1h'"}
    # only the KSM job: cAdvisor's series still carry namespace
    assert all('job="kube-state-metrics"' in s for s in found.details["series"])
    assert "nyc3-prod-01" in found.details["in"]


def test_renaming_pod_is_found_at_the_rule_that_drops_it(fleet_copy: Path) -> None:
    customer = fleet_copy / CUSTOMER
    customer.write_text(customer.read_text() + "- source_labels: [pod]\n  target_label: pod_name\n"
                                               "- action: labeldrop\n  regex: pod\n")
    (found,) = check_findings(fleet_copy, relabel_vs_rules)
    assert (found.source.file, found.source.line) == (CUSTOMER, _line_of(customer, "regex: pod") - 1)
    assert "'pod_name': a rename" in found.message
    assert {"record 'project_service_pod:kube_pod_labels:max'",
            "record 'project_service:container_cpu_usage_seconds:rate5m'"} <= set(found.details["rules"])
    assert {'container_cpu_usage_seconds_total{job="kubelet-cadvisor"}',
            'kube_pod_labels{job="kube-state-metrics"}'} <= set(found.details["series"])


def test_a_label_the_rules_do_not_read_may_go(fleet_copy: Path) -> None:
    customer = fleet_copy / CUSTOMER
    customer.write_text(customer.read_text() + "- action: labeldrop\n  regex: container_label_.+|uid\n")
    assert check_findings(fleet_copy, relabel_vs_rules) == []


def test_a_keep_on_another_job_is_no_finding_for_this_one(fleet_copy: Path) -> None:
    """A replace that empties `pod` only for job customer-pods leaves cAdvisor's and KSM's pod."""
    customer = fleet_copy / CUSTOMER
    customer.write_text(customer.read_text() + "- source_labels: [job]\n  regex: customer-pods\n"
                                               "  target_label: pod\n  replacement: ''\n")
    assert check_findings(fleet_copy, relabel_vs_rules) == []


def test_platform_alert_label_dropped_by_the_gdpr_gate(fleet_copy: Path) -> None:
    """ShuttleInformerStale groups by `resource`: the gate dropping it breaks the alert; dropping
    `cluster_id` there does not (Alloy adds external labels after the relabel stage)."""
    platform = fleet_copy / PLATFORM
    platform.write_text(platform.read_text() + "- action: labeldrop\n  regex: resource|cluster_id\n")
    (found,) = check_findings(fleet_copy, relabel_vs_rules)
    assert (found.source.file, found.source.line) == (PLATFORM, _line_of(platform, "regex: resource|cluster_id") - 1)
    assert found.details["label"] == "resource"
    assert "alert 'ShuttleInformerStale'" in found.details["rules"]


def test_input_label_uses_follow_labels_to_their_selectors() -> None:
    expr = promql.parse(
        'sum by (ns) (label_replace(a{job="x"}, "ns", "$1", "namespace", "(.+)")'
        ' * on (pod) group_left (owner) b) + sum without (le) (c)')
    uses = {(u.label, u.selector.name) for u in promql.input_label_uses(expr)}
    assert ("namespace", "a") in uses and ("ns", "a") not in uses      # written, not read
    assert ("pod", "a") in uses and ("pod", "b") in uses                 # on() reads both sides
    assert ("owner", "b") in uses and ("owner", "a") not in uses         # group_left copies from b
    assert not any(name == "c" and label != "__name__" for label, name in uses)  # without: nothing needed


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_names_the_relabel_rule(fleet_copy: Path, fmt: str) -> None:
    line = _drop_namespace_on_ksm(fleet_copy)
    assert_errors_at(fleet_copy, relabel_vs_rules, fmt, {(VALUES, line)})


def test_the_real_vmagent_confirms_the_label_is_gone(fleet_copy: Path) -> None:
    """The KSM pipeline the check analyses, run by the pinned vmagent: `namespace` arrives with
    the shipped rules and is gone with the fixture's labeldrop."""
    from _binaries import require_binary
    from differential import run_vmagent
    from fleet.relabel.survival import vmagent_pipelines

    binaries = {"vmagent_bin": require_binary("vmagent"), "victoria_metrics_bin": require_binary("victoria-metrics")}
    shipped = model.load(fleet_copy).clusters["nyc3-prod-01"]
    _drop_namespace_on_ksm(fleet_copy)
    changed = model.load(fleet_copy).clusters["nyc3-prod-01"]

    def ksm_rules(cluster) -> list[dict]:
        (series,) = [p for p in vmagent_pipelines(cluster)["kube-state-metrics"] if not p.report]
        return [rule.to_mapping() for rule, _ in series.flat]

    sample = {"__name__": "kube_pod_labels", "job": "kube-state-metrics", "namespace": "shop", "pod": "web-0",
              "label_starform_io_project_id": "p1"}
    before, after = run_vmagent([ksm_rules(shipped), ksm_rules(changed)], [sample], **binaries)
    assert [s.get("namespace") for s in before] == ["shop"]
    assert after and all("namespace" not in s and s.get("pod") == "web-0" for s in after)


def test_regional_gate_dropping_instance_breaks_the_store_alerts(fleet_copy: Path) -> None:
    """The droplets' Alloy (rendered/regions/*/alloy/*.alloy) feeds the regional alerts: a labeldrop
    of `instance` in base/relabel/regional.yaml breaks the `unless on (instance)` companions."""
    regional = fleet_copy / "base/relabel/regional.yaml"
    regional.write_text(regional.read_text() + "- action: labeldrop\n  regex: instance\n")
    (found,) = check_findings(fleet_copy, relabel_vs_rules)
    assert (found.source.file, found.source.line) == ("base/relabel/regional.yaml",
                                                      _line_of(regional, "regex: instance") - 1)
    assert {"alert 'ClickHouseTargetMissing'", "alert 'VictoriaMetricsTargetMissing'"} <= set(found.details["rules"])
    assert all(rule.startswith("alert ") for rule in found.details["rules"])


def test_a_label_written_again_later_is_carried(fleet_copy: Path) -> None:
    customer = fleet_copy / CUSTOMER
    customer.write_text(customer.read_text() + "- action: labeldrop\n  regex: namespace\n"
                                               "- target_label: namespace\n  replacement: flattened\n")
    assert check_findings(fleet_copy, relabel_vs_rules) == []


def test_a_removal_keyed_on_the_series_name(fleet_copy: Path) -> None:
    """A replace that empties `pod` for kube_pod_labels only: found for that series, not for cAdvisor's."""
    customer = fleet_copy / CUSTOMER
    customer.write_text(customer.read_text() + "- source_labels: [__name__]\n  regex: kube_pod_labels\n"
                                               "  target_label: pod\n  replacement: ''\n")
    (found,) = check_findings(fleet_copy, relabel_vs_rules)
    assert (found.source.file, found.source.line) == (CUSTOMER, _line_of(customer, "regex: kube_pod_labels") - 1)
    assert found.details["series"] == ['kube_pod_labels{job="kube-state-metrics"}']
    assert set(found.details["rules"]) == {"record 'project_service_pod:kube_pod_labels:max'"}
