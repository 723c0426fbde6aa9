"""`fleet new`: write a new cluster's or region's input file, as README's "Add a cluster" and
"Add a region" describe it, so that it renders and lints clean at once.

Arguments are checked against the fleet before anything is written (taken ID, unknown region or
environment, bad slug, overlapping range: InputError, exit 2); the written file is then loaded
with the whole fleet, and removed again if the fleet no longer loads, so a refusal leaves nothing.
"""
from __future__ import annotations

import ipaddress
import re
import shutil
from pathlib import Path

from . import inputs
from .errors import InputError
from .tier.model import CLICKHOUSE_HTTP_PORT, VECTOR_FLUENT_PORT, VMAUTH_PORT

REGION_SLUG = re.compile(r"^[a-z]{3}[0-9]\Z")  # DigitalOcean's form: nyc3, fra1, sgp1
DEFAULT_QUEUE = "10Gi"


def cluster_text(cluster_id: str, region: str, environment: str, token_secret: str) -> str:
    return (f"id: {cluster_id}\n"
            f"region: {region}                     # a folder in regions/\n"
            f"environment: {environment}          # a folder in overlays/\n"
            "shuttle:\n"
            f"  tokenSecretName: {token_secret}   # the Secret's NAME; the token never enters git\n"
            "# optional:\n"
            "# components: {vmagent: {values: {...}}}   # per-component Helm values patches (not shuttle)\n"
            "# relabel: {customer: [...]}               # extra relabel rules, appended to base/relabel/customer.yaml\n")


def region_text(slug: str, vpc_cidr: str, control_plane_cidr: str) -> str:
    internal = f"{slug}.starform.internal"
    return (f"region: {slug}\n"
            f"vpcCidr: {vpc_cidr}  # disjoint from every other region and the control plane\n"
            "endpoints:  # the tier's own droplets (checked)\n"
            "  victoriaMetrics:\n"
            f"    url: http://victoria-metrics.{internal}:{VMAUTH_PORT}\n"
            "  vector:\n"
            f"    host: vector.{internal}\n"
            f"    port: {VECTOR_FLUENT_PORT}\n"
            "  clickhouse:\n"
            f"    url: http://clickhouse.{internal}:{CLICKHOUSE_HTTP_PORT}\n"
            "# vmagent's remote-write queue (a persistent volume): what is scraped during a store outage waits here.\n"
            "vmagentQueue:\n"
            f"  volumeSize: {DEFAULT_QUEUE}\n"
            f"# The regional telemetry tier (rendered/regions/{slug}/). Unset keys take the defaults in\n"
            "# tools/fleet/tier/model.py (droplet sizes, TTLs, retention, snapshots).\n"
            "tier:\n"
            f"  controlPlaneCidr: {control_plane_cidr}  # the control plane's VPC (peered): the only source of reads\n")


def new_cluster(root: Path, cluster_id: str, region: str, environment: str, token_secret: str) -> Path:
    """Write clusters/<id>/cluster.yaml; refuse a taken or malformed ID, an unknown region or environment."""
    raw = inputs.load(root)
    if not inputs.DNS1123_LABEL.match(cluster_id) or len(cluster_id) > 63:
        raise InputError(f"cluster ID {cluster_id!r} is not a DNS-1123 label",
                         expected="lower-case letters, digits and '-', at most 63, e.g. nyc3-prod-03")
    if cluster_id in raw.clusters or (root / "clusters" / cluster_id).exists():
        raise InputError(f"cluster {cluster_id!r} already exists (clusters/{cluster_id}/)", expected="a new cluster ID")
    _known("region", region, raw.regions, "regions/<region>/region.yaml")
    _known("environment", environment, raw.overlays, "overlays/<environment>/overlay.yaml")
    if not inputs.DNS1123_LABEL.match(token_secret) or len(token_secret) > 253:
        raise InputError(f"token Secret name {token_secret!r} is not a valid Secret name",
                         expected="a DNS-1123 name, e.g. shuttle-registration")
    folder = root / "clusters" / cluster_id
    return _write_checked(root, folder, "cluster.yaml", cluster_text(cluster_id, region, environment, token_secret))


def new_region(root: Path, slug: str, vpc_cidr: str, control_plane_cidr: str) -> Path:
    """Write regions/<slug>/region.yaml; refuse a taken or malformed slug and ranges that overlap."""
    raw = inputs.load(root)
    if not REGION_SLUG.match(slug):
        raise InputError(f"region slug {slug!r} is not a DigitalOcean region slug",
                         expected="three lower-case letters and a digit, e.g. sfo3, ams3")
    if slug in raw.regions or (root / "regions" / slug).exists():
        raise InputError(f"region {slug!r} already exists (regions/{slug}/)", expected="a new region slug")
    vpc = _network("--vpc-cidr", vpc_cidr)
    if not 16 <= vpc.prefixlen <= 28:
        raise InputError(f"VPC range {vpc} is /{vpc.prefixlen}", expected="a prefix between /16 and /28 (DigitalOcean VPC sizes)")
    control_plane = _network("--control-plane-cidr", control_plane_cidr)
    if vpc.overlaps(control_plane):
        raise InputError(f"VPC range {vpc} overlaps the control-plane range {control_plane}",
                         expected="disjoint ranges (the control plane's VPC is peered with the region's)")
    for other, doc in sorted(raw.regions.items()):
        other_vpc = ipaddress.IPv4Network(str(doc.data["vpcCidr"]))
        if vpc.overlaps(other_vpc):
            raise InputError(f"VPC range {vpc} overlaps {other_vpc} of region {other}", doc.value_ref("vpcCidr"),
                             expected="a range disjoint from every other region's (peered VPCs cannot overlap)")
        if other_vpc.overlaps(control_plane):
            raise InputError(f"control-plane range {control_plane} overlaps region {other}'s VPC {other_vpc}",
                             doc.value_ref("vpcCidr"), expected="the control plane's VPC range, disjoint from every region's")
    return _write_checked(root, root / "regions" / slug, "region.yaml", region_text(slug, str(vpc), str(control_plane)))


def _known(what: str, name: str, known: dict, where: str) -> None:
    if name not in known:
        raise InputError(f"unknown {what} {name!r}", expected=f"one with a {where} (have: {', '.join(sorted(known)) or 'none'})")


def _network(option: str, text: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(text, strict=True)
    except ValueError as exc:
        raise InputError(f"{option} {text!r} is not an IPv4 network: {exc}",
                         expected="a network address with no host bits set, e.g. 10.124.0.0/20") from None


def _write_checked(root: Path, folder: Path, filename: str, text: str) -> Path:
    """Write the file, then load the whole fleet with it; on any input error take it back."""
    folder.mkdir(parents=True)
    path = folder / filename
    try:
        path.write_text(text, encoding="utf-8")
        inputs.load(root)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return path
