"""Render one region's telemetry tier into rendered/regions/<region>/ ({path: text}).

terraform/         main.tf, variables.tf (OpenTofu; Jinja2, base/tier/*.tf.j2)
cloud-init/        clickhouse.yml, vmstorage.yml, vector.yml (#cloud-config; Terraform templatefile()s)
clickhouse/        schema.sql (tables), access.sql (users, grants, row policies)
vector/            vector.yaml (the aggregator's config, as it runs)
victoria-metrics/  vmauth.yaml, the store's flags
alloy/             <droplet>.alloy: each droplet's self-monitoring agent (GDPR-proved by lint)
The vmalert rules (rendered/regions/<region>/vmalert/, fleet.rules.render) are shipped inside
vmstorage.yml. Text targets are Jinja2 templates; YAML documents are data dumped by yamlio.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import yamlio
from ..errors import InputError
from ..render.alloy import rule_attrs
from ..render.templates import _environment, render_template
from . import clickhouse, vector
from .model import (CLICKHOUSE_HTTP_PORT, CLICKHOUSE_METRICS_PORT, VECTOR_FLUENT_PORT, VECTOR_METRICS_PORT,
                    VICTORIA_METRICS_PORT, VMALERT_PORT, VMAUTH_PORT, VMAUTH_READ_USER, VMAUTH_WRITE_PATHS,
                    VMAUTH_WRITE_USER, Droplet, Tier)

TEMPLATES = Path("base/tier")
REGIONAL_RELABEL = "base/relabel/regional.yaml"
VERSIONS = {"provider": "2.99", "vector": "0.57.0", "victoria_metrics": "1.150.0"}
PORTS = {"clickhouse_http": CLICKHOUSE_HTTP_PORT, "clickhouse_metrics": CLICKHOUSE_METRICS_PORT}
MOUNTS = {"clickhouse": "/var/lib/clickhouse", "victoriaMetrics": "/var/lib/victoria-metrics", "vector": "/var/lib/vector"}
DESCRIPTIONS = {"clickhouse": "ClickHouse", "victoriaMetrics": "VictoriaMetrics", "vector": "Vector aggregator"}

#: Each droplet's self-monitoring scrape jobs: (job, loopback address, path). The job names are
#: the `job` labels of the platform alerts in base/rules/alerts/ (ClickHouseDown, …).
AGENT_JOBS = {
    "clickhouse": [("clickhouse", f"127.0.0.1:{CLICKHOUSE_METRICS_PORT}", "/metrics")],
    "victoriaMetrics": [("victoriametrics", f"127.0.0.1:{VICTORIA_METRICS_PORT}", "/metrics"),
                        ("customer-rules", f"127.0.0.1:{VICTORIA_METRICS_PORT}", "/federate")],
    "vector": [("vector", f"127.0.0.1:{VECTOR_METRICS_PORT}", "/metrics")],
}
#: Query parameters of a job's scrape. `customer-rules` federates, from the region's store, the
#: `cluster:` customer recording rules: the platform's view of the customer plane, per cluster
#: and region only (rules-project-id holds them to that), e.g. the unattributed Envoy traffic
#: EnvoyTrafficUnattributed alerts on. Every series still passes the GDPR gate.
AGENT_JOB_PARAMS = {"customer-rules": {"match[]": ['{__name__=~"cluster:.+"}']}}


def tf_escape(text: str) -> str:
    """Text Terraform's templatefile() must pass through unchanged: `${` → `$${`, `%{` → `%%{`."""
    return text.replace("${", "$${").replace("%{", "%%{")


def tf_unescape(text: str) -> str:
    """What templatefile() makes of tf_escape's output (for checks that read the embedded files)."""
    return text.replace("$${", "${").replace("%%{", "%{")


def _render(root: Path, name: str, **context: object) -> str:
    """Render base/tier/<name>; the `tf` filter is registered on that folder's (cached) environment."""
    env = _environment(str(root / TEMPLATES))
    env.filters.setdefault("tf", tf_escape)
    return render_template(root, (TEMPLATES / name).as_posix(), **context)


@dataclass(frozen=True)
class InboundRule:
    port: int
    why: str
    addresses: tuple[str, ...] = ()
    droplets: tuple[str, ...] = ()


@dataclass(frozen=True)
class DropletView:
    """What the Terraform template needs of one droplet."""

    d: Droplet
    volume_name: str
    mount: str
    description: str
    template_vars: list[tuple[str, str]]
    inbound: list[InboundRule]

    def __getattr__(self, name: str):
        return getattr(self.d, name)


