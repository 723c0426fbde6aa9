"""The regional telemetry tier, checked with the real tools (see fleet.tier.checks).

Per region with a `tier:` block: cloud-init schema, HCL parse and Terraform cross-references,
Vector sink fields against the ClickHouse tables, the mutual-TLS contract between the aggregator
and every cluster's Fluent Bit in the region (and vmagent's write URL), the ClickHouse DDL in
chdb, every VRL program through the real compiler (when tools/vrl-check is built), and the GDPR
proof of each droplet's self-monitoring agent (the same proof as the clusters' Alloy).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Iterator

from .. import upstream
from ..cache import ResultCache, digest
from ..errors import Finding, Severity, SourceRef
from ..relabel.proof import persisted, prove
from ..render.wiring import wired_values
from ..tier import checks as tc
from ..tier.model import VECTOR_FLUENT_PORT, Tier, tier_of
from ..tier.render import REGIONAL_RELABEL
from . import CheckContext
from .gdpr import _leak_source, _message, _policy, platform_paths

NAME = "regional-tier"
DESCRIPTION = "regional tier: cloud-init schema, HCL, Vector ↔ ClickHouse fields, mTLS with clusters, chdb DDL, VRL, GDPR proof of droplet agents"
ORDER = 50
SCOPE = "cluster"


def _tiers(ctx: CheckContext) -> Iterator[Tier]:
    raw = getattr(ctx.fleet, "raw", None)
    for _slug, doc in sorted((raw.regions if raw else {}).items()):
        tier = tier_of(doc.data, doc.name)
        if tier is not None:
            yield tier


def _regions_without_tier(ctx: CheckContext) -> Iterator[Finding]:
    """A region without `tier:` renders no stores: its endpoints point at droplets nothing creates."""
    raw = getattr(ctx.fleet, "raw", None)
    for slug, doc in sorted((raw.regions if raw else {}).items()):
        if "tier" not in doc.data:
            yield Finding(NAME, Severity.WARNING, doc.value_ref("region"),
                          f"region {slug} has no tier: block; its telemetry tier is not rendered or checked",
                          hint="add tier: {controlPlaneCidr: ...} (README: Add a region)")


def _finding(p: tc.Problem, hint: str = "") -> Finding:
    return Finding(NAME, Severity(p.severity), SourceRef(p.file, p.line), p.message, hint=hint)


#: Cached results are keyed by the checking code too: a changed check re-checks everything.
_CODE = digest(Path(tc.__file__).read_bytes(), Path(__file__).read_bytes())


def _cached(cache: ResultCache, key: str, compute) -> list[tc.Problem]:
    raw = cache.get_or_compute(digest(_CODE, key), lambda: [[p.file, p.line, p.message, p.severity] for p in compute()])
    return [tc.Problem(*p) for p in raw]


#: What the region-level part reads (the rest is each cluster's contract with its region's tier):
#: a `lint --changed` narrowed to some clusters runs that part only when one of these changed.
REGION_READS = ("regions/*", "rendered/regions/*", "overlays/*")


def check(ctx: CheckContext) -> Iterable[Finding]:
    cache = ResultCache(ctx.root, "regional-tier")
    region_level = ctx.clusters is None or ctx.changed_any(REGION_READS)
    if region_level:
        yield from _regions_without_tier(ctx)
    try:
        with persisted(ctx.root):
            for tier in _tiers(ctx):
                yield from _check_region(ctx, tier, cache, region_level)
    finally:
        cache.save()


def _check_region(ctx: CheckContext, tier: Tier, cache: ResultCache, region_level: bool = True) -> Iterator[Finding]:
    folder = ctx.rendered / "regions" / tier.region
    rel = f"rendered/regions/{tier.region}"
    if not (folder / "vector" / "vector.yaml").is_file():
        if region_level:
            yield Finding(NAME, Severity.ERROR, SourceRef(tier.source), f"region {tier.region}: tier not rendered",
                          hint="run fleet render")
        return
    if not region_level:
        vector_text = (folder / "vector" / "vector.yaml").read_text(encoding="utf-8")
        yield from _cluster_contract(ctx, tier, tc.load_yaml(vector_text, f"{rel}/vector/vector.yaml"))
        return
    for path in sorted((folder / "cloud-init").glob("*.yml")):
        key = digest("cloud-init", path.read_bytes())
        for p in _cached(cache, key, lambda: tc.cloud_init_problems(path, f"{rel}/cloud-init/{path.name}")):
            yield _finding(p)
    tf = folder / "terraform"
    tf_key = digest("terraform", *[p.read_bytes() for p in sorted(tf.glob("*.tf"))],
                    *[p.read_bytes() for p in sorted((folder / "cloud-init").glob("*.yml"))])
    for p in _cached(cache, tf_key, lambda: tc.terraform_problems(tf, f"{rel}/terraform")):
        yield _finding(p)
    yield from _tofu_fmt(tf, f"{rel}/terraform", cache)
    vector_text = (folder / "vector" / "vector.yaml").read_text(encoding="utf-8")
    vector_name = f"{rel}/vector/vector.yaml"
    config = tc.load_yaml(vector_text, vector_name)
    for p in tc.vector_problems(config, vector_text, vector_name) + tc.mtls_problems(config, vector_text, vector_name):
        yield _finding(p)
    yield from _cluster_contract(ctx, tier, config)
    schema, access = (folder / "clickhouse" / "schema.sql").read_text(), (folder / "clickhouse" / "access.sql").read_text()
    for p in _cached(cache, digest("chdb", schema, access),
                     lambda: tc.clickhouse_problems(schema, access, f"{rel}/clickhouse/schema.sql", f"{rel}/clickhouse/access.sql")):
        yield _finding(p)
    yield from _vrl(ctx, config, vector_text, vector_name, cache)
    yield from _agents(ctx, folder, rel)


def _tofu_fmt(folder: Path, rel: str, cache: ResultCache) -> Iterator[Finding]:
    try:
        tofu = upstream.binary("tofu")
    except upstream.MissingUpstream as exc:
        if os.environ.get("CI", "").lower() == "true":  # never skipped silently in CI
            yield Finding(NAME, Severity.ERROR, SourceRef("tools/upstream.lock"),
                          f"rendered Terraform not checked by OpenTofu: {exc}", hint="run `make setup`")
        return
    stat = Path(tofu).stat()
    key = digest("tofu-fmt", f"{stat.st_size}:{stat.st_mtime_ns}", *[p.read_bytes() for p in sorted(folder.glob("*.tf"))])
    for p in _cached(cache, key, lambda: tc.tofu_fmt_problems(tofu, folder, rel)):
        yield _finding(p, hint="" if p.severity == "error" else "align base/tier/*.tf.j2 with `tofu fmt`")


def _cluster_contract(ctx: CheckContext, tier: Tier, config: dict) -> Iterator[Finding]:
    """Every cluster of the region forwards logs to this aggregator with a client certificate,
    and writes metrics to this region's vmauth."""
    found = tc.fluent_source(config)
    listen = int(str(found[1].get("address", "")).rpartition(":")[2] or 0) if found else VECTOR_FLUENT_PORT
    host = tier.droplet("vector").fqdn
    for cluster in sorted(ctx.fleet.clusters.values(), key=lambda c: c.id):
        if cluster.region.slug != tier.region:
            continue
        fb = cluster.components.get("fluent-bit")
        if fb is not None:
            values = wired_values(ctx, cluster, fb)
            outputs = str((values.get("config") or {}).get("outputs") or "")
            for message in tc.cluster_forward_problems(outputs, host, cluster.region.vector_port, listen):
                yield Finding(NAME, Severity.ERROR, fb.source_of("values", "config", "outputs")
                              or SourceRef("base/components/fluent-bit/outputs.conf.j2"),
                              f"cluster {cluster.id}: {message}", hint="Fluent Bit must reach the region's Vector with mutual TLS")
        expected = tier.victoria_metrics_url + "/api/v1/write"
        if cluster.region.remote_write_url != expected:
            yield Finding(NAME, Severity.ERROR, SourceRef(cluster.region.source),
                          f"cluster {cluster.id}: vmagent writes to {cluster.region.remote_write_url}, not {expected}")


