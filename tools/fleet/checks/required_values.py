"""Values the platform depends on survive every layer (a patch cannot silently undo them).

Each invariant in `INVARIANTS` names a component, a path in its merged Helm values and a test.
A violation is reported at the source line of the offending value, or, when a layer removed the
value (`null`, or a scalar/list in place of its parent mapping), at the line of that patch.
One finding per source line, naming the clusters it affects.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from .. import upstream
from ..errors import Finding, Severity, SourceRef
from ..model import Cluster, Component
from ..render import alloy as alloy_render
from ..render import wiring
from ..render.wiring import WIRED_TEMPLATES, wired_values
from . import CheckContext

NAME = "required-values"
DESCRIPTION = "Helm values the platform requires (KSM pod-label allowlist, Alloy's ConfigMap, gateway HA, Fluent Bit buffering, ack and tenant filter, vmagent persistent queue and vmauth credentials) survive all layers; no layer re-points or replaces an agent"
ORDER = 45
SCOPE = "cluster"

MISSING = object()  # the value is absent from the merged values


@dataclass(frozen=True)
class Invariant:
    component: str
    path: tuple[str, ...]                                   # inside the component's values
    test: Callable[[Any, Component], str | None]            # the problem with a value, or None
    why: str                                                # what breaks without it
    final: bool = False     # tested on the values Flux gets (fleet-owned wiring applied, render/wiring.py)


# --- tests ------------------------------------------------------------------------------------

def _show(value: Any) -> str:
    """A value as YAML would spell it (for messages)."""
    if value is MISSING:
        return "absent"
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    return repr(value)


def equals(expected: Any) -> Callable[[Any, Component], str | None]:
    def test(value: Any, component: Component) -> str | None:
        if value is not MISSING and type(value) is type(expected) and value == expected:
            return None
        return f"must be {_show(expected)}, is {_show(value)}"
    return test


def absent_or(expected: Any) -> Callable[[Any, Component], str | None]:
    """The chart default (absent) or exactly `expected`."""
    exact = equals(expected)

    def test(value: Any, component: Component) -> str | None:
        return None if value is MISSING else exact(value, component)
    return test


def int_at_least(minimum: int) -> Callable[[Any, Component], str | None]:
    def test(value: Any, component: Component) -> str | None:
        if isinstance(value, int) and not isinstance(value, bool) and value >= minimum:
            return None
        return f"must be an integer >= {minimum}, is {_show(value)}"
    return test


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


_ALLOWLIST_ENTRY = re.compile(r"^\s*([a-z0-9.\-]+)\s*=\s*\[(.*)\]\s*$")


def allowlist_keys(value: Any, resource: str) -> set[str] | None:
    """The label keys `metricLabelsAllowlist` allows for `resource` (None if not a list of entries)."""
    if not isinstance(value, list):
        return None
    keys: set[str] = set()
    for entry in value:
        m = _ALLOWLIST_ENTRY.match(entry) if isinstance(entry, str) else None
        if m and m.group(1) == resource:
            keys |= {k.strip() for k in m.group(2).split(",") if k.strip()}
    return keys


def ksm_label_allowlist(resource: str, keys: tuple[str, ...], wildcard_from: str) -> Callable[[Any, Component], str | None]:
    """KSM emits kube_<resource>_labels only with these label keys allowed. A wildcard
    (`*` or `prefix/*`) is accepted only when the pinned chart is >= `wildcard_from` (older KSM
    treats it as a literal key and silently matches nothing)."""
    def test(value: Any, component: Component) -> str | None:
        allowed = allowlist_keys(value, resource)
        if allowed is None:
            return (f"must be a list with a {resource}=[...] entry listing {', '.join(keys)}, is {_show(value)}")
        version = component.chart.version if component.chart else "0"
        wildcards = {k for k in allowed if k.endswith("*")}
        wildcard_ok = _version(version) >= _version(wildcard_from)
        missing = [k for k in keys if k not in allowed
                   and not (wildcard_ok and any(k.startswith(w[:-1]) for w in wildcards))]
        if not missing:
            return None
        policy = (f"a wildcard covers them only from chart {wildcard_from} (KSM 2.20); the pinned chart is {version}"
                  if wildcards and not wildcard_ok else
                  f"list the keys explicitly (a wildcard is accepted from chart {wildcard_from})")
        return f"{resource}=[...] must allow {', '.join(missing)}; {policy}"
    return test


def absent(why_owned: str) -> Callable[[Any, Component], str | None]:
    """The value must not be set: the fleet owns it (or the chart breaks with it)."""
    def test(value: Any, component: Component) -> str | None:
        return None if value in (MISSING, None, "") else f"must not be set ({why_owned}), is {_show(value)}"
    return test


def tolerates_every_taint(value: Any, component: Component) -> str | None:
    """A toleration with `operator: Exists` and no key or effect matches every taint."""
    if isinstance(value, list) and any(isinstance(t, dict) and t.get("operator") == "Exists"
                                       and not t.get("key") and not t.get("effect") for t in value):
        return None
    return f"must hold a toleration {{operator: Exists}} (no key, no effect), is {_show(value)}"


_FLUENT_LINE = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s+(.*?)\s*$")
_SIZE = re.compile(r"^(\d+)\s*([KMGT]?)(i?)B?$", re.I)
#: Fluent Bit's chunks are flushed to a new one at about 2 MiB (flb_input_chunk.c FLB_INPUT_CHUNK_FS_MAX_SIZE).
FLUENT_CHUNK_BYTES = 2 * 1024 * 1024


def fluent_sections(text: Any) -> list[tuple[str, dict[str, str]]]:
    """The [SECTION]s of a classic Fluent Bit config string: (name, {lower-case key: value})."""
    sections: list[tuple[str, dict[str, str]]] = []
    for line in (text if isinstance(text, str) else "").splitlines():
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            sections.append((stripped[1:-1].upper(), {}))
        elif sections and stripped and not stripped.startswith("#"):
            m = _FLUENT_LINE.match(stripped)
            if m:
                sections[-1][1][m.group(1).lower()] = m.group(2)
    return sections


def size_bytes(text: Any, binary_suffixes: bool) -> int | None:
    """A size as bytes. Fluent Bit reads `16M` as 16 MiB (binary_suffixes); Kubernetes reads
    `256Mi` as binary and `256M` as decimal."""
    m = _SIZE.match(str(text).strip()) if text is not None else None
    if not m:
        return None
    power = " KMGT".index(m.group(2).upper() or " ")
    return int(m.group(1)) * (1024 ** power if (m.group(3) or binary_suffixes) else 1000 ** power)


def fluent_memory_bound(value: Any, component: Component) -> str | None:
    """While Vector is down, Fluent Bit keeps at most storage.max_chunks_up chunks (~2 MiB each)
    plus storage.backlog.mem_limit in memory; the rest waits on disk. That must fit in half the
    container's memory limit, or an outage OOM-kills the agent and the tail restarts."""
    service = dict(next((s for name, s in fluent_sections(value) if name == "SERVICE"), {}))
    chunks, path = service.get("storage.max_chunks_up"), service.get("storage.path")
    if not path:
        return "[SERVICE] must set storage.path (chunks wait on disk, not in memory)"
    if chunks is None or not chunks.isdigit():
        return f"[SERVICE] must set storage.max_chunks_up to an integer, is {_show(chunks)}"
    backlog = size_bytes(service.get("storage.backlog.mem_limit", "5M"), binary_suffixes=True) or 0
    limit = size_bytes(lookup(component.values, ("resources", "limits", "memory")), binary_suffixes=False)
    budget = int(chunks) * FLUENT_CHUNK_BYTES + backlog
    if limit is None or budget * 2 > limit:
        return (f"storage.max_chunks_up {chunks} (x 2 MiB) + storage.backlog.mem_limit must stay within half of "
                f"resources.limits.memory ({_show(lookup(component.values, ('resources', 'limits', 'memory')))})")
    return None