def volume_name(tier: Tier, d: Droplet) -> str:
    return f"{d.name}-{tier.region}-data"


def _common_vars(resource: str) -> list[tuple[str, str]]:
    return [("grafana_cloud_username", "var.grafana_cloud_username"),
            ("grafana_cloud_password", "var.grafana_cloud_password"),
            ("snapshot_api_token", "var.snapshot_api_token"),
            ("volume_id", f"digitalocean_volume.{resource}.id")]


def droplet_views(tier: Tier) -> list[DropletView]:
    vpc, cp = tier.vpc_cidr, tier.control_plane_cidr
    ch, vm, vec = (tier.droplet(k) for k in ("clickhouse", "victoriaMetrics", "vector"))
    specific = {
        "clickhouse": ([("admin_password", "var.clickhouse_admin_password"),
                        ("admin_password_sha256", "sha256(var.clickhouse_admin_password)")],
                       [InboundRule(CLICKHOUSE_HTTP_PORT, "ingest: the region's Vector aggregator only (in the VPC)",
                                    droplets=(f"digitalocean_droplet.{vec.role.resource}.id",)),
                        InboundRule(CLICKHOUSE_HTTP_PORT, "reads: the control plane's peering range only", addresses=(cp,))]),
        "victoriaMetrics": ([("vmauth_control_plane_password", "var.vmauth_control_plane_password"),
                             ("vmauth_vmagent_password", "var.vmauth_vmagent_password")],
                            [InboundRule(VMAUTH_PORT, "ingest (vmauth user vmagent → /api/v1/write): the region's VPC only",
                                         addresses=(vpc,)),
                             InboundRule(VMAUTH_PORT, "reads (vmauth, authenticated): the control plane's peering range only",
                                         addresses=(cp,))]),
        "vector": ([("clickhouse_vector_password", "var.clickhouse_vector_password"),
                    ("log_ca_pem", "var.log_ca_pem"),
                    ("vector_tls_crt_pem", "var.vector_tls_crt_pem"),
                    ("vector_tls_key_pem", "var.vector_tls_key_pem")],
                   [InboundRule(VECTOR_FLUENT_PORT, "ingest (Fluent Bit forward, mutual TLS): the region's VPC only",
                                addresses=(vpc,))]),
    }
    views = []
    for d in (ch, vm, vec):
        extra, inbound = specific[d.role.key]
        if d.role.key == "clickhouse":
            extra = extra + [("vector_password_sha256", "sha256(var.clickhouse_vector_password)"),
                             ("control_plane_password_sha256", "sha256(var.clickhouse_control_plane_password)")]
        views.append(DropletView(d, volume_name(tier, d), MOUNTS[d.role.key], DESCRIPTIONS[d.role.key],
                                 sorted(_common_vars(d.role.resource) + extra), inbound))
    return views


_PASSWORD = ('can(regex("^[A-Za-z0-9_-]{24,}$", var.{name}))',
             "At least 24 characters of A-Z, a-z, 0-9, _ and -.")
_PEM = ('can(regex("-----BEGIN ", var.{name}))', "A PEM document.")


def variables() -> list[dict]:
    def var(name, description, type_="string", default=None, sensitive=False, validation=None):
        check = (validation[0].replace("{name}", name), validation[1]) if validation else None
        return {"name": name, "description": description, "type": type_, "default": default,
                "sensitive": sensitive, "validation": check}
    return [
        var("droplet_image", "Droplet image of every telemetry droplet", default='"debian-12-x64"'),
        var("ssh_key_ids", "SSH key IDs or fingerprints installed for the default user (no SSH port is open: use the DigitalOcean console or open it deliberately)",
            "list(string)", default="[]"),
        var("clickhouse_admin_password", "ClickHouse admin (`default`, loopback only)", sensitive=True, validation=_PASSWORD),
        var("clickhouse_vector_password", "ClickHouse user `vector` (insert only)", sensitive=True, validation=_PASSWORD),
        var("clickhouse_control_plane_password", "ClickHouse user `control_plane` (read only, row policy per tenant)",
            sensitive=True, validation=_PASSWORD),
        var("vmauth_control_plane_password", "vmauth user `control-plane` (VictoriaMetrics reads)", sensitive=True,
            validation=_PASSWORD),
        var("vmauth_vmagent_password", "vmauth user `vmagent` (VictoriaMetrics writes; every cluster's Secret "
            "starform-metrics/vmagent-remote-write holds it)", sensitive=True, validation=_PASSWORD),
        var("log_ca_pem", "The region's log CA certificate: it signs every cluster's Fluent Bit client certificate "
            "(Secret fluent-bit-forward-tls) and the aggregator's server certificate", validation=_PEM),
        var("vector_tls_crt_pem", "The aggregator's server certificate (signed by the log CA)", validation=_PEM),
        var("vector_tls_key_pem", "The aggregator's private key", sensitive=True, validation=_PEM),
        var("grafana_cloud_username", "Grafana Cloud metrics user (self-monitoring remote write)", sensitive=True),
        var("grafana_cloud_password", "Grafana Cloud access token (self-monitoring remote write)", sensitive=True),
        var("snapshot_api_token", "DigitalOcean token for the daily volume snapshots (block storage scopes only)",
            sensitive=True),
    ]


