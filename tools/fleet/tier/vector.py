"""The region's Vector aggregator config (data → YAML): Fluent Bit forward in, ClickHouse out.

* `fluent` source with mutual TLS: Vector's fluent source has no shared-key auth, and a server's
  `verify_certificate` defaults to false, so it is set: a client without a certificate signed by
  the region's log CA is refused.
* `route`: Shuttle's billing audit events (namespace starform-system, app shuttle, `audit:
  billing`) go to billing_audit; everything else to logs.
* `remap` programs build each row as one object literal whose keys are the table's columns
  (the `regional-tier` check compares them; the chdb test inserts what they produce).
* `clickhouse` sinks with end-to-end acknowledgements (the fluent source acks a Fluent Bit chunk
  only after ClickHouse took it) and a disk buffer on the droplet's data volume.
"""
from __future__ import annotations

from .clickhouse import BILLING_AUDIT, LOGS, Table
from .model import DATABASE, VECTOR_FLUENT_PORT, VECTOR_METRICS_PORT, Tier

DATA_DIR = "/var/lib/vector"
TLS_DIR = "/etc/vector/tls"
CONFIG_PATH = "/etc/vector/vector.yaml"
#: Vector's disk buffer minimum (lib/vector-buffers/src/config.rs).
MIN_DISK_BUFFER = 268435488
#: Share of the data volume each ClickHouse sink's disk buffer may fill (two sinks: 80 % in all).
BUFFER_SHARE = 0.4

BILLING_ROUTE = (
    '.kubernetes.namespace_name == "starform-system" && '
    '.kubernetes.labels."app.kubernetes.io/name" == "shuttle" && '
    '.audit == "billing"'
)

LOGS_VRL = """\
# One customer log record (Fluent Bit tail + kubernetes filter, Merge_Log On) → one logs row.
k = object(del(.kubernetes)) ?? {}
labels = object(k.labels) ?? {}
project_id = string(labels."starform.io/project-id") ?? ""
if project_id == "" {
  # Not a customer pod: platform logs carry no tenant and are not stored here.
  abort
}
ts = del(.timestamp)
ts = timestamp(ts) ?? parse_timestamp(string(ts) ?? "", format: "%+") ?? now()
stream = string(del(.stream)) ?? ""
del(.tag)
del(.host)
message = if exists(.log) { string(.log) ?? encode_json(.log) } else { encode_json(.) }
. = {
  "project_id": project_id,
  "service_id": string(labels."starform.io/service-id") ?? "",
  "workspace_id": string(labels."starform.io/workspace-id") ?? "",
  "timestamp": format_timestamp!(ts, format: "%Y-%m-%d %H:%M:%S%.9f", timezone: "UTC"),
  "namespace": string(k.namespace_name) ?? "",
  "pod": string(k.pod_name) ?? "",
  "container": string(k.container_name) ?? "",
  "stream": stream,
  "message": message
}
"""

BILLING_VRL = """\
# One Shuttle billing audit event (a JSON log line, merged by Fluent Bit) → one billing_audit row.
# Never dropped: an event without a tenant is stored with an empty project_id for review.
del(.kubernetes)
ts = del(.timestamp)
ts = timestamp(ts) ?? parse_timestamp(string(ts) ?? "", format: "%+") ?? now()
host = string(del(.host)) ?? ""
del(.tag)
del(.stream)
. = {
  "project_id": string(.project_id) ?? "",
  "workspace_id": string(.workspace_id) ?? "",
  "timestamp": format_timestamp!(ts, format: "%Y-%m-%d %H:%M:%S%.3f", timezone: "UTC"),
  "event": string(.event) ?? "unknown",
  "host": host,
  "record": encode_json(.)
}
"""

#: remap transform → (its VRL, the table its sink writes).
PROGRAMS: dict[str, tuple[str, Table]] = {
    "logs_row": (LOGS_VRL, LOGS),
    "billing_audit_row": (BILLING_VRL, BILLING_AUDIT),
}


def buffer_bytes(tier: Tier) -> int:
    gib = tier.droplet("vector").volume_gib
    return max(MIN_DISK_BUFFER, int(gib * BUFFER_SHARE * 1024 ** 3))


def _sink(tier: Tier, transform: str, table: Table) -> dict:
    return {
        "type": "clickhouse",
        "inputs": [transform],
        "endpoint": tier.clickhouse_url,
        "database": DATABASE,
        "table": table.name,
        # A field the table lacks is an error, not silently dropped (lint checks them statically).
        "skip_unknown_fields": False,
        "auth": {"strategy": "basic", "user": "vector", "password": "${CLICKHOUSE_PASSWORD}"},
        "acknowledgements": {"enabled": True},
        "buffer": {"type": "disk", "max_size": buffer_bytes(tier), "when_full": "block"},
    }


def config(tier: Tier) -> dict:
    """The aggregator's whole config as data (rendered as YAML)."""
    return {
        "data_dir": DATA_DIR,
        "sources": {
            "fluent_bit": {
                "type": "fluent",
                "address": f"0.0.0.0:{VECTOR_FLUENT_PORT}",
                "tls": {
                    "enabled": True,
                    "ca_file": f"{TLS_DIR}/ca.crt",
                    "crt_file": f"{TLS_DIR}/tls.crt",
                    "key_file": f"{TLS_DIR}/tls.key",
                    "verify_certificate": True,
                },
            },
            "vector_metrics": {"type": "internal_metrics"},
        },
        "transforms": {
            "audit_route": {"type": "route", "inputs": ["fluent_bit"], "route": {"billing": BILLING_ROUTE}},
            "logs_row": {"type": "remap", "inputs": ["audit_route._unmatched"], "source": LOGS_VRL},
            "billing_audit_row": {"type": "remap", "inputs": ["audit_route.billing"], "source": BILLING_VRL},
        },
        "sinks": {
            "clickhouse_logs": _sink(tier, "logs_row", LOGS),
            "clickhouse_billing_audit": _sink(tier, "billing_audit_row", BILLING_AUDIT),
            "self_metrics": {"type": "prometheus_exporter", "inputs": ["vector_metrics"],
                             "address": f"127.0.0.1:{VECTOR_METRICS_PORT}"},
        },
    }
