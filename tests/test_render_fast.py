"""The one-cluster fast path of `fleet render`: when only cluster folders changed since the last
render, only the clusters they affect are loaded and rendered, and the result is byte for byte
what a full render gives (`render --check` compares everything). Anything else falls back."""
from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from fleet.cli import cli

FAST = "nothing else changed"


def _run(root: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, ["render", "--root", str(root), *args])
    assert result.exit_code == 0, result.output
    return result.output


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


def _bump_envoy_replicas(root: Path, cid: str) -> None:
    _append(root / f"clusters/{cid}/cluster.yaml",
            "components:\n  envoy-gateway:\n    values:\n      deployment:\n        replicas: 4\n")


def _with_probers(root: Path, cid: str) -> int:
    """How many clusters a change to `cid` must render: itself and the control planes probing it."""
    return 1 + sum(f"cluster: {cid}\n" in (p / "cluster.yaml").read_text()
                   for p in (root / "clusters").iterdir() if p.name != cid)


def test_one_cluster_change_renders_that_cluster_only_and_matches_a_full_render(fleet_copy: Path) -> None:
    _run(fleet_copy)
    cid = "fra1-staging-01"
    _bump_envoy_replicas(fleet_copy, cid)
    out = _run(fleet_copy)
    assert FAST in out and f"({_with_probers(fleet_copy, cid)} rendered," in out, out
    assert "replicas: 4" in (fleet_copy / f"rendered/clusters/{cid}/stages/01-gateway/envoy-gateway.yaml").read_text()
    assert "up to date" in _run(fleet_copy, "--check")
    assert "(0 rendered," in _run(fleet_copy)


def test_a_new_unprobed_cluster_changes_alone_and_a_probed_one_with_its_control_plane(fleet_copy: Path) -> None:
    src = (fleet_copy / "clusters/nyc3-prod-01/cluster.yaml").read_text()
    (fleet_copy / "clusters/nyc3-prod-77").mkdir()
    (fleet_copy / "clusters/nyc3-prod-77/cluster.yaml").write_text(src.replace("id: nyc3-prod-01", "id: nyc3-prod-77"))
    out = _run(fleet_copy)
    assert FAST not in out, out  # a new cluster changes the fleet's membership
    _bump_envoy_replicas(fleet_copy, "nyc3-prod-77")
    out = _run(fleet_copy)
    assert FAST in out and "(1 rendered," in out, out
    _bump_envoy_replicas(fleet_copy, "nyc3-prod-01")
    out = _run(fleet_copy)
    assert _with_probers(fleet_copy, "nyc3-prod-01") == 2 and FAST in out and "(2 rendered," in out, out
    assert "up to date" in _run(fleet_copy, "--check")


def test_a_hand_edited_other_cluster_is_rendered_again(fleet_copy: Path) -> None:
    _run(fleet_copy)
    cid, other = "fra1-staging-01", "fra1-prod-01"
    target = fleet_copy / f"rendered/clusters/{other}/stages/04-shuttle/shuttle.yaml"
    target.write_text(target.read_text() + "# edited by hand\n")
    _bump_envoy_replicas(fleet_copy, cid)
    out = _run(fleet_copy)
    assert FAST in out and f"({_with_probers(fleet_copy, cid) + 1} rendered," in out, out
    assert "up to date" in _run(fleet_copy, "--check")


def test_shared_input_or_membership_change_renders_the_fleet(fleet_copy: Path) -> None:
    _run(fleet_copy)
    _append(fleet_copy / "base/relabel/platform.yaml", "\n# a reviewer's note\n")
    out = _run(fleet_copy)
    assert FAST not in out, out
    cluster = fleet_copy / "clusters/fra1-staging-01/cluster.yaml"
    text = cluster.read_text()
    assert "environment: staging" in text
    cluster.write_text(text.replace("environment: staging", "environment: production"))
    out = _run(fleet_copy)
    assert FAST not in out, out  # regional rule sets are per environment and region: they change
    assert "up to date" in _run(fleet_copy, "--check")


def test_bad_input_in_the_changed_cluster_is_exit_2_and_writes_nothing(fleet_copy: Path) -> None:
    _run(fleet_copy)
    before = (fleet_copy / "rendered/clusters/fra1-prod-01/stages/01-gateway/envoy-gateway.yaml").read_bytes()
    _append(fleet_copy / "clusters/fra1-prod-01/cluster.yaml", "components: [\n")
    result = CliRunner().invoke(cli, ["render", "--root", str(fleet_copy)])
    assert result.exit_code == 2, result.output
    assert "clusters/fra1-prod-01/cluster.yaml" in result.output
    assert (fleet_copy / "rendered/clusters/fra1-prod-01/stages/01-gateway/envoy-gateway.yaml").read_bytes() == before
