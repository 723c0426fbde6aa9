"""Render the whole fleet: every cluster, every region, the platform alerts → {path: text}.

Paths are relative to rendered/. Clusters render independently (a pure function of their
merged inputs), so they can be cached by content hash and rendered in parallel.
"""
from __future__ import annotations

import importlib
from typing import Callable

from ..model import Fleet
from .cluster import load_shared, render_cluster


def _optional(module: str, name: str) -> Callable | None:
    """Renderers other features provide (rules); absent until that feature lands."""
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


def render_fleet(fleet: Fleet, only: set[str] | None = None) -> dict[str, str]:
    shared = load_shared(fleet)
    out: dict[str, str] = {}
    for cid, cluster in sorted(fleet.clusters.items()):
        if only is not None and cid not in only:
            continue
        for rel, text in render_cluster(fleet, cluster, shared).items():
            out[f"clusters/{cid}/{rel}"] = text
    region_rules = _optional("fleet.rules.render", "render_region_rules")
    if region_rules is not None:
        for slug in sorted(fleet.regions):
            ids = sorted(c.id for c in fleet.clusters.values() if c.region.slug == slug)
            for rel, text in region_rules(fleet.root, slug, ids).items():
                out[f"regions/{slug}/vmalert/{rel}"] = text
    platform_alerts = _optional("fleet.rules.render", "render_platform_alerts")
    if platform_alerts is not None:
        for rel, text in platform_alerts(fleet.root).items():
            out[f"platform/alerts/{rel}"] = text
    return out
