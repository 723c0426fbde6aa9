"""Inputs → pipelines: every path a series can take from a source to a destination.

A YAML relabel list is one path: an arbitrary series in, the list's rules, one destination whose
class the policy decides (`relabel_files`: external unless listed as in-region).
An Alloy file is a component graph: every path from each source (`prometheus.scrape`, …) through
the `prometheus.relabel` stages it meets to each `endpoint` of each `prometheus.remote_write`
(with that endpoint's `write_relabel_config`), bypasses and fan-out included. A component on a
path that is neither a relabel stage nor a known source is *opaque*: the proof assumes it may do
anything to the labels.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .. import yamlio
from ..errors import InputError
from .engine import Rule, rule_from_mapping
from .loader import load_rules
from .policy import EXTERNAL, Policy
from .proof import OPAQUE, Pipeline, TargetChain

SINK_KINDS = ("prometheus.remote_write",)
RELABEL_KINDS = ("prometheus.relabel",)


@dataclass
class PipelinePath:
    """One path through one input file, with where it ends and how the policy classes that."""

    file: str
    description: str
    klass: str                       # "external" | "in-region"
    url: str | None
    pipeline: Pipeline
    stage_names: list[str] = field(default_factory=list)

    @property
    def external(self) -> bool:
        return self.klass == EXTERNAL


def load_yaml_rules(path: Path, name: str, flavor: str = "auto") -> tuple[list[Rule], str]:
    """Rules of a YAML file; `auto` tries Prometheus, then vmagent (for vmagent-only actions)."""
    if flavor != "auto":
        return load_rules(path, name, flavor), flavor  # type: ignore[arg-type]
    try:
        return load_rules(path, name, "prometheus"), "prometheus"
    except InputError as first:
        try:
            return load_rules(path, name, "vmagent"), "vmagent"
        except InputError:
            raise first from None


def yaml_paths(path: Path, name: str, policy: Policy, flavor: str = "auto") -> list[PipelinePath]:
    """One path per scrape job of a scrape configuration (`scrape_configs:`, or one job: a mapping
    with `relabel_configs`), else one path for the file's rule list."""
    from .. import yamlio

    node = yamlio.load_file(path, name)
    if isinstance(node, dict) and ("scrape_configs" in node or "relabel_configs" in node):
        return scrape_config_paths(path, node, name, policy, flavor)
    rules, flavor = load_yaml_rules(path, name, flavor)
    klass = policy.classify_file(path)  # the real file: globs are repository-relative
    pipe = Pipeline([(rules, flavor)], name=f"{name} ({flavor}) → {klass} destination")
    return [PipelinePath(name, pipe.name, klass, None, pipe, [name])]


