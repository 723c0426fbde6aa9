"""Hygiene checks: pinned versions, container resources, drainable disruption budgets."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from fleet import model
from fleet.checks import CheckContext, disruption_budgets, pinned_versions, resources
from fleet.checks._workloads import disruptable
from fleet.cli import cli

from conftest import patch_components, require_shared

CLUSTER = "clusters/nyc3-prod-01/cluster.yaml"
CHECKS = {"resources": resources, "disruption-budgets": disruption_budgets, "pinned-versions": pinned_versions}


def _line(lines: list[str], key: str) -> int:
    hits = [i + 1 for i, line in enumerate(lines) if line.strip().startswith(f"{key}:")]
    assert len(hits) == 1, (key, hits)
    return hits[0]


def _findings(root: Path, check: str) -> list:
    ctx = CheckContext(root=root, fleet=model.load(root), rendered=root / "rendered",
                       options={"charts": require_shared("charts")})
    return list(CHECKS[check].check(ctx))


@pytest.mark.parametrize("check", sorted(CHECKS))
def test_shipped_fleet_passes(repo_root: Path, check: str) -> None:
    assert _findings(repo_root, check) == []


# case → (check, cluster patch, key whose line the finding names, text in the message)
FAILING = {
    "hot-reload-sidecar-without-resources": (
        "resources", {"fluent-bit": {"values": {"hotReload": {"enabled": True}}}},
        "hotReload", "container hot-reload (values.hotReload.resources) lacks requests.cpu, requests.memory, limits.memory"),
    "agent-memory-limit-emptied": (
        "resources", {"vmagent": {"values": {"resources": {"limits": {"memory": ""}}}}},
        "memory", "container vmagent (values.resources) lacks limits.memory"),
    "pdb-equal-to-replicas": (
        "disruption-budgets", {"metrics-server": {"values": {"podDisruptionBudget": {"minAvailable": 2}}}},
        "minAvailable", "allows no eviction of 2 replicas"),
    "gateway-percentage-pdb-renders-none": (
        "disruption-budgets", {"envoy-gateway": {"values": {"podDisruptionBudget": {"minAvailable": "50%"}}}},
        "minAvailable", "renders no PodDisruptionBudget"),
    "ksm-scaled-without-pdb": (
        "disruption-budgets", {"kube-state-metrics": {"values": {"replicas": 3, "podDisruptionBudget": None}}},
        "replicas", "3 replicas (values.replicas) but the chart renders no PodDisruptionBudget"),
    "chart-version-range": (
        "pinned-versions", {"alloy": {"chart": {"version": "^1.11.0"}}},
        "version", "chart version '^1.11.0' is not one exact SemVer version"),
    "image-tag-latest": (
        "pinned-versions", {"alloy": {"values": {"image": {"tag": "latest"}}}},
        "tag", "values.image: tag 'latest' moves"),
    "image-tag-minor-line": (
        "pinned-versions", {"vmagent": {"values": {"image": {"tag": "v1.150"}}}},
        "tag", "tag 'v1.150' is a major/minor line"),
    "enabled-sidecar-image-floats": (
        "pinned-versions", {"fluent-bit": {"values": {"hotReload": {"enabled": True, "image": {"tag": "edge"}}}}},
        "tag", "values.hotReload.image: tag 'edge' moves"),
}


@pytest.mark.parametrize("case", sorted(FAILING))
def test_failing_fixture_is_reported_at_its_source_line(fleet_copy: Path, case: str) -> None:
    check, patch, key, message = FAILING[case]
    lines = patch_components(fleet_copy, CLUSTER, patch)
    found = [f for f in _findings(fleet_copy, check) if message in f.message]
    assert len(found) == 1, _findings(fleet_copy, check)
    assert (found[0].source.file, found[0].source.line) == (CLUSTER, _line(lines, key))
    assert "nyc3-prod-01" in found[0].message


def test_untagged_manifests_image_is_reported_at_the_component_line(fleet_copy: Path) -> None:
    """A manifests component's string image (Shuttle's, which no cluster may patch) without a tag
    pulls latest: found at the component.yaml line that names it."""
    rel = "base/components/shuttle/component.yaml"
    path = fleet_copy / rel
    text = path.read_text()
    tagged = next(line for line in text.splitlines() if line.startswith("image: "))
    path.write_text(text.replace(tagged, tagged.rsplit(":", 1)[0]))
    found = [f for f in _findings(fleet_copy, "pinned-versions") if "has no tag (pulls latest)" in f.message]
    assert len(found) == 1, _findings(fleet_copy, "pinned-versions")
    assert (found[0].source.file, found[0].source.line) == (rel, text.splitlines().index(tagged) + 1)


PASSING = {
    "hot-reload-with-resources": ("resources", {"fluent-bit": {"values": {"hotReload": {"enabled": True, "resources": {
        "requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}}}}}}),
    "pdb-below-replicas": ("disruption-budgets", {"metrics-server": {"values": {"replicas": 3, "podDisruptionBudget": {
        "minAvailable": 2}}}}),
    "single-replica-needs-no-pdb": ("disruption-budgets", {"metrics-server": {"values": {"replicas": 1,
                                                                                         "podDisruptionBudget": {"enabled": False}}}}),
    "vmagent-pdb-percentage": ("disruption-budgets", {"vmagent": {"values": {"replicaCount": 2, "podDisruptionBudget": {
        "enabled": True, "maxUnavailable": "50%"}}}}),
    "digest-pinned-latest": ("pinned-versions", {"alloy": {"values": {"image": {
        "tag": "latest", "digest": "sha256:" + "a" * 64}}}}),
    "disabled-sidecar-image-ignored": ("pinned-versions", {"kube-state-metrics": {"values": {"kubeRBACProxy": {
        "enabled": False, "image": {"tag": "latest"}}}}}),
}


@pytest.mark.parametrize("case", sorted(PASSING))
def test_passing_fixture_has_no_finding(fleet_copy: Path, case: str) -> None:
    check, patch = PASSING[case]
    patch_components(fleet_copy, CLUSTER, patch)
    assert _findings(fleet_copy, check) == []


def test_raw_manifest_container_without_limits_is_found_in_its_file(fleet_copy: Path) -> None:
    path = fleet_copy / "base/components/shuttle/manifests.yaml"
    text = path.read_text()
    assert "            limits:\n              memory: 256Mi\n" in text
    path.write_text(text.replace("            limits:\n              memory: 256Mi\n", ""))
    found = _findings(fleet_copy, "resources")
    assert len(found) == 1 and "Deployment shuttle container shuttle lacks resources limits.memory" in found[0].message
    line = path.read_text().splitlines()[found[0].source.line - 1]
    assert found[0].source.file == "base/components/shuttle/manifests.yaml" and line.strip() == "resources:"


def test_raw_manifest_deployment_scaled_without_pdb_is_found(fleet_copy: Path) -> None:
    path = fleet_copy / "base/components/shuttle/manifests.yaml"
    path.write_text(path.read_text().replace("spec:\n  replicas: 1\n", "spec:\n  replicas: 2\n"))
    found = _findings(fleet_copy, "disruption-budgets")
    assert len(found) == 1 and "has 2 replicas and no PodDisruptionBudget" in found[0].message
    assert path.read_text().splitlines()[found[0].source.line - 1].strip() == "replicas: 2"


@pytest.mark.parametrize("budget,replicas,evictable", [
    ({"minAvailable": 1}, 2, 1), ({"minAvailable": 2}, 2, 0), ({"minAvailable": "50%"}, 3, 1),
    ({"maxUnavailable": "30%"}, 2, 1), ({"maxUnavailable": 0}, 3, 0), ({"minAvailable": "100%"}, 4, 0)])
def test_disruptable_rounds_percentages_up(budget: dict, replicas: int, evictable: int) -> None:
    assert disruptable(budget, replicas) == evictable


def test_lint_fails_on_an_unpinned_image(fleet_copy: Path) -> None:
    lines = patch_components(fleet_copy, CLUSTER, {"alloy": {"values": {"image": {"tag": "latest"}}}})
    assert CliRunner().invoke(cli, ["render", "--root", str(fleet_copy)]).exit_code == 0
    result = CliRunner().invoke(cli, ["lint", "--root", str(fleet_copy), "--only", "pinned-versions"])
    assert result.exit_code == 1 and f"{CLUSTER}:{_line(lines, 'tag')}:" in result.output, result.output