def vmauth_config() -> dict:
    """vmauth, the only VictoriaMetrics port open to the VPC (which other tenants' droplets share):
    no unauthorized_user, so every request needs a user. Clusters' vmagent may only write, the
    control plane may only read. Passwords are vmauth's %{ENV} placeholders (vmauth.env)."""
    store = f"http://127.0.0.1:{VICTORIA_METRICS_PORT}"
    return {
        "users": [{
            "username": VMAUTH_WRITE_USER,
            "password": "%{VMAUTH_VMAGENT_PASSWORD}",
            "url_map": [{"src_paths": list(VMAUTH_WRITE_PATHS), "url_prefix": store}],
        }, {
            "username": VMAUTH_READ_USER,
            "password": "%{VMAUTH_CONTROL_PLANE_PASSWORD}",
            "url_map": [{"src_paths": ["/api/v1/query", "/api/v1/query_range", "/api/v1/series", "/api/v1/labels",
                                       "/api/v1/label/[^/]+/values", "/api/v1/status/buildinfo"],
                         "url_prefix": store}],
        }],
    }


def store_flags(tier: Tier) -> list[str]:
    return [
        "-storageDataPath=/var/lib/victoria-metrics",
        f"-retentionPeriod={tier.retention_days}d",
        f"-dedup.minScrapeInterval={tier.dedup_interval_seconds}s",
        f"-httpListenAddr=127.0.0.1:{VICTORIA_METRICS_PORT}",
    ]


def vmalert_flags(flags_text: str) -> list[str]:
    """The flags of rendered vmalert.flags (comments dropped), plus vmalert's own listen address."""
    flags = [line.strip() for line in flags_text.splitlines() if line.strip() and not line.startswith("#")]
    return flags + [f"-httpListenAddr=127.0.0.1:{VMALERT_PORT}"]


def _unit(name: str, description: str, exec_start: list[str], after: str = "", env_file: str = "",
          mounts: str = "") -> dict:
    lines = ["[Unit]", f"Description={description}", "Wants=network-online.target",
             "After=network-online.target" + (f" {after}" if after else "")]
    if mounts:
        lines.append(f"RequiresMountsFor={mounts}")
    lines += ["[Service]", "User=victoriametrics", "Restart=always", "LimitNOFILE=1048576"]
    if env_file:
        lines.append(f"EnvironmentFile={env_file}")
    lines.append("ExecStart=" + " \\\n    ".join(exec_start))
    lines += ["[Install]", "WantedBy=multi-user.target"]
    return {"name": name, "text": "\n".join(lines) + "\n"}


def vm_units(tier: Tier, flags_text: str) -> list[dict]:
    return [
        _unit("victoria-metrics.service", "VictoriaMetrics single-node (loopback only)",
              ["/usr/local/bin/victoria-metrics-prod"] + store_flags(tier), mounts="/var/lib/victoria-metrics"),
        _unit("vmauth.service", "vmauth: authentication in front of VictoriaMetrics",
              ["/usr/local/bin/vmauth-prod", "-auth.config=/etc/starform/vmauth.yaml",
               f"-httpListenAddr=0.0.0.0:{VMAUTH_PORT}"], after="victoria-metrics.service",
              env_file="/etc/starform/vmauth.env"),
        _unit("vmalert.service", "vmalert: the region's customer recording rules",
              ["/usr/local/bin/vmalert-prod"] + vmalert_flags(flags_text), after="victoria-metrics.service"),
    ]