def fluent_inputs_on_disk(value: Any, component: Component) -> str | None:
    bad = [s.get("name", "?") for name, s in fluent_sections(value)
           if name == "INPUT" and s.get("storage.type", "").lower() != "filesystem"]
    return f"every [INPUT] needs storage.type filesystem; not: {', '.join(bad)}" if bad else None


def fluent_tenant_filter(value: Any, component: Component) -> str | None:
    """The kubernetes filter (with pod labels) then the lua tenant filter, in that order."""
    names = [(s.get("name", "").lower(), s) for name, s in fluent_sections(value) if name == "FILTER"]
    k8s = next((i for i, (n, s) in enumerate(names) if n == "kubernetes" and s.get("labels", "").lower() == "on"), None)
    lua = next((i for i, (n, s) in enumerate(names) if n == "lua" and s.get("call") == "starform_tenant"
                and s.get("script") == "/fluent-bit/scripts/starform-tenant.lua"), None)
    if k8s is None or lua is None or lua < k8s:
        return ("must run the kubernetes filter (Labels On) and then the lua filter "
                "(script /fluent-bit/scripts/starform-tenant.lua, call starform_tenant)")
    kube = names[k8s][1]
    if kube.get("merge_log", "off").lower() == "on" and not kube.get("merge_log_key"):
        return ("the kubernetes filter merges JSON logs at the record's root (Merge_Log On without Merge_Log_Key): "
                "an application could write the `kubernetes` map the tenant filter trusts")
    return None


