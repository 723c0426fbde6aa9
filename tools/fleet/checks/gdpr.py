"""GDPR: the platform path is proved safe, the customer path reaches only the cluster's region.

For every rendered cluster:
* `stages/03-telemetry/config.alloy` (Alloy → Grafana Cloud) is analysed by the relabel proof
  against `policies/gdpr-labeldrop.yaml`; every leak is a finding at the *source* rule
  (`// source: base/relabel/platform.yaml:N` comments), with the witness in `details`.
* `stages/03-telemetry/vmagent.yaml` (customer series): every `remoteWrite[].url` must be the
  cluster's own region VictoriaMetrics and never an external destination; its
  `urlRelabelConfig` must be valid vmagent relabeling.

Speed: configs of different clusters differ only in comments and external label values, so
parsed paths are cached by a normalised text hash and proofs by rule content (proof.py).
"""
from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable, Iterator

from .. import yamlio
from ..errors import Finding, InputError, Severity, SourceRef
from ..relabel import policy as pol
from ..relabel.engine import rule_from_mapping
from ..relabel.pipeline import PipelinePath, alloy_paths
from ..relabel.proof import Leak, persisted, prove
from . import CheckContext

NAME = "gdpr"
DESCRIPTION = "platform relabel pipeline proved free of customer identifiers; customer path stays in-region"
ORDER = 60
SCOPE = "cluster"

TELEMETRY = Path("stages") / "03-telemetry"
_EXTERNAL_LABELS = re.compile(
    r'external_labels\s*=\s*\{((?:\s*[A-Za-z_][A-Za-z0-9_]*\s*=\s*"[^"\\\n]*"\s*,?)*)\s*\}')
_PAIR = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"([^"\\\n]*)"')
_PLAIN_COMMENT = re.compile(r"^\s*//(?!\s*source:).*$", re.M)
_REGION_KEY = re.compile(r"^region:\s*(\S+)\s*(?:#.*)?$", re.M)
_PATHS_CACHE: dict[tuple[str, str], tuple[str, list[PipelinePath]]] = {}


def normalise(text: str) -> tuple[str, dict[str, str]]:
    """(cache key text, external label values): comments other than `// source:` and the values
    of a literal `external_labels` object do not change what the proof says."""
    values: dict[str, str] = {}
    conflict = False

    def blank(m: re.Match) -> str:
        nonlocal conflict
        for name, value in _PAIR.findall(m.group(1)):
            conflict = conflict or values.get(name, value) != value
            values[name] = value
        return "external_labels = {" + ",".join(sorted(n for n, _ in _PAIR.findall(m.group(1)))) + "}"

    # Comments go first: one inside `external_labels = {…}` would hide the values from the blanking
    # and make every cluster's config its own cache key. Removing them keeps line numbers.
    key = _EXTERNAL_LABELS.sub(blank, _PLAIN_COMMENT.sub("", text))
    if conflict:
        # One name with different values in different remote_write blocks: the values cannot be
        # put back by name, so this text is its own cache key.
        return text, {}
    return key, values


def platform_paths(text: str, name: str, policy: pol.Policy, in_region: list[str]) -> list[PipelinePath]:
    """Paths of one config.alloy, parsing once per normalised text."""
    return _platform_paths(text, name, policy, in_region)[1]


def _platform_paths(text: str, name: str, policy: pol.Policy,
                    in_region: list[str]) -> tuple[str, list[PipelinePath]]:
    """(the file the cached paths were parsed from, the paths): rules without a `// source:`
    comment keep that file in their source, and findings put `name` back (`_own_refs`)."""
    key_text, values = normalise(text)
    key = (hashlib.sha256((key_text + "\0" + "\0".join(in_region)).encode()).hexdigest(), policy.fingerprint)
    cached = _PATHS_CACHE.get(key)
    if cached is None:
        cached = _PATHS_CACHE[key] = (name, alloy_paths(text, name, policy, in_region))
        return cached
    parsed_from, paths = cached
    out = []
    for p in paths:
        labels = {k: values.get(k, v) for k, v in p.pipeline.external_labels.items()}
        out.append(replace(p, file=name, pipeline=replace(p.pipeline, external_labels=labels)))
    return parsed_from, out


def _own_refs(leak: Leak, parsed_from: str, name: str) -> Leak:
    """The leak with rule references into the file the paths were parsed from moved to `name`."""
    if parsed_from == name:
        return leak
    prefix = parsed_from + ":"
    return replace(leak, rules=[name + ":" + r[len(prefix):] if r.startswith(prefix) else r for r in leak.rules])


