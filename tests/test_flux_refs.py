"""flux-refs: every rendered cluster is something Flux will actually reconcile."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fleet.checks import CheckContext, flux_refs
from fleet.k8s import objects


def run(root: Path, fleet):
    return list(flux_refs.check(CheckContext(root=root, fleet=fleet, rendered=root / "rendered")))


@pytest.fixture
def one_cluster(rendered_root, tmp_path, fleet):
    """A writable copy of one rendered cluster (nyc3-prod-02), for mutations."""
    cid = "nyc3-prod-02"
    shutil.copytree(rendered_root / "rendered" / "clusters" / cid, tmp_path / "rendered" / "clusters" / cid)
    return tmp_path, tmp_path / "rendered" / "clusters" / cid


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def messages(findings) -> list[str]:
    return [f.message for f in findings]


def test_shipped_fleet_reconciles(rendered_root, fleet):
    assert run(rendered_root, fleet) == []


def test_stage_kustomizations_chain_in_fleet_order(rendered_root, fleet):
    """stage-01 → (its custom-resources step) → stage-02 → … via dependsOn, each applying its own
    rendered folder."""
    objs = list(objects.iter_objects(rendered_root / "rendered"))
    for cid in fleet.clusters:
        stages = [o for o in objs if o.cluster == cid and o.kind == "Kustomization" and o.name.startswith("stage-")]
        names = [o.name for o in stages]
        want = [f"stage-{i + 1:02d}-{s}" for i, s in enumerate(fleet.stages)]
        if fleet.clusters[cid].profile == "control-plane":   # the control plane installs no Shuttle
            want = want[:3]
        assert [n for n in names if not n.endswith("-custom-resources")] == want
        assert names[:2] == ["stage-01-gateway", "stage-01-gateway-custom-resources"]
        for previous, current in zip([None] + names, stages):
            deps = [d["name"] for d in current.obj["spec"].get("dependsOn", [])]
            assert deps == ([previous] if previous else [])
            folder = rendered_root / current.obj["spec"]["path"]
            assert (folder / "kustomization.yaml").is_file()


def test_helmrelease_sources_are_rendered_in_the_same_cluster(rendered_root, fleet):
    objs = list(objects.iter_objects(rendered_root / "rendered"))
    releases = [o for o in objs if o.kind == "HelmRelease"]
    assert releases
    for hr in releases:
        spec = hr.obj["spec"]
        ref = spec.get("chartRef") or spec["chart"]["spec"]["sourceRef"]
        targets = [o for o in objs if o.cluster == hr.cluster and o.kind == ref["kind"] and o.name == ref["name"]
                   and o.namespace == ref.get("namespace", hr.namespace)]
        assert len(targets) == 1, hr.describe()
        assert targets[0].namespace == hr.namespace


def test_missing_depends_on_target(one_cluster, fleet):
    root, cdir = one_cluster
    edit(cdir / "stages.yaml", "- name: stage-02-cluster-metrics", "- name: stage-02-cluster-metrix")
    found = run(root, fleet)
    assert any("dependsOn Kustomization flux-system/stage-02-cluster-metrix is not rendered in cluster nyc3-prod-02"
               in m for m in messages(found))
    assert any("stage stage-03-telemetry depends on stage-02-cluster-metrix at $.spec.dependsOn; expected "
               "dependsOn [stage-02-cluster-metrics]" in m for m in messages(found))
    f = next(f for f in found if "is not rendered" in f.message)
    lines = (cdir / "stages.yaml").read_text().splitlines()
    assert "stage-02-cluster-metrix" in lines[f.source.line - 1]


def test_broken_stage_chain(one_cluster, fleet):
    root, cdir = one_cluster
    edit(cdir / "stages.yaml", "- name: stage-03-telemetry", "- name: stage-01-gateway")
    assert any("stage stage-04-shuttle depends on stage-01-gateway at $.spec.dependsOn; expected dependsOn "
               "[stage-03-telemetry]" in m
               for m in messages(run(root, fleet)))


def test_dependency_cycle(one_cluster, fleet):
    root, cdir = one_cluster
    text = (cdir / "stages.yaml").read_text()
    head, sep, tail = text.partition("  name: stage-01-gateway\n  namespace: flux-system\nspec:\n")
    (cdir / "stages.yaml").write_text(head + sep + "  dependsOn:\n    - name: stage-04-shuttle\n" + tail)
    found = messages(run(root, fleet))
    assert any("dependsOn cycle: stage-01-gateway → stage-04-shuttle → stage-03-telemetry → "
               "stage-02-cluster-metrics → stage-01-gateway" in m for m in found), found


def test_chartref_to_missing_ocirepository(one_cluster, fleet):
    root, cdir = one_cluster
    edit(cdir / "stages/01-gateway/envoy-gateway.yaml", "kind: OCIRepository\nmetadata:", "kind: Namespace\nmetadata:")
    found = run(root, fleet)
    assert any("chartRef OCIRepository envoy-gateway-system/envoy-gateway is not rendered in cluster nyc3-prod-02"
               in m for m in messages(found))


def test_cross_namespace_chart_source(one_cluster, fleet):
    root, cdir = one_cluster
    edit(cdir / "stages/03-telemetry/vmagent.yaml", "        namespace: starform-metrics", "        namespace: other")
    (f,) = run(root, fleet)
    assert "chart sourceRef HelmRepository other/vmagent is in another namespace" in f.message
    assert f.source.file.endswith("vmagent.yaml")


def test_kustomization_path_checks(one_cluster, fleet):
    root, cdir = one_cluster
    edit(cdir / "stages.yaml", "path: ./rendered/clusters/nyc3-prod-02/stages/02-cluster-metrics",
         "path: ./rendered/clusters/nyc3-prod-02/stages/02-cluster-metricz")
    edit(cdir / "flux-system/sync.yaml", "path: ./rendered/clusters/nyc3-prod-02",
         "path: ./rendered/clusters/nyc3-prod-01")
    (cdir / "stages/04-shuttle/kustomization.yaml").unlink()
    found = messages(run(root, fleet))
    assert any("path ./rendered/clusters/nyc3-prod-02/stages/02-cluster-metricz is not a rendered folder" in m
               for m in found)
    assert any("applies ./rendered/clusters/nyc3-prod-02/stages/02-cluster-metricz at $.spec.path; expected "
               "./rendered/clusters/nyc3-prod-02/stages/02-cluster-metrics" in m for m in found)
    assert any("Kustomization flux-system/flux-system: path ./rendered/clusters/nyc3-prod-01 is outside this "
               "cluster's folder" in m for m in found)
    assert any("stages/04-shuttle has no kustomization.yaml" in m for m in found)
    assert any("rendered folder rendered/clusters/nyc3-prod-02/stages/02-cluster-metrics is applied by no Flux "
               "Kustomization" in m for m in found)


def test_missing_stage_kustomization(one_cluster, fleet):
    root, cdir = one_cluster
    text = (cdir / "stages.yaml").read_text()
    docs = text.split("---\n")
    (cdir / "stages.yaml").write_text("---\n".join(d for d in docs if "name: stage-04-shuttle\n" not in d))
    found = run(root, fleet)
    assert any(f.source.file == "rendered/clusters/nyc3-prod-02/stages.yaml"
               and "stage Kustomization flux-system/stage-04-shuttle is not rendered" in f.message for f in found)