def fluent_outputs_acked(value: Any, component: Component) -> str | None:
    """Every output waits for Vector's ack, verifies its certificate and hostname, and is capped on disk."""
    need = {"require_ack_response": "on", "tls": "on", "tls.verify": "on", "tls.verify_hostname": "on"}
    for name, section in fluent_sections(value):
        if name != "OUTPUT":
            continue
        wrong = [f"{k} {v.capitalize()}" for k, v in need.items() if section.get(k, "").lower() != v]
        if "storage.total_limit_size" not in section:
            wrong.append("storage.total_limit_size")
        if wrong:
            return f"[OUTPUT] {section.get('name', '?')} must set {', '.join(wrong)}"
    return None


def holds_once(item: dict, *keys: str) -> Callable[[Any, Component], str | None]:
    """The list holds `item` exactly once, and no other entry shares its `keys` (a second
    volume or mount of that name or path makes the pod invalid or hides the Secret)."""
    def test(value: Any, component: Component) -> str | None:
        if not isinstance(value, list):
            return f"must be a list holding {item!r}, is {_show(value)}"
        clashes = [e for e in value if isinstance(e, dict) and e != item and any(e.get(k) == item[k] for k in keys)]
        if value.count(item) != 1 or clashes:
            return f"must hold {item!r} once and nothing else with its {'/'.join(keys)}"
        return None
    return test


STARFORM_POD_LABELS = ("starform.io/project-id", "starform.io/service-id", "starform.io/workspace-id")

