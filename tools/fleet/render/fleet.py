"""Render the whole fleet: every cluster, every region, the platform alerts → {path: text}.

Paths are relative to rendered/. A cluster's render is a pure function of its merged inputs
(`Cluster.fingerprint`), the fleet-wide settings and the renderer's own code and templates
(`render_key`), so:
- clusters render in parallel (fork, one worker per core) when there are many;
- `render_fleet(..., reuse=...)` skips clusters whose key is unchanged and whose files on disk
  are exactly what was written last time (a hand-edited file is re-rendered, never trusted).
"""
from __future__ import annotations

import hashlib
import importlib
import json
import multiprocessing
import os
from pathlib import Path
from typing import Callable

from ..errors import processing
from ..model import Cluster, Fleet
from ..tier.model import tier_of
from .cluster import Shared, load_shared, render_cluster

PARALLEL_MIN_CLUSTERS = 64
CODE_FILES = ("base/fleet.yaml", "base/components/alloy/config.alloy.j2", "base/components/alloy/platform-jobs.yaml",
              "base/components/fluent-bit/outputs.conf.j2", "base/components/shuttle/manifests.yaml",
              "base/components/gateway-dataplane/httproute-policy.yaml", "base/network/policies.yaml")


def _optional(module: str, name: str) -> Callable | None:
    """Renderers other features provide (rules); absent until that feature lands."""
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


def code_digest(fleet: Fleet) -> str:
    """Hash of what every cluster render shares: the renderer's code, templates and settings."""
    h = hashlib.sha256()
    package = Path(__file__).resolve().parent.parent
    for path in sorted(package.glob("render/*.py")) + [package / "yamlio.py", package / "model.py"]:
        h.update(path.read_bytes())
    for rel in CODE_FILES:
        path = fleet.root / rel
        h.update(rel.encode() + b"\0" + (path.read_bytes() if path.exists() else b""))
    h.update(json.dumps(fleet.settings, sort_keys=True).encode())
    return h.hexdigest()


def render_key(code: str, cluster: Cluster) -> str:
    return hashlib.sha256(f"{code}\0{cluster.fingerprint}".encode()).hexdigest()


KEEP = object()  # returned by a `reuse` callback: the cluster's folder on disk is current; leave it


# Worker state for the fork pool: set before forking, read by the children.
_WORK: tuple[Fleet, Shared] | None = None


def _render_one(cid: str) -> tuple[str, dict[str, str]]:
    assert _WORK is not None
    fleet, shared = _WORK
    return cid, _render_cluster(fleet, cid, shared)


def _render_cluster(fleet: Fleet, cid: str, shared: Shared) -> dict[str, str]:
    cluster = fleet.clusters[cid]
    with processing(f"{cluster.source} (rendering cluster {cid})"):
        return render_cluster(fleet, cluster, shared)


def render_clusters(fleet: Fleet, ids: list[str]) -> dict[str, dict[str, str]]:
    """{cluster id: {path under the cluster folder: text}} for `ids`, in parallel when worth it."""
    global _WORK
    shared = load_shared(fleet)
    workers = min(os.cpu_count() or 1, 8)
    if len(ids) < PARALLEL_MIN_CLUSTERS or workers < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return {cid: _render_cluster(fleet, cid, shared) for cid in ids}
    _WORK = (fleet, shared)
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            return dict(pool.imap_unordered(_render_one, ids, chunksize=max(1, len(ids) // (workers * 8))))
    finally:
        _WORK = None


def render_fleet(fleet: Fleet, only: set[str] | None = None,
                 reuse: Callable[[str, str], object] | None = None,
                 clusters_only: bool = False) -> dict[str, str]:
    """Every rendered file. `reuse(cluster_id, key)` may answer KEEP for a cluster whose
    previous render had the same key and is untouched on disk (see commands/render.py): its
    files are then left out of the result; other clusters are rendered. `clusters_only`: the
    clusters' folders only (the caller knows the regional and platform outputs are current)."""
    code = code_digest(fleet)
    out: dict[str, str] = {}
    todo = []
    for cid, cluster in sorted(fleet.clusters.items()):
        if only is not None and cid not in only:
            continue
        if reuse is None or reuse(cid, render_key(code, cluster)) is not KEEP:
            todo.append(cid)
    for cid, files in render_clusters(fleet, todo).items():
        out.update({f"clusters/{cid}/{rel}": text for rel, text in files.items()})
    if clusters_only:
        return dict(sorted(out.items()))
    region_rules = _optional("fleet.rules.render", "render_region_rules")
    if region_rules is not None:
        for slug in sorted(fleet.regions):
            ids = sorted(c.id for c in fleet.clusters.values() if c.region.slug == slug)
            with processing(f"regions/{slug} (rendering its vmalert rules)"):
                region_files = region_rules(fleet.root, slug, ids)
            for rel, text in region_files.items():
                out[f"regions/{slug}/vmalert/{rel}"] = text
    out.update(_render_tiers(fleet, out))
    platform_alerts = _optional("fleet.rules.render", "render_platform_alerts")
    if platform_alerts is not None:
        with processing("base/rules/alerts (rendering the platform alerts)"):
            alert_files = platform_alerts(fleet.root)
        for rel, text in alert_files.items():
            out[f"platform/alerts/{rel}"] = text
    return dict(sorted(out.items()))


def _render_tiers(fleet: Fleet, rendered: dict[str, str]) -> dict[str, str]:
    """Each region's telemetry tier (regions with a `tier:` block); vmalert's rendered rules and
    flags go into the VictoriaMetrics droplet's cloud-init."""
    from ..tier.render import render_tier  # only a whole-fleet render needs it (and its templates)

    out: dict[str, str] = {}
    for slug, doc in sorted(fleet.raw.regions.items()):
        tier = tier_of(doc.data, doc.name)
        if tier is None:
            continue
        prefix = f"regions/{slug}/vmalert/"
        vmalert = {rel[len(prefix):]: text for rel, text in rendered.items() if rel.startswith(prefix)}
        for rel, text in render_tier(fleet.root, tier, fleet.settings, vmalert).items():
            out[f"regions/{slug}/{rel}"] = text
    return out