def _policy(ctx: CheckContext) -> pol.Policy:
    cached = ctx.cache.get("gdpr.policy")
    if cached is None:
        path = Path(ctx.options.get("gdpr_policy") or ctx.root / pol.DEFAULT_POLICY)
        cached = ctx.cache["gdpr.policy"] = pol.load_policy(path, _rel(ctx, path))
    return cached


def _rel(ctx: CheckContext, path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ctx.root.resolve()))
    except ValueError:
        return str(path)


def _region_url(ctx: CheckContext, cluster_id: str) -> tuple[str | None, str]:
    """(the region's VictoriaMetrics remote-write URL, the region file) for a cluster."""
    fleet = getattr(ctx, "fleet", None)
    cluster = getattr(fleet, "clusters", {}).get(cluster_id) if fleet is not None else None
    if cluster is not None:
        region = cluster.region
        return region.remote_write_url, region.source
    doc_path = ctx.root / "clusters" / cluster_id / "cluster.yaml"
    if not doc_path.is_file():
        return None, ""
    found = _REGION_KEY.search(yamlio.read_text(doc_path, _rel(ctx, doc_path)))
    slug = found.group(1).strip("'\"") if found else ""
    regions = ctx.cache.setdefault("gdpr.regions", {})
    if slug not in regions:
        region_path = ctx.root / "regions" / slug / "region.yaml"
        url = None
        if slug and region_path.is_file():
            url = yamlio.plain(yamlio.load_file(region_path))["endpoints"]["victoriaMetrics"]["url"]
        regions[slug] = ((str(url).rstrip("/") + "/api/v1/write") if url else None, _rel(ctx, region_path))
    return regions[slug]


def _leak_source(leak: Leak, fallback: SourceRef) -> SourceRef:
    """The first rule of the finding that points into a source tree (base/, overlays/, ...)."""
    refs = [r for r in leak.rules if not r.startswith("rendered/") and ":" in r] or leak.rules
    for r in refs:
        file, _, line = r.rpartition(":")
        if line.isdigit():
            return SourceRef(file, int(line))
    return fallback


def _message(leak: Leak) -> str:
    if leak.kind == "label":
        return f"forbidden label {leak.label!r} can reach Grafana Cloud"
    if leak.kind == "value":
        return f"label {leak.label!r} can carry a value derived from {leak.origin or 'a customer identifier'}"
    if leak.kind in ("exemplar", "metadata", "payload"):
        return f"the write sends {leak.kind} data no relabel rule cleans: {leak.note}"
    return "series with a job outside the external allowlist can reach Grafana Cloud"


def check_platform(ctx: CheckContext, cluster_id: str, policy: pol.Policy) -> Iterator[Finding]:
    path = ctx.rendered / "clusters" / cluster_id / TELEMETRY / "config.alloy"
    if not path.is_file():
        return
    name = _rel(ctx, path)
    url, _ = _region_url(ctx, cluster_id)
    try:
        parsed_from, paths = _platform_paths(path.read_text(encoding="utf-8"), name, policy, [url] if url else [])
    except InputError as exc:
        yield Finding(NAME, Severity.ERROR, exc.source or SourceRef(name), f"cannot analyse: {exc.message}")
        return
    seen: set[tuple] = set()
    for p in paths:
        if not p.external:
            continue
        for leak in prove(p.pipeline, policy):
            leak = _own_refs(leak, parsed_from, name)
            source = _leak_source(leak, SourceRef(name))
            key = (leak.kind, leak.label, source)
            if key in seen:
                continue
            seen.add(key)
            yield Finding(NAME, Severity.ERROR, source, f"{_message(leak)} (cluster {cluster_id})",
                          hint="drop it in base/relabel/platform.yaml before it leaves the cluster "
                               "(see `fleet explain` with the witness input)",
                          details={"cluster": cluster_id, "file": name, **leak.to_json()})


def _helm_remote_writes(docs: list[Any]) -> Iterator[tuple[Any, Any, int]]:
    for doc in docs:
        if not isinstance(doc, dict) or doc.get("kind") != "HelmRelease":
            continue
        values = (doc.get("spec") or {}).get("values") or {}
        writes = values.get("remoteWrite") if isinstance(values, dict) else None
        if isinstance(writes, list):
            for i, entry in enumerate(writes):
                yield writes, entry, i


_CUSTOMER_CACHE: dict[tuple, list[tuple]] = {}
_RW_KEY = re.compile(r"^(?P<indent> *)remoteWrite:\s*$", re.M)