def scrape_config_paths(path: Path, node: Any, name: str, policy: Policy, flavor: str = "auto") -> list[PipelinePath]:
    """A scrape job is two programs with a scrape between them (Prometheus, vmagent
    `-promscrape.config`): `relabel_configs` run on each *target* (service-discovery `__meta_*`
    labels, pod labels with customer ids among them), the scrape copies the target's labels
    onto every series (with `exported_` renames unless `honor_labels`), then
    `metric_relabel_configs` and the remote write's `write_relabel_configs` run on the series."""
    from ..errors import SourceRef
    from .. import yamlio

    jobs = node.get("scrape_configs") if "scrape_configs" in node else [node]
    if not isinstance(jobs, list):
        line, col = yamlio.position(node, "scrape_configs")
        raise InputError("scrape_configs must be a list of scrape jobs", SourceRef(name, line, col))
    klass = policy.classify_file(path)
    out = []
    for index, job in enumerate(jobs):
        if not isinstance(job, dict):
            line, col = yamlio.position(jobs, index)
            raise InputError("a scrape job must be a mapping", SourceRef(name, line, col))
        target_rules, series_rules, write_rules, job_flavor = _job_rules(job, name, flavor)
        honor = job.get("honor_labels") is True
        job_name = str(job.get("job_name", f"scrape_configs[{index}]"))
        meta_only = _discovery_meta_only(job)
        chain = TargetChain([(target_rules, job_flavor)], f"{name} job {job_name} relabel_configs", honor,
                            meta_only=meta_only, alloy=False)
        write = [(write_rules, job_flavor)] if write_rules else []
        desc = f"{name} job {job_name} ({job_flavor}): targets → scrape → metric_relabel_configs → {klass} destination"
        pipe = Pipeline([(series_rules, job_flavor)] + write, name=desc, targets=[chain], write_stages=len(write))
        out.append(PipelinePath(name, desc, klass, None, pipe, [f"{job_name} relabel_configs",
                                                                f"{job_name} metric_relabel_configs"]))
        # The scrape's own series (up, scrape_duration_seconds, ...) carry the target labels and
        # skip metric_relabel_configs (Prometheus and vmagent alike): target rules, then the write.
        line, col = yamlio.position(jobs, index)
        report = _report_rules(SourceRef(name, line, col), job_flavor)
        desc = f"{name} job {job_name} ({job_flavor}): targets → report series (up, scrape_*) → {klass} destination"
        pipe = Pipeline([(target_rules, job_flavor), (report, job_flavor)] + write, name=desc,
                        write_stages=len(write), discovery_input=True, fixed_input={"job": job_name},
                        meta_only_input=meta_only)
        out.append(PipelinePath(name, desc, klass, None, pipe, [f"{job_name} relabel_configs"]))
    return out


#: Service discoveries whose targets carry only `__`-prefixed labels (besides the job's `job`).
_META_ONLY_SD = {"kubernetes_sd_configs", "consul_sd_configs", "dns_sd_configs", "ec2_sd_configs",
                 "gce_sd_configs", "azure_sd_configs", "docker_sd_configs", "dockerswarm_sd_configs",
                 "digitalocean_sd_configs", "eureka_sd_configs", "nomad_sd_configs", "openstack_sd_configs"}


def _discovery_meta_only(job: Any) -> bool:
    """Whether every discovery of a job emits only `__`-prefixed labels (not static_configs,
    file_sd_configs, http_sd_configs, ... whose targets may carry any label)."""
    sd = [k for k in job if str(k).endswith("_sd_configs") or k == "static_configs"]
    return bool(sd) and all(k in _META_ONLY_SD for k in sd)


def _report_rules(source: SourceRef, flavor: str) -> list[Rule]:
    """What the scrape does to a target's labels to make its report series: `instance` from
    `__address__` when unset, every `__` label removed, the series named (`up`)."""
    rules = [{"source_labels": ["instance", "__address__"], "regex": ";(.*)", "target_label": "instance"},
             {"action": "labeldrop", "regex": "__.*"},
             {"target_label": "__name__", "replacement": "up"}]
    return [rule_from_mapping(r, source, flavor) for r in rules]  # type: ignore[arg-type]


def _job_rules(job: Any, name: str, flavor: str) -> tuple[list[Rule], list[Rule], list[Rule], str]:
    """(target rules, series rules, write rules, flavour) of one job; `auto` takes Prometheus
    when it accepts every rule of the job, else vmagent."""
    from .loader import rules_under

    flavors = ["prometheus", "vmagent"] if flavor == "auto" else [flavor]
    first: InputError | None = None
    for f in flavors:
        try:
            return (rules_under(job, "relabel_configs", name, f), rules_under(job, "metric_relabel_configs", name, f),
                    rules_under(job, "write_relabel_configs", name, f), f)
        except InputError as exc:
            first = first or exc
    assert first is not None
    raise first


def paths_for_file(path: Path, name: str | None, policy: Policy, flavor: str = "auto",
                   in_region_urls: Iterable[str] = ()) -> list[PipelinePath]:
    """Every path of a YAML relabel list or an `.alloy` file."""
    name = name or str(path)
    if path.suffix == ".alloy":
        return alloy_paths(yamlio.read_text(path, name), name, policy, in_region_urls)
    return yaml_paths(path, name, policy, flavor)


# --------------------------------------------------------------------------------------------
# Alloy


