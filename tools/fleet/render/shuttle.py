"""Shuttle's manifests: base/components/shuttle/manifests.yaml with exactly three parameters set.

Shuttle carries no telemetry configuration; only cluster ID, region and the name of the
Secret with its registration token differ between clusters (plus the pinned image, fleet-wide).
"""
from __future__ import annotations

import copy
from pathlib import Path

from .. import yamlio
from ..errors import InputError, SourceRef
from ..model import Cluster, Component

MANIFESTS = Path("base/components/shuttle/manifests.yaml")


def load_manifests(root: Path) -> list[dict]:
    docs = yamlio.load_all_text(yamlio.read_text(root / MANIFESTS, MANIFESTS.as_posix()), MANIFESTS.as_posix())
    return [yamlio.plain(d) for d in docs if d is not None]


def render_manifests(base_docs: list[dict], cluster: Cluster, component: Component) -> list[dict]:
    docs = copy.deepcopy(base_docs)
    deployments = [d for d in docs if d.get("kind") == "Deployment"]
    if len(deployments) != 1:
        raise InputError("shuttle manifests must hold exactly one Deployment", SourceRef(MANIFESTS.as_posix()))
    container = deployments[0]["spec"]["template"]["spec"]["containers"][0]
    container["image"] = component.image
    for env in container["env"]:
        if env["name"] == "STARFORM_CLUSTER_ID":
            env["value"] = cluster.id
        elif env["name"] == "STARFORM_REGION":
            env["value"] = cluster.region.slug
        elif env["name"] == "STARFORM_TOKEN":
            env["valueFrom"]["secretKeyRef"]["name"] = cluster.shuttle_token_secret
    for doc in docs:
        doc.setdefault("metadata", {}).setdefault("labels", {})["app.kubernetes.io/managed-by"] = "starform-fleet"
    return docs