INVARIANTS: tuple[Invariant, ...] = (
    Invariant("kube-state-metrics", ("metricLabelsAllowlist",),
              ksm_label_allowlist("pods", STARFORM_POD_LABELS, wildcard_from="8.4.0"),
              "kube_pod_labels carries the starform.io/* pod labels only for allowed keys"),
    Invariant("alloy", ("alloy", "configMap", "create"), equals(False),
              f"Alloy must load the {alloy_render.CONFIGMAP_NAME} ConfigMap this repo renders, not the chart's own"),
    Invariant("alloy", ("alloy", "configMap", "name"), equals(alloy_render.CONFIGMAP_NAME),
              "the name of the ConfigMap the renderer generates (configMapGenerator in the telemetry stage)"),
    Invariant("alloy", ("alloy", "configMap", "key"), equals(alloy_render.CONFIG_FILE),
              f"the key holding the rendered {alloy_render.CONFIG_FILE}, the file the GDPR proof checks"),
    Invariant("vmagent", ("image", "tag"), equals(upstream.version("vmagent")),
              "the vmagent the relabel engine and the GDPR proof are checked against (tools/upstream.lock) is the one that runs"),
    Invariant("vmagent", ("image", "variant"), absent_or(""),
              "a variant suffixes the tag (e.g. -enterprise, -scratch): another build than the checked one"),
    Invariant("envoy-gateway", ("deployment", "replicas"), int_at_least(2),
              "a single gateway replica is an outage on every node drain"),
    Invariant("envoy-gateway", ("podDisruptionBudget", "minAvailable"), int_at_least(1),
              "gateway-helm creates its PDB only for an integer minAvailable >= 1 (\"50%\" silently gives none)"),
    Invariant("fluent-bit", ("config", "service"), fluent_memory_bound,
              "bounded memory while the aggregator is down"),
    Invariant("fluent-bit", ("config", "inputs"), fluent_inputs_on_disk,
              "chunks buffer on the node's disk, not in memory"),
    Invariant("fluent-bit", ("config", "filters"), fluent_tenant_filter,
              "only customer records reach the customer store, each with its project/service/workspace IDs"),
    Invariant("fluent-bit", ("config", "outputs"), fluent_outputs_acked,
              "a chunk leaves the disk queue only once Vector acknowledged it, over verified mutual TLS", final=True),
    Invariant("fluent-bit", ("tolerations",), tolerates_every_taint,
              "logs of every node, whatever its taints"),
    Invariant("fluent-bit", ("priorityClassName",), equals("system-node-critical"),
              "the log agent is not evicted before the workloads it ships for"),
    Invariant("vmagent", ("mode",), equals("statefulSet"),
              "only the StatefulSet mode gives each replica its own persistent queue volume"),
    Invariant("vmagent", ("persistentVolume", "enabled"), equals(True),
              "the remote-write queue survives a reschedule during a store outage"),
    Invariant("vmagent", ("persistentVolume", "name"), absent("the chart always mounts a volume named tmpdata"),
              "a named claim template leaves the tmpdata mount without a volume: pods cannot start"),
    Invariant("vmagent", ("persistentVolume", "existingClaim"), absent("every replica would share one claim"),
              "each replica's queue on its own volume"),
    Invariant("vmagent", ("persistentVolume", "size"), absent("set from the region's vmagentQueue.volumeSize"),
              "the queue volume and -remoteWrite.maxDiskUsagePerURL are sized together, per region"),
    Invariant("vmagent", ("extraVolumes",), holds_once(wiring.REMOTE_WRITE_VOLUME, "name"),
              f"vmagent reads its vmauth password from the Secret {wiring.REMOTE_WRITE_SECRET}", final=True),
    Invariant("vmagent", ("extraVolumeMounts",), holds_once(wiring.REMOTE_WRITE_MOUNT, "name", "mountPath"),
              f"-remoteWrite.basicAuth.passwordFile is {wiring.REMOTE_WRITE_PASSWORD_FILE}", final=True),
    *(Invariant("vmagent", ("extraArgs", f"remoteWrite.basicAuth.{flag}"),
                absent("the fleet sets remoteWrite[].basicAuth.username/passwordFile for the region's vmauth"),
                "the region's vmauth admits writes only from its vmagent user")
      for flag in ("username", "usernameFile", "password", "passwordFile")),
    Invariant("vmagent", ("extraArgs", "remoteWrite.maxDiskUsagePerURL"),
              absent("the fleet sets remoteWrite[].maxDiskUsagePerURL from the region's vmagentQueue.volumeSize"),
              "a cap above the volume fills it and fails writes instead of dropping the oldest data"),
)


# --- lookups ----------------------------------------------------------------------------------

def lookup(values: Any, path: tuple) -> Any:
    for key in path:
        if not isinstance(values, dict) or key not in values:
            return MISSING
        values = values[key]
    return values


def removal_source(ctx: CheckContext, cluster: Cluster, component: str, path: tuple) -> SourceRef | None:
    """The patch (last layer first) that removed `path` of the component's values: a `null` at it or
    an ancestor, or a non-mapping in place of an ancestor mapping."""
    raw = ctx.fleet.raw
    docs = [raw.overlays.get(cluster.environment), raw.regions.get(cluster.region.slug)]
    docs += [d for d in raw.clusters.values() if d.name == cluster.source]
    full = ("values",) + tuple(path)
    for doc in reversed([d for d in docs if d is not None]):
        patches = doc.data.get("components") or {}
        if component not in patches:
            continue
        node = patches[component]
        prefix: tuple = ("components", component)
        if node is None:
            return doc.ref(*prefix)
        for key in full:
            if not isinstance(node, dict):
                return doc.ref(*prefix)
            if key not in node:
                break
            prefix += (key,)
            node = node[key]
            if node is None:
                return doc.ref(*prefix)
    return None