def alloy_rules(mappings: list[dict]) -> list[Rule]:
    """Rules from the graph's Prometheus-style mappings; positions prefer the `// source:` file."""
    rules = []
    for m in mappings:
        data = {k: v for k, v in m.items() if not k.startswith("__")}
        source = m.get("__source__") or m.get("__pos__")
        rules.append(rule_from_mapping(data, source, "prometheus"))
    return rules


def _literal(expr: Any) -> Any:
    from ..alloy.syntax import literal_value

    try:
        return literal_value(expr)
    except Exception:  # not a literal (sys.env(...), references): unknown
        return None


def endpoint_url(endpoint: Any) -> str | None:
    from ..alloy.graph import endpoint_url as url_of

    return url_of(endpoint)


def external_labels(block: Any) -> dict[str, str] | None:
    """Literal external labels; values that are not literals read as "?"; None when even the
    names are unknown (e.g. `json_decode(...)`): the path then ends in an opaque step."""
    attr = block.attrs().get("external_labels") if hasattr(block, "attrs") else None
    if attr is None:
        return {}
    value = _literal(attr.value)
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    fields = getattr(attr.value, "fields", None)
    if fields is None:
        return None
    return {str(k): "?" for k, _ in fields}


_TARGET_RELABEL = "discovery.relabel"
# Sources whose targets are relabeled by rules this analysis cannot see (PodMonitor CRDs, ...).
_HIDDEN_TARGET_RELABELING = ("prometheus.operator.",)


def target_chains(graph: Any, source: str, relabel_of: Any, cache: dict) -> list[TargetChain]:
    """Every chain of target relabeling in front of a source (upstream first).

    `targets = discovery.relabel.x.output` puts x's rules (and, behind x's own `targets`, its
    upstream chains) in front of the scrape.  A component that feeds targets and is neither a
    discovery.relabel nor a root without target inputs changes targets in unknown ways: opaque."""
    from ..alloy.graph import scrape_job

    comp = graph.components[source]
    if comp.kind.startswith(_HIDDEN_TARGET_RELABELING):
        return [TargetChain([([], OPAQUE)], f"{source} (target relabeling not visible)")]
    if comp.kind != "prometheus.scrape":
        return []
    honor = scrape_job(graph, source).honor_labels

    def upstream(cid: str) -> list[str]:
        return list(dict.fromkeys(r.dst for r in graph.references
                                  if r.src == cid and r.attribute == "targets"))

    def chains(cid: str, seen: tuple[str, ...]) -> list[tuple[list[tuple[list[Rule], str]], bool]]:
        """(stages, meta_only) per path from a discovery root down to `cid`."""
        if cid in seen:
            return [([([], OPAQUE)], False)]
        kind = graph.components[cid].kind
        ups = upstream(cid)
        if kind == _TARGET_RELABEL:
            if cid not in cache:
                cache[cid] = alloy_rules(relabel_of(graph.components[cid]))
            own: list[tuple[list[Rule], str]] = [(cache[cid], "prometheus")]
        elif ups:
            own = [([], OPAQUE)]
        else:
            return [([], kind in _META_ONLY_DISCOVERY)]
        below = [c for u in ups for c in chains(u, seen + (cid,))] or [([], False)]
        return [(stages + own, meta_only) for stages, meta_only in below]

    out = []
    for ref in upstream(source):
        for stages, meta_only in chains(ref, (source,)):
            if stages or not meta_only:
                out.append(TargetChain(stages, f"{ref} → {source}", honor, meta_only))
    if not upstream(source) and not _literal_meta_only(scrape_job(graph, source).targets):
        out.append(TargetChain([], f"{source} targets", honor, False))  # targets written inline
    return out


def _literal_meta_only(expr: Any) -> bool:
    """Whether inline `targets` are a literal array whose labels are all `__`-prefixed."""
    from ..alloy.syntax import NotLiteral, literal_value

    if expr is None:
        return True
    try:
        value = literal_value(expr)
    except NotLiteral:
        return False
    return isinstance(value, list) and all(
        isinstance(t, dict) and all(str(k).startswith("__") for k in t) for t in value)


