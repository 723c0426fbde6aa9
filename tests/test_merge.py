"""Merge rules: maps merge deeply, lists replace, null removes; provenance follows the winner."""
from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings, strategies as st

from fleet import model, yamlio
from fleet.merge import deep_merge, from_node, merge_layers


def test_maps_merge_deeply() -> None:
    assert deep_merge({"a": {"b": 1, "c": 2}}, {"a": {"c": 3, "d": 4}}) == {"a": {"b": 1, "c": 3, "d": 4}}


def test_lists_replace_whole() -> None:
    assert deep_merge({"a": [1, 2, 3]}, {"a": [9]}) == {"a": [9]}


def test_null_removes_key_and_nested_nulls_vanish() -> None:
    assert deep_merge({"a": {"b": 1}, "c": 1}, {"a": None}) == {"c": 1}
    assert deep_merge({"a": 1}, {"n": {"x": None, "y": 2}}) == {"a": 1, "n": {"y": 2}}


def test_scalar_replaces_map_and_back() -> None:
    assert deep_merge({"a": {"b": 1}}, {"a": 5}) == {"a": 5}
    assert deep_merge({"a": 5}, {"a": {"b": 1}}) == {"a": {"b": 1}}


def test_provenance_points_at_the_layer_that_won() -> None:
    base = from_node(yamlio.load_text("a:\n  b: 1\n  c: [1, 2]\n", "base.yaml"), "base.yaml")
    patch = from_node(yamlio.load_text("a:\n  c: [3]\n", "patch.yaml"), "patch.yaml")
    merged = merge_layers([base, patch])
    assert str(merged.source_of(("a", "b"))) == "base.yaml:2:3"
    assert str(merged.source_of(("a", "c"))) == "patch.yaml:2:3"
    assert str(merged.source_of(("a", "c", 0))) == "patch.yaml:2:7"


json_leaf = st.one_of(st.integers(-5, 5), st.text("ab", max_size=2), st.booleans())
docs = st.recursive(json_leaf | st.lists(json_leaf, max_size=3),
                    lambda inner: st.dictionaries(st.sampled_from("abcd"), inner | st.none(), max_size=4), max_leaves=12)


@settings(max_examples=200, derandomize=True)
@given(st.dictionaries(st.sampled_from("abcd"), docs, max_size=4), st.dictionaries(st.sampled_from("abcd"), docs, max_size=4))
def test_merge_laws(base: dict, patch: dict) -> None:
    merged = deep_merge(base, patch)
    # Idempotent: applying the same patch twice changes nothing more.
    assert deep_merge(merged, patch) == merged
    # Every non-null, non-map value of the patch wins as written.
    for key, value in patch.items():
        if value is None:
            assert key not in merged
        elif not isinstance(value, dict):
            assert merged[key] == deep_merge({"k": value}, {})["k"]


def test_layer_order_base_overlay_region_cluster(repo_root: Path) -> None:
    fleet = model.load(repo_root)
    # production overlay raises vmagent's memory limit; nyc3-prod-02 raises it again.
    prod = fleet.clusters["nyc3-prod-01"].components["vmagent"]
    big = fleet.clusters["nyc3-prod-02"].components["vmagent"]
    staging = fleet.clusters["nyc3-staging-01"].components["vmagent"]
    assert prod.values["resources"]["limits"]["memory"] == "2Gi"
    assert prod.source_of("values", "resources", "limits", "memory").file == "overlays/production/overlay.yaml"
    assert big.values["resources"]["limits"]["memory"] == "3Gi"
    assert big.source_of("values", "resources", "limits", "memory").file == "clusters/nyc3-prod-02/cluster.yaml"
    assert staging.values["resources"]["limits"]["memory"] == "1Gi"
    # Untouched keys keep the base value and its provenance.
    assert big.values["resources"]["requests"] == {"cpu": "100m", "memory": "256Mi"}
    # The region layer: test_region_layer_sits_between_overlay_and_cluster.


def test_region_layer_sits_between_overlay_and_cluster(fleet_copy: Path) -> None:
    (fleet_copy / "regions/nyc3/region.yaml").write_text(
        (fleet_copy / "regions/nyc3/region.yaml").read_text()
        + "components:\n  vmagent:\n    values:\n      resources:\n        limits:\n          memory: 5Gi\n")
    fleet = model.load(fleet_copy)
    assert fleet.clusters["nyc3-prod-01"].components["vmagent"].values["resources"]["limits"]["memory"] == "5Gi"  # beats overlay
    assert fleet.clusters["nyc3-prod-02"].components["vmagent"].values["resources"]["limits"]["memory"] == "3Gi"  # cluster beats region
    assert fleet.clusters["fra1-prod-01"].components["vmagent"].values["resources"]["limits"]["memory"] == "2Gi"


def test_cluster_null_removes_a_base_value(fleet_copy: Path) -> None:
    path = fleet_copy / "clusters/nyc3-prod-01/cluster.yaml"
    path.write_text(path.read_text() + "components:\n  kube-state-metrics:\n    values:\n      podDisruptionBudget: null\n")
    fleet = model.load(fleet_copy)
    assert "podDisruptionBudget" not in fleet.clusters["nyc3-prod-01"].components["kube-state-metrics"].values
    assert "podDisruptionBudget" in fleet.clusters["nyc3-prod-02"].components["kube-state-metrics"].values