#: Values that change what an agent runs or where it sends: the proved config.alloy, the
#: region-bound remote writes and the fleet-owned Fluent Bit output are only what runs while
#: these stay as base/ sets them (usually unset). A layer below base that sets one is a finding.
LOCKED: dict[str, tuple[tuple[str, ...], ...]] = {
    "alloy": (("alloy", "command"), ("alloy", "extraArgs"), ("alloy", "envFrom"), ("alloy", "hostAliases"),
              ("alloy", "mounts", "extra"), ("controller", "volumes", "extra"), ("controller", "initContainers"),
              ("controller", "extraContainers"), ("extraObjects",), ("agent",)),
    "vmagent": (("hostAliases",), ("extraContainers",), ("initContainers",), ("configMap",), ("extraObjects",)),
    "fluent-bit": (("hostAliases",), ("extraContainers",), ("initContainers",), ("existingConfigMap",),
                   ("command",), ("args",), ("luaScripts",), ("envFrom",), ("config", "extraFiles")),
}
#: Fluent Bit's config strings are joined into one file: an output or include in any of them but
#: the fleet-owned `outputs` would send records somewhere the region check never sees.
_FLUENT_SECTION = re.compile(r"^\s*(\[OUTPUT\]|@INCLUDE\b)", re.I | re.M)


def _set(value: Any) -> bool:
    return value is not MISSING and value not in (None, "", [], {})


def _locked_violations(cluster: Cluster) -> Iterator[tuple[str, tuple, SourceRef, str, str]]:
    for name, paths in LOCKED.items():
        component = cluster.components.get(name)
        if component is None:
            continue
        for path in paths:
            source = component.source_of("values", *path)
            if _set(lookup(component.values, path)) and source and not source.file.startswith("base/"):
                yield (name, path, source, "must not be set below base/",
                       "it changes what the agent runs or where it sends, past the checks of the rendered config")
    fluent = cluster.components.get("fluent-bit")
    config = fluent.values.get("config") if fluent else None
    for key, text in (config.items() if isinstance(config, dict) else ()):
        if key != "outputs" and isinstance(text, str) and _FLUENT_SECTION.search(text):
            yield ("fluent-bit", ("config", key), fluent.source_of("values", "config", key) or SourceRef(cluster.source),
                   "holds an [OUTPUT] section or @INCLUDE",
                   "Fluent Bit's only output is the fleet-owned forward to the region's Vector (config.outputs)")


def check(ctx: CheckContext) -> Iterable[Finding]:
    found: dict[tuple, list[str]] = {}
    for cluster in ctx.fleet.clusters.values():
        for inv, source, problem in _violations(ctx, cluster):
            found.setdefault((source, inv.component, inv.path, problem, inv.why), []).append(cluster.id)
        for component, path, source, problem, why in _locked_violations(cluster):
            found.setdefault((source, component, path, problem, why), []).append(cluster.id)
    for (source, component, path, problem, why), clusters in sorted(found.items(), key=lambda kv: kv[0][:4]):
        yield Finding(NAME, Severity.ERROR, source,
                      f"{component}: values.{'.'.join(path)} {problem} ({why}); "
                      f"cluster(s): {', '.join(sorted(clusters))}",
                      details={"clusters": sorted(clusters)})


def _violations(ctx: CheckContext, cluster: Cluster) -> Iterator[tuple[Invariant, SourceRef, str]]:
    for inv in INVARIANTS:
        component = cluster.components.get(inv.component)
        if component is None:
            continue
        values = wired_values(ctx, cluster, component) if inv.final else component.values
        value = lookup(values, inv.path)
        problem = inv.test(value, component)
        if problem is None:
            continue
        source = _wired_source(ctx, component.name, inv.path) if inv.final else None
        if value is MISSING:
            source = removal_source(ctx, cluster, inv.component, inv.path)
        source = source or component.source_of("values", *inv.path) or component.source_of() or SourceRef(cluster.source)
        yield inv, source, problem


def _wired_source(ctx: CheckContext, component: str, path: tuple) -> SourceRef | None:
    """A fleet-owned value comes from a template in base/ (render/wiring.py): the finding points
    at the template's first section header (`[OUTPUT]`), where the missing setting belongs."""
    rel = WIRED_TEMPLATES.get((component, path))
    if rel is None:
        return None
    lines = (ctx.root / rel).read_text(encoding="utf-8").splitlines()
    line = next((i + 1 for i, text in enumerate(lines) if text.strip().startswith("[")), 1)
    return SourceRef(rel, line)
