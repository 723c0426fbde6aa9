"""`crd-order`: a custom resource applied before (or without) its CRD is an error at the line of
its component that decides where it goes, naming the rendered object; in every report format."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from _lintrun import FORMATS, assert_errors_at, check_findings
from conftest import require_shared
from fleet import model
from fleet.checks import crd_order
from fleet.k8s import crd_providers

DATAPLANE = "base/components/gateway-dataplane/component.yaml"
CRDS = "base/components/envoy-gateway-crds"


def _edit(path: Path, old: str, new: str) -> int:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if new.splitlines()[0] in line)


def test_shipped_fleet_is_clean(repo_root: Path) -> None:
    assert check_findings(repo_root, crd_order, rendered=True) == []


def test_custom_resource_beside_the_release_that_installs_its_crd(fleet_copy: Path) -> None:
    line = _edit(fleet_copy / DATAPLANE, "afterReleases: true", "afterReleases: false")
    (found,) = check_findings(fleet_copy, crd_order)
    assert (found.source.file, found.source.line, found.severity.value) == (DATAPLANE, line, "error")
    assert found.message.startswith("EnvoyProxy envoy-gateway-system/starform-envoy: EnvoyProxy (gateway.envoyproxy.io), "
                                    "applied by Kustomization stage-01-gateway, has its CRD installed by a HelmRelease "
                                    "of the same Kustomization")
    assert "rendered/clusters/nyc3-prod-01/stages/01-gateway/gateway-dataplane.yaml:" in " ".join(found.details["rendered"])
    assert len(found.details["clusters"]) == len(model.load(fleet_copy).clusters)


def test_crd_installed_by_a_later_stage(fleet_copy: Path) -> None:
    _edit(fleet_copy / CRDS / "component.yaml", "stage: gateway", "stage: telemetry")
    line = next(i for i, t in enumerate((fleet_copy / DATAPLANE).read_text().splitlines(), 1) if t.startswith("stage:"))
    (found,) = check_findings(fleet_copy, crd_order)
    assert (found.source.file, found.source.line) == (DATAPLANE, line)
    assert "installed by stage-03-telemetry, which stage-01-gateway-custom-resources does not depend on" in found.message


def test_crd_installed_by_nobody(fleet_copy: Path) -> None:
    values = fleet_copy / CRDS / "values.yaml"
    _edit(values, "  envoyGateway:\n    enabled: true", "  envoyGateway:\n    enabled: false")
    (found,) = check_findings(fleet_copy, crd_order)
    assert found.source.file == DATAPLANE
    assert "EnvoyProxy (gateway.envoyproxy.io)" in found.message and "has no CRD" in found.message


def test_experimental_gateway_kind_is_not_on_doks(fleet_copy: Path) -> None:
    """A TCPRoute (experimental channel): DOKS does not install it, and no release does."""
    manifests = fleet_copy / "base/components/shuttle/manifests.yaml"
    manifests.write_text(manifests.read_text().rstrip("\n") + "\n---\napiVersion: gateway.networking.k8s.io/v1alpha2\n"
                         "kind: TCPRoute\nmetadata:\n  name: probe\n  namespace: starform-system\n"
                         "spec:\n  parentRefs: [{name: starform, namespace: envoy-gateway-system}]\n"
                         "  rules: [{backendRefs: [{name: shuttle, port: 8080}]}]\n")
    found = check_findings(fleet_copy, crd_order)
    assert found and all("TCPRoute (gateway.networking.k8s.io)" in f.message and "has no CRD" in f.message for f in found)


def test_provider_table_matches_the_shared_crds_and_chart_defaults() -> None:
    """The data the check relies on, against ../shared: kinds per CRD folder, chart default switches."""
    def kinds(folder: Path) -> set[str]:
        out = set()
        for path in folder.glob("*.yaml"):
            for doc in yaml.safe_load_all(path.read_text()):
                if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                    out.add(doc["spec"]["names"]["kind"])
        return out

    crds = require_shared("crds")
    assert kinds(crds / "envoy-gateway") == set(crd_providers.ENVOY_GATEWAY_KINDS)
    standard = kinds(crds / "gateway" / "standard")
    assert crd_providers.DOKS["gateway.networking.k8s.io"] <= standard
    assert standard <= set(crd_providers.GATEWAY_API_KINDS)
    flux = kinds(crds / "flux")
    assert flux <= {k for kinds_ in crd_providers.FLUX.values() for k in kinds_}
    charts = require_shared("charts")
    for chart, entries in crd_providers.CHARTS.items():
        for values_file in sorted(charts.glob(f"{chart}/*/values.yaml")):
            defaults = yaml.safe_load(values_file.read_text())
            for entry in entries:
                node = defaults
                for key in entry.when.split("."):
                    node = node[key]
                assert node is entry.default, (values_file, entry.when)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_names_the_component_line(fleet_copy: Path, fmt: str) -> None:
    line = _edit(fleet_copy / DATAPLANE, "afterReleases: true", "afterReleases: false")
    assert_errors_at(fleet_copy, crd_order, fmt, {(DATAPLANE, line)})