def _remote_write_section(text: str) -> tuple[int, int, str] | None:
    """(0-based line offset, indent removed, dedented text) of the one block-style `remoteWrite:` mapping entry, if unique."""
    matches = list(_RW_KEY.finditer(text))
    if len(matches) != 1:
        return None
    m = matches[0]
    lines = text[m.start():].split("\n")
    indent = len(m.group("indent"))
    end = 1
    while end < len(lines) and (not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip(" ")) > indent
                                or lines[end].lstrip(" ").startswith("- ") and len(lines[end]) - len(lines[end].lstrip(" ")) == indent):
        end += 1
    body = "\n".join(line[indent:] for line in lines[:end])
    return text.count("\n", 0, m.start()), indent, body


def _customer_problems(docs: list[Any], region_url: str | None, region_file: str,
                       policy: pol.Policy) -> list[tuple]:
    """(line, col, message, hint, details) of the customer remote writes in parsed `docs`."""
    out: list[tuple] = []
    for writes, entry, i in docs:
        line, col = yamlio.position(writes, i)
        url = entry.get("url") if isinstance(entry, dict) else None
        klass, _ = policy.classify_url(str(url) if url else None, [region_url] if region_url else [])
        if not url or klass != pol.IN_REGION or (region_url and str(url).rstrip("/") != region_url.rstrip("/")):
            out.append((line, col, f"customer remote write {url!r} is not this cluster's region "
                        f"VictoriaMetrics ({region_url or 'unknown region'})",
                        f"customer series go only to the region endpoint set in {region_file or 'regions/'}",
                        {"url": url, "expected": region_url}))
        rules = entry.get("urlRelabelConfig") if isinstance(entry, dict) else None
        for j, rule in enumerate(rules or []):
            rl, rc = yamlio.position(rules, j)
            try:
                rule_from_mapping(yamlio.plain(rule), SourceRef("", rl, rc), "vmagent")
            except InputError as exc:
                where = exc.source or SourceRef("", rl, rc)
                out.append((where.line, where.col, f"invalid customer relabel rule: {exc.message}", "", {}))
    return out


def check_customer(ctx: CheckContext, cluster_id: str, policy: pol.Policy) -> Iterator[Finding]:
    """Customer remote writes: parse only the `remoteWrite:` section, cached by its text."""
    path = ctx.rendered / "clusters" / cluster_id / TELEMETRY / "vmagent.yaml"
    if not path.is_file():
        return
    name = _rel(ctx, path)
    region_url, region_file = _region_url(ctx, cluster_id)
    text = yamlio.read_text(path, name)
    section = _remote_write_section(text)
    if section is not None:
        offset, indent, body = section
        key = (hashlib.sha256(body.encode()).hexdigest(), region_url, region_file, policy.fingerprint)
        problems = _CUSTOMER_CACHE.get(key)
        if problems is None:
            node = yamlio.load_text(body, name)
            writes = node.get("remoteWrite") if isinstance(node, dict) else None
            entries = [(writes, e, i) for i, e in enumerate(writes)] if isinstance(writes, list) else []
            problems = _CUSTOMER_CACHE[key] = _customer_problems(entries, region_url, region_file, policy)
    else:
        offset = indent = 0
        docs = yamlio.load_all_text(text, name)
        problems = _customer_problems(list(_helm_remote_writes(docs)), region_url, region_file, policy)
    for line, col, message, hint, details in problems:
        yield Finding(NAME, Severity.ERROR, SourceRef(name, line + offset, col + indent),
                      message, hint=hint, details={"cluster": cluster_id, **details})


def _cluster_ids(ctx: CheckContext) -> list[str]:
    base = ctx.rendered / "clusters"
    return sorted(p.name for p in base.iterdir() if p.is_dir() and ctx.wants(p.name)) if base.is_dir() else []


#: vmagent flags that send series somewhere other than the fleet-owned `remoteWrite` entries.
_REDIRECTING_FLAGS = ("remoteWrite.url", "remoteWrite.proxyURL")


def _flag_name(key: Any) -> str:
    """`--remoteWrite.url=https://x` (a key the chart renders as given) → `remoteWrite.url`."""
    return str(key).lstrip("-").split("=", 1)[0]