#: Service discovery whose targets carry only `__`-prefixed labels (`__address__`, `__meta_*`):
#: no target label with a customer id's name unless target relabeling makes one.  Others
#: (discovery.file, discovery.http, literal arrays, exporters) may carry any label.
_META_ONLY_DISCOVERY = frozenset({
    "discovery.kubernetes", "discovery.kubelet", "discovery.dns", "discovery.consul",
    "discovery.ec2", "discovery.gce", "discovery.azure", "discovery.docker", "discovery.dockerswarm",
    "discovery.digitalocean", "discovery.eureka", "discovery.nomad", "discovery.openstack",
})


#: Components whose own metrics (what prometheus.exporter.self exposes) carry labels from the
#: configuration only (component ids, job names, endpoint URLs, roles), never from the data they
#: handle. Any other component may label its metrics with data: loki.source.file a file path
#: built from pod labels, loki.process `stage.metrics` the log stream's labels, ...
SELF_METRICS_CONFIG_ONLY = frozenset({
    "discovery.kubernetes", "discovery.relabel", "prometheus.scrape", "prometheus.exporter.self",
    "prometheus.relabel", "prometheus.remote_write",
    # Exporter components serve what they export on their own target (their `targets` export,
    # scraped like any target and analysed as such); in Alloy's own registry they leave only
    # controller metrics labelled with the component id (the control plane's Postgres and probes).
    "prometheus.exporter.postgres", "prometheus.exporter.blackbox",
})


def _self_metrics_from_data(graph: Any) -> set[str]:
    """Scrapes of Alloy's own metrics when a component may label its metrics with the data it
    handles (any kind outside SELF_METRICS_CONFIG_ONLY): what such a scrape reads is not only
    Alloy's health but data of any label (customer ids among them): an opaque input."""
    if all(c.kind in SELF_METRICS_CONFIG_ONLY for c in graph.components.values()):
        return set()
    return {c.id for c in graph.of_kind("prometheus.scrape")
            if any(graph.components[t].kind == "prometheus.exporter.self" for t in graph.target_sources(c.id))}


def _source_ids(graph: Any) -> list[str]:
    """Where data enters (the graph's sources). Log and profile pipelines (loki.*, pyroscope.*,
    faro.*) are paths too: their labels come from the same pod metadata, and a sink that is not a
    prometheus.remote_write is an unknown, hence external, destination; components the analysis
    does not model on the way are opaque. So a log pipeline to Grafana Cloud is never called safe."""
    return list(graph.sources())


def _sink_ids(graph: Any) -> list[str]:
    """Where data leaves: every sink."""
    return list(graph.sinks())


def _destinations(sink: Any, write_of: Any) -> list[tuple[str, str | None, list[Rule], dict[str, str]]]:
    """(label, url, write_relabel rules, parts sent besides the series → where) per endpoint; a
    sink that is not a prometheus.remote_write is one unknown url whose payload (log lines,
    profiles, exemplars, ...) is not relabeling's to clean."""
    from ..alloy.graph import endpoint_sends

    if sink.kind not in SINK_KINDS:
        return [(sink.id, None, [], {"payload": _ref(sink.block.pos)})]
    out = []
    for index, (endpoint, rule_maps) in enumerate(write_of(sink)):
        sends = {part: _ref(pos) for part, pos in endpoint_sends(endpoint).items()}
        out.append((f"{sink.id} endpoint[{index}]", endpoint_url(endpoint), alloy_rules(rule_maps), sends))
    return out


def _ref(pos: Any) -> str:
    return f"{pos.file}:{pos.line}" if getattr(pos, "line", None) else str(getattr(pos, "file", pos))