def snapshot_script() -> str:
    return """#!/bin/sh
# Snapshot this droplet's data volume (DigitalOcean API) and keep the newest $KEEP snapshots.
# Run daily by starform-volume-snapshot.timer; reads DO_TOKEN, VOLUME_ID, VOLUME_NAME, KEEP.
set -eu
api=https://api.digitalocean.com/v2
auth="Authorization: Bearer $DO_TOKEN"
name="$VOLUME_NAME-$(date -u +%Y%m%dt%H%M%Sz)"
sync
curl -fsS -X POST -H "$auth" -H "Content-Type: application/json" \\
  -d "{\\"name\\": \\"$name\\", \\"tags\\": [\\"starform-telemetry\\"]}" "$api/volumes/$VOLUME_ID/snapshots" >/dev/null
curl -fsS -H "$auth" "$api/volumes/$VOLUME_ID/snapshots?per_page=200" \\
  | jq -r --argjson keep "$KEEP" '.snapshots | sort_by(.created_at) | reverse | .[$keep:][] | .id' \\
  | while read -r id; do curl -fsS -X DELETE -H "$auth" "$api/snapshots/$id"; done
"""


def regional_rules(root: Path) -> list:
    """base/relabel/regional.yaml as (source, Alloy attributes) pairs, each at its line."""
    ix = yamlio.load_indexed_file(root / REGIONAL_RELABEL, REGIONAL_RELABEL)
    if not isinstance(ix.data, list):
        raise InputError("a relabel rule set must be a YAML list of rules", None, expected=REGIONAL_RELABEL)
    from ..merge import from_indexed
    layered = from_indexed(ix)
    out = []
    for i, rule in enumerate(ix.data):
        source = layered.source_of((i,))
        out.append({"source": source, "attrs": rule_attrs(rule, str(source))})
    return out


def agent_configs(root: Path, tier: Tier, header: str, remote_write_url: str) -> dict[str, str]:
    rules = regional_rules(root)
    out = {}
    for key, jobs in AGENT_JOBS.items():
        d = tier.droplet(key)
        out[key] = render_template(root, (TEMPLATES / "agent.alloy.j2").as_posix(), header=header, tier=tier,
                                   droplet=d, rules=rules, remote_write_url=remote_write_url,
                                   jobs=[{"job": j, "address": a, "path": p, "params": AGENT_JOB_PARAMS.get(j)}
                                         for j, a, p in jobs])
    return out


def render_tier(root: Path, tier: Tier, settings: dict, vmalert_files: dict[str, str]) -> dict[str, str]:
    """{path under rendered/regions/<region>/: text} of the tier (vmalert/ is rendered elsewhere)."""
    sources = [tier.source]
    hash_header = f"# generated by fleet render — do not edit; source: {', '.join(sources)}"
    header_line = hash_header[2:]
    files: dict[str, str] = {}
    files["clickhouse/schema.sql"] = clickhouse.schema_sql(tier, f"-- {header_line}\n")
    files["clickhouse/access.sql"] = clickhouse.access_sql(tier, f"-- {header_line}\n")
    vector_yaml = yamlio.dump(vector.config(tier), hash_header + "\n")
    files["vector/vector.yaml"] = vector_yaml
    vmauth_yaml = yamlio.dump(vmauth_config(), hash_header + "\n")
    files["victoria-metrics/vmauth.yaml"] = vmauth_yaml
    files["victoria-metrics/victoria-metrics.flags"] = hash_header + "\n" + "\n".join(store_flags(tier)) + "\n"
    agents = agent_configs(root, tier, f"generated by fleet render — do not edit; source: {tier.source}, {REGIONAL_RELABEL}",
                           settings["platformMonitoring"]["remoteWriteUrl"])
    for key, text in agents.items():
        files[f"alloy/{tier.droplet(key).name}.alloy"] = text
    rules = sorted((Path(p).name, t) for p, t in vmalert_files.items() if p.startswith("rules/"))
    flags_text = vmalert_files.get("vmalert.flags", "")
    context = dict(tier=tier, header=hash_header, ports=PORTS, versions=VERSIONS, agents=agents,
                   snapshot_script=snapshot_script())
    files["cloud-init/clickhouse.yml"] = _render(root, "clickhouse.yml.j2", schema_sql=files["clickhouse/schema.sql"],
                                                 access_sql=files["clickhouse/access.sql"], **context)
    files["cloud-init/vector.yml"] = _render(root, "vector.yml.j2", vector_yaml=vector_yaml, **context)
    files["cloud-init/vmstorage.yml"] = _render(root, "vmstorage.yml.j2", vmauth_yaml=vmauth_yaml, vmalert_rules=rules,
                                                units=vm_units(tier, flags_text), **context)
    files["terraform/main.tf"] = _render(root, "main.tf.j2", header=hash_header, tier=tier, versions=VERSIONS,
                                         droplets=droplet_views(tier))
    files["terraform/variables.tf"] = _render(root, "variables.tf.j2", header=hash_header, tier=tier,
                                              variables=variables())
    return files
