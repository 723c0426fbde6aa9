"""The Envoy data plane: rendered after Envoy Gateway's CRDs exist, valid against the real CRDs,
highly available, and scraped by the `envoy` job."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from fleet import model
from fleet.checks import CheckContext, flux_crds, gateway_dataplane
from fleet.cli import cli

from conftest import patch_components, require_shared

CLUSTER = "clusters/nyc3-prod-01/cluster.yaml"
STAGE = "rendered/clusters/nyc3-prod-01/stages/01-gateway"


def _line(lines: list[str], key: str) -> int:
    hits = [i + 1 for i, line in enumerate(lines) if line.strip().startswith(f"{key}:")]
    assert len(hits) == 1, (key, hits)
    return hits[0]


def _render(root: Path) -> None:
    result = CliRunner().invoke(cli, ["render", "--root", str(root)])
    assert result.exit_code == 0, result.output


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _crd_dirs() -> list[Path]:
    shared = require_shared("crds")
    return [shared / "flux", shared / "gateway" / "standard", shared / "envoy-gateway"]


def _dataplane_findings(root: Path) -> list:
    ctx = CheckContext(root=root, fleet=model.load(root), rendered=root / "rendered")
    return list(gateway_dataplane.check(ctx))


def test_dataplane_is_applied_by_its_own_step_after_the_gateway_releases(rendered_root: Path) -> None:
    stage = rendered_root / STAGE
    kinds = {d["kind"]: d for d in _docs(stage / "custom-resources" / "gateway-dataplane.yaml")}
    assert set(kinds) == {"GatewayClass", "EnvoyProxy", "Gateway", "ValidatingAdmissionPolicy",
                          "ValidatingAdmissionPolicyBinding"}   # the route policy: tests/test_route_policy.py
    assert "custom-resources" not in (stage / "kustomization.yaml").read_text()  # not in stage-01's own apply
    gateway_class, proxy, shared = kinds["GatewayClass"], kinds["EnvoyProxy"], kinds["Gateway"]
    assert gateway_class["spec"]["parametersRef"] == {"group": "gateway.envoyproxy.io", "kind": "EnvoyProxy",
                                                      "name": proxy["metadata"]["name"],
                                                      "namespace": proxy["metadata"]["namespace"]}
    assert shared["spec"]["gatewayClassName"] == gateway_class["metadata"]["name"]
    spread = proxy["spec"]["provider"]["kubernetes"]["envoyDeployment"]["pod"]["topologySpreadConstraints"]
    assert all(c["labelSelector"]["matchLabels"]["gateway.envoyproxy.io/owning-gateway-name"] == "starform"
               for c in spread)
    steps = {d["metadata"]["name"]: d["spec"] for d in _docs(rendered_root / "rendered/clusters/nyc3-prod-01/stages.yaml")}
    assert steps["stage-01-gateway-custom-resources"]["dependsOn"] == [{"name": "stage-01-gateway"}]
    assert steps["stage-01-gateway-custom-resources"]["path"].endswith("/stages/01-gateway/custom-resources")
    assert steps["stage-02-cluster-metrics"]["dependsOn"] == [{"name": "stage-01-gateway-custom-resources"}]


def test_gateway_api_crds_are_left_to_the_platform(rendered_root: Path) -> None:
    releases = {d["metadata"]["name"]: d for f in ("envoy-gateway.yaml", "envoy-gateway-crds.yaml")
                for d in _docs(rendered_root / STAGE / f) if d["kind"] == "HelmRelease"}
    assert releases["envoy-gateway"]["spec"]["values"]["crds"] == {"enabled": False}
    assert releases["envoy-gateway-crds"]["spec"]["values"]["crds"] == {
        "gatewayAPI": {"enabled": False}, "envoyGateway": {"enabled": True}}
    assert releases["envoy-gateway"]["spec"]["dependsOn"] == [{"name": "envoy-gateway-crds",
                                                               "namespace": "envoy-gateway-system"}]


def test_shipped_dataplane_validates_against_the_real_crds(rendered_root: Path) -> None:
    ctx = CheckContext(root=rendered_root, fleet=None, rendered=rendered_root / "rendered",
                       options={"crds": _crd_dirs()})
    assert list(flux_crds.check(ctx)) == []


def test_crd_violation_in_the_dataplane_is_found(fleet_copy: Path) -> None:
    # The EnvoyProxy CRD's CEL rule: only one of minAvailable or maxUnavailable.
    patch_components(fleet_copy, CLUSTER, {"gateway-dataplane": {"values": {"envoyProxy": {"envoyPDB": {"maxUnavailable": 1}}}}})
    _render(fleet_copy)
    ctx = CheckContext(root=fleet_copy, fleet=model.load(fleet_copy), rendered=fleet_copy / "rendered",
                       options={"crds": _crd_dirs()})
    found = [f for f in flux_crds.check(ctx) if "nyc3-prod-01" in f.source.file]
    assert len(found) == 1 and "only one of minAvailable or maxUnavailable" in found[0].message, found
    path = fleet_copy / found[0].source.file
    assert path.name == "gateway-dataplane.yaml"
    assert "envoyPDB:" in path.read_text().splitlines()[found[0].source.line - 1]


def test_experimental_only_field_fails_against_the_standard_channel(fleet_copy: Path) -> None:
    patch_components(fleet_copy, CLUSTER, {"gateway-dataplane": {"values": {"gateway": {"listeners": [
        {"name": "http", "protocol": "HTTP", "port": 80, "bogusField": True}]}}}})
    _render(fleet_copy)
    ctx = CheckContext(root=fleet_copy, fleet=model.load(fleet_copy), rendered=fleet_copy / "rendered",
                       options={"crds": _crd_dirs()})
    found = [f for f in flux_crds.check(ctx) if "nyc3-prod-01" in f.source.file]
    assert len(found) == 1 and "bogusField" in found[0].message, found


def test_without_their_crds_gateway_objects_are_a_warning(rendered_root: Path) -> None:
    ctx = CheckContext(root=rendered_root, fleet=None, rendered=rendered_root / "rendered",
                       options={"crds": [require_shared("crds") / "flux"]})
    found = list(flux_crds.check(ctx))
    assert sorted(f.message.split()[0] for f in found) == ["gateway.envoyproxy.io", "gateway.networking.k8s.io"]
    assert all(f.severity.value == "warning" for f in found)


def test_shipped_dataplane_meets_the_check(repo_root: Path) -> None:
    assert _dataplane_findings(repo_root) == []


HA = {
    "one-replica": ({"envoyProxy": {"envoyDeployment": {"replicas": 1}}}, "replicas", "must be an integer >= 2"),
    "pdb-blocks-drain": ({"envoyProxy": {"envoyPDB": {"minAvailable": 2}}}, "minAvailable", "below replicas (2)"),
    "no-spread": ({"envoyProxy": {"envoyDeployment": {"pod": {"topologySpreadConstraints": []}}}},
                  "topologySpreadConstraints", "spread the proxies"),
    "no-memory-limit": ({"envoyProxy": {"envoyDeployment": {"container": {"resources": {"limits": None}}}}},
                        "limits", "memory limit"),
}


@pytest.mark.parametrize("case", sorted(HA))
def test_dataplane_ha_problem_is_reported_at_its_line(fleet_copy: Path, case: str) -> None:
    patch, key, message = HA[case]
    lines = patch_components(fleet_copy, CLUSTER, {"gateway-dataplane": {"values": patch}})
    found = [f for f in _dataplane_findings(fleet_copy) if message in f.message]
    assert len(found) == 1, found
    if case != "no-memory-limit":
        assert (found[0].source.file, found[0].source.line) == (CLUSTER, _line(lines, key))
    else:  # removed by null: the finding names the resources block that lacks it
        assert found[0].source.file == "base/components/gateway-dataplane/values.yaml"


def test_envoy_job_that_misses_the_shared_gateway_is_found(fleet_copy: Path) -> None:
    patch_components(fleet_copy, CLUSTER, {"gateway-dataplane": {"values": {"gateway": {"name": "edge"}}}})
    found = _dataplane_findings(fleet_copy)
    assert len(found) == 1 and "drops the proxy pods of the shared Gateway" in found[0].message, found
    values = (fleet_copy / "base/components/vmagent/values.yaml").read_text().splitlines()
    assert found[0].source.file == "base/components/vmagent/values.yaml"
    assert values[found[0].source.line - 1].strip() == "- job_name: envoy"


def test_lint_fails_on_a_single_proxy(fleet_copy: Path) -> None:
    lines = patch_components(fleet_copy, CLUSTER, {"gateway-dataplane": {"values": {"envoyProxy": {"envoyDeployment": {"replicas": 1}}}}})
    _render(fleet_copy)
    result = CliRunner().invoke(cli, ["lint", "--root", str(fleet_copy), "--only", "gateway-dataplane"])
    assert result.exit_code == 1 and f"{CLUSTER}:{_line(lines, 'replicas')}:" in result.output, result.output


def test_custom_resources_folder_without_its_kustomization_is_an_orphan(fleet_copy: Path) -> None:
    from fleet.checks import flux_refs
    _render(fleet_copy)
    stages = fleet_copy / "rendered/clusters/nyc3-prod-01/stages.yaml"
    docs = stages.read_text().split("\n---\n")
    stages.write_text("\n---\n".join(d for d in docs if "name: stage-01-gateway-custom-resources" not in d))
    ctx = CheckContext(root=fleet_copy, fleet=model.load(fleet_copy), rendered=fleet_copy / "rendered")
    messages = [f.message for f in flux_refs.check(ctx)]
    assert any("stages/01-gateway/custom-resources is applied by no Flux Kustomization" in m for m in messages), messages
    assert any("stage-01-gateway-custom-resources is not rendered" in m for m in messages), messages


# --- settings that rename what the customer L7 figures are attributed by -------------------------

RENAMING = {
    "merge-backends": ({"mergeBackends": {}}, "mergeBackends", "cluster deduplication"),
    "merge-backends-selector": ({"mergeBackends": {"selector": {"matchLabels": {"tier": "web"}}}},
                                "mergeBackends", "cluster deduplication"),
    "cluster-stat-name": ({"telemetry": {"metrics": {"clusterStatName": "%BACKEND_REFS%"}}},
                          "clusterStatName", "renames every cluster's stats"),
    "cluster-stat-name-without-rule": ({"telemetry": {"metrics": {
        "clusterStatName": "%ROUTE_KIND%/%ROUTE_NAMESPACE%/%ROUTE_NAME%"}}}, "clusterStatName", "renames"),
    "merge-gateways": ({"mergeGateways": True}, "mergeGateways", "GatewayClass owner label"),
}


@pytest.mark.parametrize("case", sorted(RENAMING))
def test_renaming_setting_is_an_error_at_its_line(fleet_copy: Path, case: str) -> None:
    spec, key, message = RENAMING[case]
    lines = patch_components(fleet_copy, CLUSTER, {"envoy-gateway": {"values": {"config": {"envoyGateway": {
        "envoyProxy": spec}}}}})
    found = _dataplane_findings(fleet_copy)
    assert len(found) == 1 and message in found[0].message and "nyc3-prod-01" in found[0].message, found
    assert found[0].severity.value == "error"
    assert (found[0].source.file, found[0].source.line) == (CLUSTER, _line(lines, key))


@pytest.mark.parametrize("spec", [
    {"telemetry": {"metrics": {"clusterStatName": gateway_dataplane.DEFAULT_CLUSTER_STAT_NAME,
                               "enablePerEndpointStats": False}}},
    {"mergeGateways": False},
    {"logging": {"level": {"default": "warn"}}},
])
def test_settings_that_keep_the_cluster_names_pass(fleet_copy: Path, spec: dict) -> None:
    patch_components(fleet_copy, CLUSTER, {"envoy-gateway": {"values": {"config": {"envoyGateway": {"envoyProxy": spec}}}}})
    assert _dataplane_findings(fleet_copy) == []


def test_default_cluster_stat_name_is_envoy_gateways(repo_root: Path) -> None:
    """The name the recording rules parse is the CRD's documented default, not a guess."""
    crd = yaml.safe_load((require_shared("crds") / "envoy-gateway/gateway.envoyproxy.io_envoyproxies.yaml").read_text())
    (version,) = crd["spec"]["versions"]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    described = spec["telemetry"]["properties"]["metrics"]["properties"]["clusterStatName"]["description"]
    assert f"Default: `{gateway_dataplane.DEFAULT_CLUSTER_STAT_NAME}`" in described
    assert "mergeBackends" in spec and "mergeGateways" in spec
