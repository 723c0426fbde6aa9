"""ClickHouse of one region: the table DDL and, in a separate file, users, roles, grants and row policies.

The tables are data (`TABLES`): the DDL is rendered from them, and the Vector check compares
the fields each sink writes against them. The tenant is `project_id`: every ORDER BY starts with
it, so a tenant's rows are contiguous and the control plane's tenant filter reads only them.
"""
from __future__ import annotations

from dataclasses import dataclass

from .model import DATABASE, Tier

#: The custom setting the control plane's telemetry broker sets on every query
#: (`SETTINGS SQL_project_id = '…'`); the row policy compares the tenant column with it.
#: `SQL_` is ClickHouse's default `custom_settings_prefixes`; an unset setting fails the query.
TENANT_SETTING = "SQL_project_id"
TENANT_COLUMN = "project_id"


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    codec: str = ""
    comment: str = ""


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    order_by: tuple[str, ...]
    partition_by: str
    ttl_column: str
    comment: str

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


LOGS = Table(
    "logs",
    (
        Column("project_id", "LowCardinality(String)", comment="tenant: pod label starform.io/project-id"),
        Column("service_id", "LowCardinality(String)", comment="pod label starform.io/service-id"),
        Column("workspace_id", "LowCardinality(String)", comment="pod label starform.io/workspace-id"),
        Column("timestamp", "DateTime64(9, 'UTC')", "CODEC(Delta, ZSTD(1))", "the record's time (Fluent Bit)"),
        Column("namespace", "LowCardinality(String)"),
        Column("pod", "String"),
        Column("container", "LowCardinality(String)"),
        Column("stream", "LowCardinality(String)", comment="stdout or stderr"),
        Column("message", "String", "CODEC(ZSTD(3))", "the log line, or the merged JSON record"),
    ),
    order_by=("project_id", "service_id", "timestamp"),
    partition_by="toDate(timestamp)",
    ttl_column="timestamp",
    comment="Customer container logs (Fluent Bit → Vector); written only by Vector",
)

BILLING_AUDIT = Table(
    "billing_audit",
    (
        Column("project_id", "LowCardinality(String)", comment="tenant"),
        Column("workspace_id", "LowCardinality(String)"),
        Column("timestamp", "DateTime64(3, 'UTC')", "CODEC(Delta, ZSTD(1))"),
        Column("event", "LowCardinality(String)", comment="the audit event's kind"),
        Column("host", "LowCardinality(String)", comment="the Fluent Bit peer that forwarded it"),
        Column("record", "String", "CODEC(ZSTD(3))", "the audit event as Shuttle wrote it (JSON), verbatim"),
    ),
    order_by=("project_id", "timestamp"),
    partition_by="toYYYYMM(timestamp)",
    ttl_column="timestamp",
    comment="Billing audit trail (Shuttle's audit events, routed by Vector); append-only",
)

TABLES = (LOGS, BILLING_AUDIT)


def ttl_days(tier: Tier, table: Table) -> int:
    return tier.logs_ttl_days if table is LOGS else tier.billing_audit_ttl_days


def _sql_str(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def table_ddl(table: Table, ttl: int, database: str = DATABASE) -> str:
    """CREATE TABLE for `table` with rows deleted `ttl` days after their timestamp."""
    width = max(len(c.name) for c in table.columns)
    cols = []
    for c in table.columns:
        parts = [f"    {c.name.ljust(width)} {c.type}"]
        if c.codec:
            parts.append(c.codec)
        if c.comment:
            parts.append(f"COMMENT {_sql_str(c.comment)}")
        cols.append(" ".join(parts))
    return (f"CREATE TABLE IF NOT EXISTS {database}.{table.name}\n(\n" + ",\n".join(cols) + "\n)\n"
            "ENGINE = MergeTree\n"
            f"PARTITION BY {table.partition_by}\n"
            f"ORDER BY ({', '.join(table.order_by)})\n"
            f"TTL toDateTime({table.ttl_column}) + INTERVAL {ttl} DAY DELETE\n"
            "SETTINGS ttl_only_drop_parts = 1\n"
            f"COMMENT {_sql_str(table.comment)};\n")


def schema_statements(tier: Tier) -> list[str]:
    """Every statement of the table DDL, in order (the chdb test runs exactly these)."""
    return [f"CREATE DATABASE IF NOT EXISTS {DATABASE};\n"] + [table_ddl(t, ttl_days(tier, t)) for t in TABLES]


def schema_sql(tier: Tier, header: str) -> str:
    return header + "\n".join(schema_statements(tier))


# Users and grants. Passwords never appear: `${…}` are placeholders Terraform's templatefile()
# fills with the SHA-256 of a sensitive variable when it renders the droplet's user data.
VECTOR_USER = "vector"
CONTROL_PLANE_USER = "control_plane"


def access_statements(tier: Tier) -> list[str]:
    """Roles, users, grants and row policies (SQL-driven access control)."""
    out = [
        "CREATE ROLE IF NOT EXISTS telemetry_writer;\n",
        *[f"GRANT INSERT ON {DATABASE}.{t.name} TO telemetry_writer;\n" for t in TABLES],
        "CREATE ROLE IF NOT EXISTS telemetry_reader;\n",
        *[f"GRANT SELECT ON {DATABASE}.{t.name} TO telemetry_reader;\n" for t in TABLES],
        # Vector: insert only, from the region's VPC only.
        f"CREATE USER IF NOT EXISTS {VECTOR_USER} IDENTIFIED WITH sha256_hash BY '${{vector_password_sha256}}' "
        f"HOST IP {_sql_str(tier.vpc_cidr)} DEFAULT DATABASE {DATABASE};\n",
        f"GRANT telemetry_writer TO {VECTOR_USER};\n",
        f"ALTER USER {VECTOR_USER} DEFAULT ROLE telemetry_writer;\n",
        # The control plane: read only (readonly = 2 lets it set the tenant setting, nothing writes),
        # from its peering range only.
        f"CREATE USER IF NOT EXISTS {CONTROL_PLANE_USER} IDENTIFIED WITH sha256_hash BY '${{control_plane_password_sha256}}' "
        f"HOST IP {_sql_str(tier.control_plane_cidr)} DEFAULT DATABASE {DATABASE} SETTINGS readonly = 2;\n",
        f"GRANT telemetry_reader TO {CONTROL_PLANE_USER};\n",
        f"ALTER USER {CONTROL_PLANE_USER} DEFAULT ROLE telemetry_reader;\n",
    ]
    # One row policy per table: the control plane sees only the tenant its query names.
    for t in TABLES:
        out.append(f"CREATE ROW POLICY IF NOT EXISTS tenant_isolation ON {DATABASE}.{t.name} "
                   f"USING {tenant_filter()} TO {CONTROL_PLANE_USER};\n")
    return out


def tenant_filter() -> str:
    """The row policy's condition; the control plane's broker sets the setting per query."""
    return f"{TENANT_COLUMN} = getSetting({_sql_str(TENANT_SETTING)})"


def access_sql(tier: Tier, header: str) -> str:
    return header + "".join(access_statements(tier))
