"""The gdpr check's shared analysis (configs equal but for external label values) is exact."""
from __future__ import annotations

from pathlib import Path

from fleet.checks.gdpr import platform_paths
from fleet.relabel import policy as pol
from fleet.relabel.pipeline import alloy_paths
from fleet.relabel.proof import prove

CONFIG = '''prometheus.scrape "s" {
  targets    = [{"__address__" = "a:1"}]
  forward_to = [prometheus.relabel.g.receiver]
}
prometheus.relabel "g" {
  forward_to = [prometheus.remote_write.b.receiver, prometheus.remote_write.a.receiver]
  rule {
    source_labels = ["job"]
    regex         = "shuttle"
    action        = "keep"
  }
  rule {
    regex  = "job"
    action = "labeldrop"
  }
}
prometheus.remote_write "b" {
  external_labels = {job = "%s"}
  endpoint {
    url = "https://x.grafana.net/push"
    send_exemplars = false
    metadata_config {
      send = false
    }
  }
}
prometheus.remote_write "a" {
  external_labels = {job = "%s"}
  endpoint {
    url = "https://y.grafana.net/push"
    send_exemplars = false
    metadata_config {
      send = false
    }
  }
}
'''


def _leaks(paths, policy) -> list[int]:
    return sorted(len(prove(p.pipeline, policy)) for p in paths)


def test_cached_analysis_matches_a_fresh_one_per_remote_write(repo_root: Path) -> None:
    policy = pol.load_policy(repo_root / "policies/gdpr-labeldrop.yaml")
    cases = [("c1", ("shuttle", "shuttle")), ("c2", ("customer-app", "shuttle")),
             ("c3", ("alloy", "alloy")), ("c4", ("customer-app", "customer-app"))]
    for name, values in cases:
        text = CONFIG % values
        assert _leaks(platform_paths(text, name, policy, []), policy) == _leaks(alloy_paths(text, name, policy), policy), name


def test_clusters_differing_in_external_label_values_share_one_parse(repo_root: Path) -> None:
    """A comment inside `external_labels = {…}` (the shipped config has them) must not make every
    cluster's config its own cache key: that regression made a 1,000-cluster lint take hours."""
    from fleet.checks import gdpr

    policy = pol.load_policy(repo_root / "policies/gdpr-labeldrop.yaml")
    commented = CONFIG.replace('external_labels = {job = "%s"}',
                               'external_labels = {\n    // why this label exists\n    job = "%s",\n  }')
    gdpr._PATHS_CACHE.clear()
    first = commented % ("shuttle", "shuttle")
    second = commented % ("alloy", "alloy")
    assert gdpr.normalise(first)[0] == gdpr.normalise(second)[0]
    assert gdpr.normalise(first)[1] == {"job": "shuttle"}
    key_first, _ = gdpr._platform_paths(first, "rendered/one.alloy", policy, [])
    key_second, paths = gdpr._platform_paths(second, "rendered/two.alloy", policy, [])
    assert key_first == key_second == "rendered/one.alloy"
    assert {p.file for p in paths} == {"rendered/two.alloy"}
    assert all(p.pipeline.external_labels == {"job": "alloy"} for p in paths)
