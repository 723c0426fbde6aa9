"""The tier of one region as a typed model, and the input rules that span region files.

Defaults follow seed 001 (droplet sizes) and what a region needs on day one; a region file
states only what differs. Everything here is pure: no file is written.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..errors import InputError, SourceRef

#: The fleet's private DNS zone; each droplet's name is <host>.<region>.<zone>.
ZONE = "starform.internal"
DATABASE = "starform"

# Ports: what a cluster or the control plane reaches (firewalled) and what stays on loopback.
CLICKHOUSE_HTTP_PORT = 8123
CLICKHOUSE_METRICS_PORT = 9363      # ClickHouse's <prometheus> endpoint, loopback
VMAUTH_PORT = 8427                  # the only VictoriaMetrics port open to the VPC
VICTORIA_METRICS_PORT = 8428        # the store itself, loopback
VMALERT_PORT = 8880                 # vmalert's own HTTP (/metrics), loopback
VECTOR_FLUENT_PORT = 24224
VECTOR_METRICS_PORT = 9598          # Vector prometheus_exporter of its internal metrics, loopback

#: vmauth's users: every cluster's vmagent writes as VMAUTH_WRITE_USER (its password file is the
#: Secret render/wiring.py mounts), the control plane reads as VMAUTH_READ_USER.
VMAUTH_WRITE_USER = "vmagent"
VMAUTH_READ_USER = "control-plane"
#: The paths vmauth admits for writes (vmagent's remote write; the rendered URLs end in the first).
VMAUTH_WRITE_PATHS = ("/api/v1/write",)


@dataclass(frozen=True)
class Role:
    """One droplet kind: its key in region.yaml, its host name, its default size and volume."""

    key: str
    host: str
    resource: str          # Terraform resource name (seed 001)
    cloud_init: str        # cloud-init file name (seed 001)
    default_size: str
    default_volume_gib: int


ROLES = (
    Role("clickhouse", "clickhouse", "clickhouse", "clickhouse.yml", "so-4vcpu-32gb", 500),
    Role("victoriaMetrics", "victoria-metrics", "victoriametrics", "vmstorage.yml", "c-4", 200),
    Role("vector", "vector", "vector_agg", "vector.yml", "c-2", 50),
)

DEFAULTS = {
    # The `environment` external label of the droplets' self-monitoring (platform alerts page on
    # production only, base/rules/README.md): a region's stores serve production clusters.
    "environment": "production",
    "logsTtlDays": 30,
    "billingAuditTtlDays": 2557,     # seven years: a billing audit trail outlives tax periods
    "retentionDays": 90,
    "dedupIntervalSeconds": 30,      # vmagent's scrape interval: one sample per interval survives
    "snapshotHourUtc": 3,
    "snapshotKeep": 7,
}


@dataclass(frozen=True)
class Droplet:
    role: Role
    fqdn: str
    size: str
    volume_gib: int

    @property
    def name(self) -> str:
        return self.role.host


@dataclass(frozen=True)
class Tier:
    region: str
    vpc_cidr: str
    control_plane_cidr: str
    droplets: dict[str, Droplet]
    logs_ttl_days: int
    billing_audit_ttl_days: int
    retention_days: int
    dedup_interval_seconds: int
    snapshot_hour_utc: int
    snapshot_keep: int
    source: str
    environment: str = DEFAULTS["environment"]

    def droplet(self, key: str) -> Droplet:
        return self.droplets[key]

    @property
    def clickhouse_url(self) -> str:
        return f"http://{self.droplets['clickhouse'].fqdn}:{CLICKHOUSE_HTTP_PORT}"

    @property
    def victoria_metrics_url(self) -> str:
        """What clusters and the control plane reach: vmauth in front of the store."""
        return f"http://{self.droplets['victoriaMetrics'].fqdn}:{VMAUTH_PORT}"


def fqdn(host: str, region: str) -> str:
    return f"{host}.{region}.{ZONE}"


def tier_of(data: dict, source: str) -> Tier | None:
    """The Tier of a validated region document, or None when it has no `tier:` block."""
    t = data.get("tier")
    if t is None:
        return None
    slug = data["region"]
    given = t.get("droplets") or {}
    droplets = {}
    for role in ROLES:
        d = given.get(role.key) or {}
        droplets[role.key] = Droplet(role, fqdn(role.host, slug), d.get("size", role.default_size),
                                     int(d.get("volumeGiB", role.default_volume_gib)))
    ch, vm, snap = t.get("clickhouse") or {}, t.get("victoriaMetrics") or {}, t.get("snapshots") or {}
    return Tier(
        region=slug, vpc_cidr=data["vpcCidr"], control_plane_cidr=t["controlPlaneCidr"], droplets=droplets,
        logs_ttl_days=ch.get("logsTtlDays", DEFAULTS["logsTtlDays"]),
        billing_audit_ttl_days=ch.get("billingAuditTtlDays", DEFAULTS["billingAuditTtlDays"]),
        retention_days=vm.get("retentionDays", DEFAULTS["retentionDays"]),
        dedup_interval_seconds=vm.get("dedupIntervalSeconds", DEFAULTS["dedupIntervalSeconds"]),
        snapshot_hour_utc=snap.get("hourUtc", DEFAULTS["snapshotHourUtc"]),
        snapshot_keep=snap.get("keep", DEFAULTS["snapshotKeep"]),
        source=source, environment=t.get("environment", DEFAULTS["environment"]),
    )


# --- input rules spanning region files (called by inputs.load; errors at file:line) ---------------

def check_regions(regions: dict[str, Any]) -> list[InputError]:
    """Every region's VPC is a valid DigitalOcean VPC range that overlaps no other region's (VPC
    peering refuses overlapping ranges) nor the control plane's; a region with a tier has its
    endpoints pointing at its own droplets, on the ports the tier opens."""
    errors: list[InputError] = []
    networks: list[tuple[str, ipaddress.IPv4Network, Any]] = []
    for slug, doc in sorted(regions.items()):
        net = _network(doc, ("vpcCidr",), errors)
        if net is None:
            continue
        if not 16 <= net.prefixlen <= 28:
            errors.append(InputError(f"VPC range {net} of region {slug} is /{net.prefixlen}", doc.value_ref("vpcCidr"),
                                     path="$.vpcCidr", expected="a prefix between /16 and /28 (DigitalOcean VPC sizes)"))
        for other, other_net, other_doc in networks:
            if net.overlaps(other_net):
                errors.append(InputError(
                    f"VPC range {net} of region {slug} overlaps {other_net} of region {other} "
                    f"({other_doc.value_ref('vpcCidr')})", doc.value_ref("vpcCidr"), path="$.vpcCidr",
                    expected="a range disjoint from every other region's (peered VPCs cannot overlap)"))
        networks.append((slug, net, doc))
    for slug, doc in sorted(regions.items()):
        if "tier" in doc.data:
            errors += _check_tier(slug, doc, {s: n for s, n, _ in networks})
    return errors


def _network(doc: Any, path: tuple, errors: list[InputError]) -> ipaddress.IPv4Network | None:
    node: Any = doc.data
    for key in path:
        node = node[key]
    try:
        return ipaddress.IPv4Network(str(node), strict=True)
    except ValueError as exc:
        errors.append(InputError(f"{node!r} is not an IPv4 network: {exc}", doc.value_ref(*path),
                                 path="$." + ".".join(path), expected="a network address with no host bits set, e.g. 10.114.0.0/20"))
        return None


def _check_tier(slug: str, doc: Any, vpcs: dict[str, ipaddress.IPv4Network]) -> list[InputError]:
    return _check_control_plane(doc, vpcs) + _check_endpoints(slug, doc)


def _check_control_plane(doc: Any, vpcs: dict[str, ipaddress.IPv4Network]) -> list[InputError]:
    """The control plane's VPC is peered with every region's: it may overlap none of them."""
    errors: list[InputError] = []
    cp = _network(doc, ("tier", "controlPlaneCidr"), errors)
    for region, net in sorted(vpcs.items()) if cp is not None else ():
        if net.overlaps(cp):
            errors.append(InputError(
                f"control-plane range {cp} overlaps region {region}'s VPC {net}",
                doc.value_ref("tier", "controlPlaneCidr"), path="$.tier.controlPlaneCidr",
                expected="the control plane's VPC range, disjoint from every region's (it is peered with each)"))
    return errors


#: endpoints.<key>.url → (droplet host, port, what listens there).
_URL_ENDPOINTS = {
    "victoriaMetrics": ("victoria-metrics", VMAUTH_PORT, "vmauth"),
    "clickhouse": ("clickhouse", CLICKHOUSE_HTTP_PORT, "ClickHouse HTTP"),
}


def _check_endpoints(slug: str, doc: Any) -> list[InputError]:
    """Clusters (and the control plane) use the region's endpoints: each must be the droplet the
    region's Terraform creates, on the port its firewall opens."""
    errors: list[InputError] = []
    e = doc.data["endpoints"]
    for key, (host, port, what) in _URL_ENDPOINTS.items():
        url = urlsplit(str(e[key]["url"]))
        try:
            actual_port = url.port
        except ValueError:
            actual_port = None
        want = ("http", fqdn(host, slug), port)
        if (url.scheme, (url.hostname or "").lower(), actual_port) != want:
            errors.append(InputError(
                f"endpoint {e[key]['url']!r} does not point at region {slug}'s {key} droplet",
                doc.value_ref("endpoints", key, "url"), path=f"$.endpoints.{key}.url",
                expected=f"http://{want[1]}:{port} ({what}, the droplet the region's Terraform creates)"))
    vector = e["vector"]
    if (str(vector["host"]).lower().rstrip("."), int(vector["port"])) != (fqdn("vector", slug), VECTOR_FLUENT_PORT):
        errors.append(InputError(
            f"Vector endpoint {vector['host']}:{vector['port']} does not point at region {slug}'s aggregator droplet",
            doc.value_ref("endpoints", "vector", "host"), path="$.endpoints.vector",
            expected=f"host {fqdn('vector', slug)}, port {VECTOR_FLUENT_PORT}"))
    return errors
