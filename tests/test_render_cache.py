"""Render reuse and parallelism never change the output: same bytes as a full sequential render."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from fleet import model
from fleet.cli import cli
from fleet.render import fleet as fleet_render
from fleet.writer import read_tree


def _render(root: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, ["render", "--root", str(root), *args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(params=["example fleet", "plus one cluster"])
def fleet_copy(request, fleet_copy: Path) -> Path:
    """Every test here runs on the example fleet and on it plus one cluster (what a PR adds)."""
    if request.param == "plus one cluster":
        src = fleet_copy / "clusters/nyc3-prod-01"
        dst = fleet_copy / "clusters/nyc3-prod-99"
        shutil.copytree(src, dst)
        text = (src / "cluster.yaml").read_text()
        (dst / "cluster.yaml").write_text(text.replace("id: nyc3-prod-01", "id: nyc3-prod-99"))
    return fleet_copy


def _cluster_count(root: Path) -> int:
    """How many clusters the fleet in `root` has: the tests hold for any valid fleet, not only
    the example's (a PR adding a cluster must not break them)."""
    return len(model.load(root).clusters)


def _probers(root: Path, cluster_id: str) -> int:
    """How many control-plane clusters probe `cluster_id`'s load balancer (its inputs are theirs too)."""
    return sum(any(lb.get("cluster") == cluster_id for lb in c.control_plane.get("loadBalancers", []))
               for c in model.load(root).clusters.values())


def _fresh(root: Path) -> dict[str, bytes]:
    return {k: v.encode() for k, v in fleet_render.render_fleet(model.load(root)).items()}


def test_second_render_reuses_every_cluster(fleet_copy: Path) -> None:
    _render(fleet_copy)
    assert f"(0 rendered, {_cluster_count(fleet_copy)} reused)" in _render(fleet_copy)


def test_hand_edited_file_is_rendered_again_not_trusted(fleet_copy: Path) -> None:
    _render(fleet_copy)
    target = fleet_copy / "rendered/clusters/nyc3-prod-01/stages/04-shuttle/shuttle.yaml"
    target.write_text(target.read_text().replace("replicas: 1", "replicas: 5"))
    out = _render(fleet_copy)
    assert f"(1 rendered, {_cluster_count(fleet_copy) - 1} reused)" in out
    assert "replicas: 5" not in target.read_text()
    assert read_tree(fleet_copy / "rendered") == _fresh(fleet_copy)


def test_one_cluster_change_renders_only_that_cluster(fleet_copy: Path) -> None:
    _render(fleet_copy)
    path = fleet_copy / "clusters/fra1-prod-01/cluster.yaml"
    path.write_text(path.read_text() + "components:\n  envoy-gateway:\n    values:\n      deployment:\n        replicas: 4\n")
    # a control-plane cluster that probes fra1-prod-01's load balancer reads its environment
    changed = 1 + _probers(fleet_copy, "fra1-prod-01")
    assert f"({changed} rendered, {_cluster_count(fleet_copy) - changed} reused)" in _render(fleet_copy)
    assert read_tree(fleet_copy / "rendered") == _fresh(fleet_copy)


def test_shared_input_change_renders_everything(fleet_copy: Path) -> None:
    _render(fleet_copy)
    for rel, old, new in (("base/fleet.yaml", "interval: 10m", "interval: 5m"),
                          ("base/components/alloy/config.alloy.j2", "// Only platform jobs", "// Only the platform jobs"),
                          ("base/relabel/platform.yaml", "regex: __platform_namespace\n", "regex: __platform_namespace|__tmp\n")):
        path = fleet_copy / rel
        path.write_text(path.read_text().replace(old, new, 1))
        assert f"({_cluster_count(fleet_copy)} rendered, 0 reused)" in _render(fleet_copy), rel
        assert read_tree(fleet_copy / "rendered") == _fresh(fleet_copy), rel


def test_parallel_render_is_byte_identical(fleet_copy: Path, monkeypatch) -> None:
    for i in range(70):  # above the parallel threshold
        src = fleet_copy / "clusters/nyc3-prod-02"
        dst = fleet_copy / f"clusters/nyc3-extra-{i:02d}"
        shutil.copytree(src, dst)
        (dst / "cluster.yaml").write_text((src / "cluster.yaml").read_text().replace("id: nyc3-prod-02", f"id: nyc3-extra-{i:02d}"))
    fleet = model.load(fleet_copy)
    ids = sorted(fleet.clusters)
    assert len(ids) >= fleet_render.PARALLEL_MIN_CLUSTERS
    parallel = fleet_render.render_clusters(fleet, ids)
    monkeypatch.setattr(fleet_render, "PARALLEL_MIN_CLUSTERS", 10**9)
    assert fleet_render.render_clusters(fleet, ids) == parallel