def check_extra_args(ctx: CheckContext, cluster_id: str) -> Iterator[Finding]:
    """vmagent flags and environment that add or redirect remote writes: the chart appends
    `extraArgs` after the flags it makes from `remoteWrite`, and vmagent reads any flag from a
    `VM_`-prefixed variable (`envflag.enable`), so either would bypass the region check."""
    cluster = ctx.fleet.clusters.get(cluster_id) if ctx.fleet else None
    vmagent = cluster.components.get("vmagent") if cluster else None
    if vmagent is None:
        return
    values = vmagent.values
    args = values.get("extraArgs") or {}
    for key in args if isinstance(args, dict) else ():
        if _flag_name(key) in _REDIRECTING_FLAGS:
            yield _vmagent_finding(vmagent, cluster, ("extraArgs", key),
                                   f"vmagent extraArgs {key!r} adds a remote-write destination outside the "
                                   "fleet-owned remoteWrite (this region's VictoriaMetrics)")
    envflag = values.get("envflag")
    prefix = str(envflag.get("prefix") or "VM_") if isinstance(envflag, dict) else "VM_"
    for i, env in enumerate(values.get("env") or []):
        name = str(env.get("name", "")) if isinstance(env, dict) else ""
        if name.startswith(prefix) and name[len(prefix):].replace("_", ".").lower().startswith("remotewrite."):
            yield _vmagent_finding(vmagent, cluster, ("env", i),
                                   f"vmagent environment {name} sets a remote-write flag (envflag) outside the "
                                   "fleet-owned remoteWrite")
    if values.get("envFrom"):
        yield _vmagent_finding(vmagent, cluster, ("envFrom",),
                               "vmagent envFrom can set any flag (envflag), remote-write destinations included, "
                               "from a source this check cannot read")


def _vmagent_finding(vmagent: Any, cluster: Any, path: tuple, message: str) -> Finding:
    return Finding(NAME, Severity.ERROR, vmagent.source_of("values", *path) or SourceRef(cluster.source), message,
                   hint="remove it: the fleet sets vmagent's remote-write URL from the cluster's region",
                   details={"cluster": cluster.id, "path": ".".join(map(str, path))})


#: The fleet's private DNS zone: the regional tier's hosts live under it (or in the region's VPC).
PRIVATE_ZONE = ".starform.internal"


def check_region_endpoints(ctx: CheckContext, policy: pol.Policy) -> Iterator[Finding]:
    """The region file decides where customer metrics and logs go: its VictoriaMetrics URL must be
    an in-region destination of the policy, its Vector aggregator a host in the fleet's private
    zone or the region's VPC. Everything downstream trusts them."""
    fleet = getattr(ctx, "fleet", None)
    raw = getattr(fleet, "raw", None)
    for slug, region in sorted(getattr(fleet, "regions", {}).items()):
        doc = raw.regions.get(slug) if raw is not None else None
        klass, _ = policy.classify_url(region.remote_write_url)
        if klass != pol.IN_REGION:
            yield Finding(NAME, Severity.ERROR,
                          doc.value_ref("endpoints", "victoriaMetrics", "url") if doc else SourceRef(region.source),
                          f"region {slug}: VictoriaMetrics URL {region.victoria_metrics_url!r} matches no in-region "
                          f"destination pattern of {policy.source}; customer series would leave the region",
                          hint=_in_region_hint(policy, slug))
        if not _in_region_host(region.vector_host, region.vpc_cidr):
            yield Finding(NAME, Severity.ERROR,
                          doc.value_ref("endpoints", "vector", "host") if doc else SourceRef(region.source),
                          f"region {slug}: Vector host {region.vector_host!r} is neither under {PRIVATE_ZONE} nor "
                          f"in the region's VPC {region.vpc_cidr}; customer logs would leave the region",
                          hint=f"use the region's aggregator, e.g. vector.{slug}{PRIVATE_ZONE}")


def _in_region_hint(policy: pol.Policy, slug: str) -> str:
    """Name the patterns the URL must match (the policy decides, not a naming habit), with an example."""
    patterns = [f"{d.name}: {d.url}" for d in policy.destinations if d.klass == pol.IN_REGION]
    if not patterns:
        return f"{policy.source} declares no in-region destination; add one for the regional VictoriaMetrics"
    return (f"the URL must fully match one of the policy's in-region patterns ({'; '.join(patterns)}), "
            f"e.g. http://victoria-metrics.{slug}{PRIVATE_ZONE}:8428")


def _in_region_host(host: str, cidr: str) -> bool:

    try:
        return ipaddress.ip_address(host) in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return host.rstrip(".").lower().endswith(PRIVATE_ZONE)


def check(ctx: CheckContext) -> Iterable[Finding]:
    policy = _policy(ctx)
    yield from check_region_endpoints(ctx, policy)
    with persisted(ctx.root):
        for cluster_id in _cluster_ids(ctx):
            yield from check_platform(ctx, cluster_id, policy)
            yield from check_customer(ctx, cluster_id, policy)
            yield from check_extra_args(ctx, cluster_id)