def _vrl(ctx: CheckContext, config: dict, text: str, name: str, cache: ResultCache) -> Iterator[Finding]:
    binary = tc.vrl_binary(ctx.root)
    if binary is None:
        if os.environ.get("CI", "").lower() == "true":  # never skipped silently in CI
            yield Finding(NAME, Severity.ERROR, SourceRef(name), "VRL not compiled: tools/vrl-check is not built",
                          hint="make vrl-check")
        return
    stat = binary.stat()
    build = f"{stat.st_size}:{stat.st_mtime_ns}"  # a rebuilt compiler re-checks every program
    for component, program in tc.vrl_programs(config):
        error = cache.get_or_compute(digest("vrl", build, program),
                                     lambda: tc.vrl_compile(binary, program))
        if error:
            yield Finding(NAME, Severity.ERROR, SourceRef(name, tc.line_of(text, f"  {component.split('.')[0]}:")),
                          f"VRL of {component} does not compile: {error}")


def _agents(ctx: CheckContext, folder: Path, rel: str) -> Iterator[Finding]:
    """Each droplet's Alloy config through the GDPR proof (the clusters' proof, same policy). A leak
    no rule causes is reported at the gate, base/relabel/regional.yaml, where the fix goes."""
    policy = _policy(ctx)
    for path in sorted((folder / "alloy").glob("*.alloy")):
        name = f"{rel}/alloy/{path.name}"
        paths = platform_paths(path.read_text(encoding="utf-8"), name, policy, [])
        if not any(p.external for p in paths):
            yield Finding(NAME, Severity.ERROR, SourceRef(name), "the droplet's agent sends nothing to Grafana Cloud")
        for p in paths:
            if not p.external:
                continue
            for leak in prove(p.pipeline, policy):
                yield Finding(NAME, Severity.ERROR, _leak_source(leak, SourceRef(REGIONAL_RELABEL)),
                              f"{_message(leak)} ({name})", hint="drop it in base/relabel/regional.yaml",
                              details={"file": name, **leak.to_json()})