def alloy_paths(text: str, name: str, policy: Policy, in_region_urls: Iterable[str] = ()) -> list[PipelinePath]:
    from ..alloy import graph as alloy_graph
    from ..alloy import syntax

    stmts = syntax.parse(text, name)
    graph = alloy_graph.build_graph(stmts, name)
    in_region_urls = list(in_region_urls)
    relabel_of = getattr(alloy_graph, "relabel_rules", None) or graph.relabel_rules
    write_of = getattr(alloy_graph, "write_relabel_rules", None) or graph.write_relabel_rules
    stage_cache: dict[str, list[Rule]] = {}
    target_cache: dict[str, list[Rule]] = {}
    out: list[PipelinePath] = []
    self_fed = _self_metrics_from_data(graph)
    for src in _source_ids(graph):
        chains = target_chains(graph, src, relabel_of, target_cache)
        opaque_input = src in self_fed
        for dst in _sink_ids(graph):
            if src == dst:
                continue
            for raw in graph.paths(src, dst):
                ids = list(raw)
                stages: list[tuple[list[Rule], str]] = [([], OPAQUE)] if opaque_input else []
                names: list[str] = [f"{src} (Alloy's own metrics include series made from logs)"] if opaque_input else []
                for cid in ids[:-1]:
                    comp = graph.components[cid]
                    if comp.kind in RELABEL_KINDS:
                        if cid not in stage_cache:
                            stage_cache[cid] = alloy_rules(relabel_of(comp))
                        stages.append((stage_cache[cid], "prometheus"))
                        names.append(cid)
                    elif cid != ids[0]:
                        stages.append(([], OPAQUE))
                        names.append(f"{cid} (opaque)")
                sink = graph.components[dst]
                labels = external_labels(sink.block)
                unknown_labels = labels is None
                for label, url, write_rules, sends in _destinations(sink, write_of):
                    klass, _ = policy.classify_url(url, in_region_urls)
                    # external labels are added before the endpoint's write_relabel_configs
                    path_stages = stages + ([([], OPAQUE)] if unknown_labels else [])  # unreadable names: anything
                    write = [(write_rules, "prometheus")] if write_rules else []
                    desc = " → ".join([ids[0], *names, f"{label} ({url or 'non-literal url'}, {klass})"])
                    pipe = Pipeline(path_stages + write, labels or {}, desc, chains, write_stages=len(write),
                                    sends=sends)
                    out.append(PipelinePath(name, desc, klass, url, pipe,
                                            names + ([f"{label} write_relabel_config"] if write_rules else [])))
    out.extend(_self_output_paths(graph, name, policy, in_region_urls, write_of))
    return out


def _self_output_paths(graph: Any, name: str, policy: Policy, in_region_urls: list[str],
                       write_of: Any) -> list[PipelinePath]:
    """Paths of Alloy's own logs and traces (`logging`/`tracing` `write_to`): their content is
    not labels a rule could clean (a debug log prints whole label sets), so every destination
    they reach is sent an unmodelled payload: external ones are leaks, whatever the rules."""
    out: list[PipelinePath] = []
    for ref in graph.self_outputs:
        where = _ref(ref.pos)
        reachable = _reachable(graph, ref.dst)
        ends = [c for c in reachable if c in _sink_ids(graph) or not graph.successors(c)]
        for dst in ends:
            routes = [[ref.dst]] if ref.dst == dst else graph.paths(ref.dst, dst)
            for ids in routes:
                for label, url, _, _ in _destinations(graph.components[dst], write_of):
                    klass, _ = policy.classify_url(url, in_region_urls)
                    desc = " → ".join([f"Alloy's own {ref.src} output", *ids[:-1], f"{label} ({url or 'non-literal url'}, {klass})"])
                    pipe = Pipeline([([], OPAQUE)], {}, desc, sends={"payload": where})
                    out.append(PipelinePath(name, desc, klass, url, pipe, [f"{ref.src}.write_to"]))
    return out


def _reachable(graph: Any, start: str) -> list[str]:
    """`start` and every component data can flow to from it, in discovery order."""
    seen, queue = [start], [start]
    while queue:
        for nxt in graph.successors(queue.pop(0)):
            if nxt not in seen:
                seen.append(nxt)
                queue.append(nxt)
    return seen
