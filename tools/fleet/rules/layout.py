"""Where rule inputs live in the repo, and loading them as merge layers.

    base/rules/recording/*.yaml              customer recording rules (every region)
    regions/<region>/rules/recording/*.yaml  region overrides
    clusters/<id>/rules/recording/*.yaml     cluster overrides (merged into the cluster's region)
    base/rules/alerts/*.yaml                 platform alerts (Grafana Cloud, one namespace per file)
    base/rules/producers.yaml                which scrape job produces which metric
    regions/<region>/region.yaml             endpoints.victoriaMetrics.url
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import yamlio
from ..errors import InputError, SourceRef
from .loader import RuleFile, load_rule_file, rule_files_in
from .merge import Layer, MergedSet, merge_layers

RECORDING = Path("base/rules/recording")
ALERTS = Path("base/rules/alerts")
PRODUCERS = Path("base/rules/producers.yaml")


def region_overlay_dir(root: Path, region: str) -> Path:
    return root / "regions" / region / "rules" / "recording"


def cluster_overlay_dir(root: Path, cluster_id: str) -> Path:
    return root / "clusters" / cluster_id / "rules" / "recording"


def load_folder(root: Path, folder: Path, *, overlay: bool) -> list[RuleFile]:
    return [load_rule_file(p, root, overlay=overlay) for p in rule_files_in(folder)]


def base_recording(root: Path) -> list[RuleFile]:
    return load_folder(root, root / RECORDING, overlay=False)


def platform_alerts(root: Path) -> list[RuleFile]:
    return load_folder(root, root / ALERTS, overlay=False)


def region_layers(root: Path, region: str, cluster_ids: list[str]) -> list[Layer]:
    """The overlay layers for a region, in merge order: the region, then its clusters by id."""
    layers = [Layer("region", region, load_folder(root, region_overlay_dir(root, region), overlay=True))]
    for cluster_id in sorted(set(cluster_ids)):
        layers.append(Layer("cluster", cluster_id,
                            load_folder(root, cluster_overlay_dir(root, cluster_id), overlay=True)))
    return layers


def merged_region(root: Path, region: str, cluster_ids: list[str]) -> MergedSet:
    """base ← region ← clusters: the rule set vmalert evaluates in this region."""
    return merge_layers(base_recording(root), region_layers(root, region, cluster_ids))


def region_file(root: Path, region: str) -> Path:
    return root / "regions" / region / "region.yaml"


def victoria_metrics_url(root: Path, region: str) -> tuple[str, SourceRef]:
    """`endpoints.victoriaMetrics.url` of the region, with where it is written."""
    path = region_file(root, region)
    name = str(path.relative_to(root))
    if not path.is_file():
        raise InputError(f"region {region!r} has no region.yaml", SourceRef(name))
    doc = yamlio.load_file(path, name)
    node: Any = doc
    for key in ("endpoints", "victoriaMetrics", "url"):
        if not isinstance(node, dict) or key not in node:
            line, col = yamlio.position(node)
            raise InputError(f"missing key {key!r}", SourceRef(name, line, col),
                             path="$.endpoints.victoriaMetrics.url", expected="the region's VictoriaMetrics base URL")
        parent, node = node, node[key]
    url = str(node).rstrip("/")
    line, col = yamlio.position(parent, "url")
    if not url.startswith(("http://", "https://")):
        raise InputError(f"not an http(s) URL: {url!r}", SourceRef(name, line, col),
                         path="$.endpoints.victoriaMetrics.url", expected="http://host:port")
    return url, SourceRef(name, line, col)


def discover_regions(root: Path, fleet: Any = None) -> dict[str, list[str]]:
    """region → cluster ids. Uses the fleet model when it offers one, else the folders.

    Without a model: every regions/<r>/region.yaml is a region; a cluster belongs to the region
    named by the `region` key of clusters/<id>/cluster.yaml.
    """
    from_model = _regions_from_model(fleet)
    if from_model is not None:
        return from_model
    regions: dict[str, list[str]] = {}
    for path in sorted((root / "regions").glob("*/region.yaml")):
        regions[path.parent.name] = []
    for path in sorted((root / "clusters").glob("*/cluster.yaml")):
        doc = yamlio.load_file(path, str(path.relative_to(root)))
        region = doc.get("region") if isinstance(doc, dict) else None
        if isinstance(region, str) and region in regions:
            regions[region].append(path.parent.name)
    return regions


def _regions_from_model(fleet: Any) -> dict[str, list[str]] | None:
    clusters = getattr(fleet, "clusters", None)
    regions = getattr(fleet, "regions", None)
    if clusters is None or regions is None:
        return None
    try:
        out: dict[str, list[str]] = {str(getattr(r, "slug", r)): [] for r in regions}
        items = clusters.values() if isinstance(clusters, dict) else clusters
        for cluster in items:
            region = getattr(cluster, "region", "")
            region = str(getattr(region, "slug", region))
            cid = str(getattr(cluster, "id", getattr(cluster, "name", "")))
            if region in out and cid:
                out[region].append(cid)
        return {k: sorted(v) for k, v in out.items()}
    except (TypeError, AttributeError):
        return None
