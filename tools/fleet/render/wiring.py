"""Cluster-specific values the fleet owns: computed from the model, applied after all layers.

These are the few values that follow from where a cluster is (its region's endpoints, its
identity) rather than from taste; a layer cannot override them, and lint proves they point at
the right place. Everything else comes from base ← overlay ← region ← cluster.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

from ..cache import by_identity
from ..model import Cluster, Component
from ..tier.model import VMAUTH_WRITE_USER
from .templates import render_template


FLUENT_OUTPUTS = "base/components/fluent-bit/outputs.conf.j2"
#: (component, values path) → the template in base/ that renders that fleet-owned value.
WIRED_TEMPLATES = {("fluent-bit", ("config", "outputs")): FLUENT_OUTPUTS}

#: vmagent's credentials for the region's vmauth: the password is the Secret (created out of
#: band, key `password`, namespace starform-metrics) mounted read-only; only its name is in git.
REMOTE_WRITE_SECRET = "vmagent-remote-write"
REMOTE_WRITE_SECRET_DIR = "/etc/vmagent-remote-write"
REMOTE_WRITE_PASSWORD_FILE = f"{REMOTE_WRITE_SECRET_DIR}/password"
REMOTE_WRITE_VOLUME = {"name": REMOTE_WRITE_SECRET, "secret": {"secretName": REMOTE_WRITE_SECRET}}
REMOTE_WRITE_MOUNT = {"name": REMOTE_WRITE_SECRET, "mountPath": REMOTE_WRITE_SECRET_DIR, "readOnly": True}


def _fluent_bit(root: Path, cluster: Cluster, values: dict) -> dict:
    config = values.setdefault("config", {})
    config["outputs"] = render_template(root, FLUENT_OUTPUTS, region=cluster.region, cluster=cluster)
    return values


def _vmagent(root: Path, cluster: Cluster, values: dict) -> dict:
    values["remoteWrite"] = [{
        "url": cluster.region.remote_write_url,
        "urlRelabelConfig": [copy.deepcopy(r.rule) for r in cluster.customer_relabel],
        "maxDiskUsagePerURL": cluster.region.vmagent_queue_limit,
        # Flat dotted keys: the chart turns each into -remoteWrite.<key> for this URL.
        "basicAuth.username": VMAUTH_WRITE_USER,
        "basicAuth.passwordFile": REMOTE_WRITE_PASSWORD_FILE,
    }]
    _append(values, "extraVolumes", REMOTE_WRITE_VOLUME)
    _append(values, "extraVolumeMounts", REMOTE_WRITE_MOUNT)
    # The queue's volume (StatefulSet volumeClaimTemplate), sized by the region.
    values.setdefault("persistentVolume", {})["size"] = f"{cluster.region.vmagent_queue_gib}Gi"
    glob = values.setdefault("config", {}).setdefault("global", {})
    glob["external_labels"] = {"cluster_id": cluster.id, "region": cluster.region.slug}
    return values


def _append(values: dict, key: str, item: dict) -> None:
    """Add the fleet's item to a layer's list (or none). A layer's non-list is left for the
    required-values check to report at its line rather than silently replaced."""
    existing = values.get(key)
    if existing is None:
        values[key] = [copy.deepcopy(item)]
    elif isinstance(existing, list):
        values[key] = existing + [copy.deepcopy(item)]


def _alloy(root: Path, cluster: Cluster, values: dict) -> dict:
    """The control plane's Alloy reads the managed Postgres DSN from a Secret (by name only)."""
    if cluster.profile == "control-plane":
        env = values.setdefault("alloy", {}).setdefault("extraEnv", [])
        env.append({"name": "POSTGRES_DSN", "valueFrom": {"secretKeyRef": {
            "name": cluster.control_plane["postgresDsnSecretName"], "key": "dsn"}}})
    return values


WIRING: dict[str, Callable[[Path, Cluster, dict], dict]] = {
    "fluent-bit": _fluent_bit,
    "vmagent": _vmagent,
    "alloy": _alloy,
}


def wired_values(ctx: Any, cluster: Cluster, component: Component) -> dict:
    """final_values for readers (lint checks; `ctx` has the fleet's `root` and a per-run `cache`
    dict), read-only and computed once per lint run and component: a component the fleet sets
    nothing in gets its merged values themselves, shared with other clusters. Copying and wiring
    every cluster's values again for every check that reads them was a large part of a
    1,000-cluster lint."""
    if component.name not in WIRING:
        return component.values
    return by_identity(ctx.cache, "wired-values", component, lambda: final_values(ctx.root, cluster, component))


def final_values(root: Path, cluster: Cluster, component: Component) -> dict:
    """The component's merged values with the fleet-owned values applied."""
    values = copy.deepcopy(component.values)
    wire = WIRING.get(component.name)
    return wire(root, cluster, values) if wire else values
