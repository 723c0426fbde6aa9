"""The component graph of an Alloy config, as Alloy's loader builds it.

Why: the GDPR proof must see every path a series can take from where it enters Alloy (a scrape)
to where it leaves (a remote_write), and the relabel rules on each path. This module turns the
parsed statements (`fleet.alloy.syntax`) into components, resolves every reference between
them, and exposes the data-flow edges (`forward_to`, and otelcol `output` blocks) with the
position of each reference.

Upstream behaviour mirrored (grafana/alloy internal/runtime, syntax/vm):
* top-level blocks are components, except config blocks (logging, tracing, argument, export,
  foreach, import.*, declare) and configurable services (http, remotecfg, livedebugging);
* a component needs a label: `component "x" must have a label`;
* a second block with the same id: `block ID already declared at FILE:L:C`;
* an attribute given twice in one body: `attribute "x" may only be provided once` (a decoder
  error upstream, not a syntax error);
* a reference must name an existing component (or the standard library): otherwise
  `component "x" does not exist or is out of scope`; references may not form a cycle.

Stricter than Alloy, on purpose (a proof must not guess): `forward_to` must be a literal array
of `<component>.receiver` references (no `concat(...)`, no module arguments), otelcol `output`
attributes arrays of `<component>.input`; `declare`, `foreach` and `import.*` blocks (whose inner
components this analysis does not expand) are refused; relabel rules must be literals.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from fleet.alloy.syntax import (
    Array, Attribute, Block, Call, Expr, NotLiteral, Ref, Stmt, describe, duplicate_attribute,
    go_quote, literal_value, walk_exprs,
)
from fleet.errors import InputError, SourceRef

# Top-level blocks that are not components.
CONFIG_BLOCKS = {"logging", "tracing", "argument", "export"}
# remotecfg loads pipelines from a remote server at run time, like import.http: what runs would
# not be what is analysed.
UNSUPPORTED_BLOCKS = {"declare", "foreach", "import.file", "import.string", "import.http", "import.git",
                      "remotecfg"}
SERVICE_BLOCKS = {"http", "livedebugging"}

# First identifiers of Alloy's standard library (syntax/internal/stdlib, incl. deprecated names).
STDLIB = {
    "constants", "coalesce", "json_path", "sys", "convert", "array", "map", "targets", "encoding",
    "string", "file", "env", "nonsensitive", "concat", "json_decode", "yaml_decode", "base64_decode",
    "format", "join", "replace", "split", "to_lower", "to_upper", "trim", "trim_prefix",
    "trim_suffix", "trim_space",
}

# Kinds where series enter the metrics pipeline.
SOURCE_KINDS = {
    "prometheus.scrape", "prometheus.receive_http", "prometheus.operator.podmonitors",
    "prometheus.operator.servicemonitors", "prometheus.operator.probes",
    "prometheus.operator.scrapeconfigs",
}
SOURCE_PREFIXES = ("otelcol.receiver.", "loki.source.")
# Kinds where data leaves Alloy.
SINK_KINDS = {"prometheus.remote_write", "prometheus.write.queue", "loki.write", "pyroscope.write"}
# Kinds that only pass data on (with or without changes); with no outgoing edge they drop it.
RELAY_KINDS = {"prometheus.relabel", "prometheus.enrich", "loki.process", "loki.relabel",
               "otelcol.exporter.prometheus", "otelcol.exporter.loki"}
RELAY_PREFIXES = ("otelcol.processor.", "otelcol.connector.")

# Data-flow attributes: where they are, and which export their elements must name.
FLOW_ATTRIBUTES = {("forward_to",): "receiver", ("output", "metrics"): "input",
                   ("output", "logs"): "input", ("output", "traces"): "input"}

# Alloy's `rule` block (prometheus.relabel, discovery.relabel, write_relabel_config).
RULE_ATTRIBUTES = {"source_labels": "list", "separator": "string", "regex": "string",
                   "modulus": "int", "target_label": "string", "replacement": "string",
                   "action": "string"}
RELABEL_ACTIONS = {"replace", "keep", "drop", "hashmod", "labelmap", "labeldrop", "labelkeep",
                   "lowercase", "uppercase", "keepequal", "dropequal"}

SOURCE_COMMENT = re.compile(r"^//\s*source:\s*(?P<file>\S+?):(?P<line>\d+)(?::(?P<col>\d+))?\s*$")


@dataclass
class Component:
    """One component block, e.g. `prometheus.relabel "platform" { ... }`."""

    kind: str
    label: str
    block: Block

    @property
    def id(self) -> str:
        return f"{self.kind}.{self.label}"

    @property
    def pos(self) -> SourceRef:
        return self.block.pos


@dataclass(frozen=True)
class Reference:
    """`src` (a component) mentions `dst`'s export `export` in attribute `attribute` (dotted
    path of blocks inside the component, e.g. "forward_to", "output.metrics", "targets")."""

    src: str
    dst: str
    export: str
    attribute: str
    pos: SourceRef


@dataclass
class Graph:
    """Components, data-flow edges (from -> to, at the reference's position) and every reference."""

    components: dict[str, Component]
    edges: list[tuple[str, str, SourceRef]]
    references: list[Reference] = field(default_factory=list)
    filename: str = ""
    #: Alloy's own output: `logging { write_to = [...] }` / `tracing { write_to = [...] }` send
    #: Alloy's logs (which print label sets at debug level) and traces into these components
    self_outputs: list[Reference] = field(default_factory=list)

    def successors(self, cid: str) -> list[str]:
        """Components that `cid` sends data to (each once, in source order)."""
        return _unique(dst for src, dst, _ in self.edges if src == cid)

    def predecessors(self, cid: str) -> list[str]:
        """Components that send data to `cid` (each once, in source order)."""
        return _unique(src for src, dst, _ in self.edges if dst == cid)

    def edge_positions(self, src: str, dst: str) -> list[SourceRef]:
        """Where `src` forwards to `dst` (one position per reference)."""
        return [pos for a, b, pos in self.edges if (a, b) == (src, dst)]

    def sources(self) -> list[str]:
        """Where series enter: scrapes, push receivers, otel/loki receivers, and any component
        of an unknown kind that sends data without receiving any."""
        out = []
        for cid, comp in self.components.items():
            if comp.kind in SOURCE_KINDS or comp.kind.startswith(SOURCE_PREFIXES):
                out.append(cid)
            elif self.successors(cid) and not self.predecessors(cid) and not _is_relay(comp.kind):
                out.append(cid)
        return out

    def sinks(self) -> list[str]:
        """Where data leaves Alloy: remote_write and other writers, otelcol exporters that
        forward nowhere, and any component of an unknown kind that receives data and sends
        none on (treated as leaving, so that a proof checks it)."""
        out = []
        for cid, comp in self.components.items():
            if comp.kind in SINK_KINDS:
                out.append(cid)
            elif self.predecessors(cid) and not self.successors(cid) and not _is_relay(comp.kind):
                out.append(cid)
        return out

    def paths(self, src: str, dst: str) -> list[list[str]]:
        """Every simple path (component ids) from `src` to `dst` along data-flow edges."""
        found: list[list[str]] = []

        def visit(node: str, path: list[str]) -> None:
            if node == dst:
                found.append(path)
                return
            for nxt in self.successors(node):
                if nxt not in path:
                    visit(nxt, path + [nxt])

        if src in self.components and dst in self.components:
            visit(src, [src])
        return found

    def of_kind(self, kind: str) -> list[Component]:
        """Components of one kind, in source order."""
        return [c for c in self.components.values() if c.kind == kind]

    def target_sources(self, cid: str) -> list[str]:
        """Components whose exports feed `cid`'s `targets` attribute, transitively (e.g. the
        discovery.relabel and discovery.kubernetes behind a scrape), nearest first."""
        order: list[str] = []
        queue = [cid]
        while queue:
            current = queue.pop(0)
            for ref in self.references:
                if ref.src == current and ref.attribute == "targets" and ref.dst not in order:
                    order.append(ref.dst)
                    queue.append(ref.dst)
        return order


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _is_relay(kind: str) -> bool:
    return kind in RELAY_KINDS or kind.startswith(RELAY_PREFIXES)


# ---------------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------------


def build_graph(stmts: list[Stmt], filename: str) -> Graph:
    """Components and references of a parsed config; InputError (with position) on what
    Alloy's loader would refuse, or on a data-flow construct this analysis cannot follow."""
    components = _collect_components(stmts)
    for comp in components.values():
        _check_duplicates(comp.block.body)
    references: list[Reference] = []
    edges: list[tuple[str, str, SourceRef]] = []
    for comp in components.values():
        flow_refs = _flow_references(comp, components)
        edges.extend((comp.id, ref.dst, ref.pos) for ref in flow_refs)
        references.extend(flow_refs)
        references.extend(_other_references(comp, components))
    _check_acyclic(components, references)
    return Graph(components, edges, references, filename, _self_outputs(stmts, components))


#: Config blocks through which Alloy emits its own logs and traces to components.
SELF_OUTPUT_BLOCKS = ("logging", "tracing")


def _self_outputs(stmts: list[Stmt], components: dict[str, Component]) -> list[Reference]:
    """`write_to` of the logging and tracing blocks, checked like `forward_to`."""
    out: list[Reference] = []
    for stmt in stmts:
        if not isinstance(stmt, Block) or stmt.name not in SELF_OUTPUT_BLOCKS:
            continue
        for path, attr in _attributes(stmt.body):
            if path != ("write_to",):
                continue
            if not isinstance(attr.value, Array):
                raise InputError(f"{stmt.name}.write_to must be a list of references to component receivers, "
                                 f"got {describe(attr.value)}", attr.value.pos)
            for item in attr.value.items:
                target = _resolve(item, components) if isinstance(item, Ref) else None
                if target is None:
                    raise InputError(f"{stmt.name}.write_to element must be a reference to a component's "
                                     f"receiver, got {describe(item)}", item.pos)
                out.append(Reference(stmt.name, target[0], target[1], "write_to", item.pos))
    return out


def _collect_components(stmts: list[Stmt]) -> dict[str, Component]:
    components: dict[str, Component] = {}
    for stmt in stmts:
        if isinstance(stmt, Attribute):
            raise InputError(f"unsupported statement type: attribute {go_quote(stmt.name)} at the top level",
                             stmt.pos)
        if stmt.name in UNSUPPORTED_BLOCKS:
            raise InputError(f"{stmt.name} blocks are not supported by the fleet's Alloy graph analysis "
                             "(their inner components would be hidden from the GDPR proof)", stmt.pos)
        if stmt.name in CONFIG_BLOCKS or stmt.name in SERVICE_BLOCKS:
            continue
        if not stmt.label:
            raise InputError(f"component {go_quote(stmt.name)} must have a label", stmt.pos)
        comp = Component(stmt.name, stmt.label, stmt)
        if comp.id in components:
            first = components[comp.id].pos
            raise InputError(f"block {comp.id} already declared at {first}", stmt.pos)
        components[comp.id] = comp
    return components


def _check_duplicates(body: list[Stmt]) -> None:
    """Alloy's decoder refuses an attribute given twice in one body (at any depth)."""
    dup = duplicate_attribute(body)
    if dup is not None:
        raise InputError(f"attribute {go_quote(dup.name)} may only be provided once", dup.pos)
    for stmt in body:
        if isinstance(stmt, Block):
            _check_duplicates(stmt.body)


def _attributes(body: list[Stmt], prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Attribute]]:
    """Every attribute of a body with its path of enclosing block names."""
    for stmt in body:
        if isinstance(stmt, Attribute):
            yield prefix + (stmt.name,), stmt
        else:
            yield from _attributes(stmt.body, prefix + (stmt.name,))


def _resolve(ref: Ref, components: dict[str, Component]) -> tuple[str, str] | None:
    """(component id, export name) for a reference to a component; None for the stdlib.
    Raises InputError for a reference to nothing."""
    parts = ref.parts
    for k in range(len(parts), 1, -1):
        cid = ".".join(parts[:k])
        if cid in components:
            return cid, ".".join(parts[k:])
    if parts[0] in STDLIB:
        return None
    if len(parts) == 1:
        raise InputError(f"identifier {go_quote(ref.path)} does not exist", ref.pos)
    name = ".".join(parts[:-1]) if len(parts) >= 3 else ref.path
    raise InputError(f"component {go_quote(name)} does not exist or is out of scope", ref.pos)


def _flow_references(comp: Component, components: dict[str, Component]) -> list[Reference]:
    """Data-flow references (forward_to, otelcol output) of one component, checked."""
    out: list[Reference] = []
    for path, attr in _attributes(comp.block.body):
        export = FLOW_ATTRIBUTES.get(path)
        if export is None:
            continue
        where = ".".join(path)
        if not isinstance(attr.value, Array):
            raise InputError(f"{where} must be a list of references to component {export}s, "
                             f"got {describe(attr.value)}", attr.value.pos)
        for item in attr.value.items:
            if not isinstance(item, Ref):
                raise InputError(f"{where} element must be a reference to a component's {export}, "
                                 f"got {describe(item)}", item.pos)
            target = _resolve(item, components)
            if target is None or target[1] != export:
                raise InputError(f"{where} element {item.path} is not a component's .{export}", item.pos)
            out.append(Reference(comp.id, target[0], export, where, item.pos))
    return out


def _other_references(comp: Component, components: dict[str, Component]) -> list[Reference]:
    """References outside data-flow attributes (targets, tokens, ...), checked to exist."""
    out: list[Reference] = []
    for path, attr in _attributes(comp.block.body):
        if path in FLOW_ATTRIBUTES:
            continue
        for expr in walk_exprs(attr.value):
            if isinstance(expr, Call):
                head = expr.func.split(".")[0]
                if head not in STDLIB:
                    _resolve(Ref(expr.func, expr.pos), components)  # raises for an unknown name
            if isinstance(expr, Ref):
                target = _resolve(expr, components)
                if target is not None:
                    out.append(Reference(comp.id, target[0], target[1], ".".join(path), expr.pos))
    return out


def _check_acyclic(components: dict[str, Component], references: list[Reference]) -> None:
    """Alloy evaluates components in dependency order; a reference cycle fails the load."""
    deps: dict[str, list[Reference]] = {cid: [] for cid in components}
    for ref in references:
        deps[ref.src].append(ref)
    done: set[str] = set()
    path: list[str] = []

    def visit(cid: str) -> None:
        path.append(cid)
        for ref in deps[cid]:
            if ref.dst in path:
                ids = path[path.index(ref.dst):] + [ref.dst]
                raise InputError("cycle detected: " + " -> ".join(ids), ref.pos)
            if ref.dst not in done:
                visit(ref.dst)
        path.pop()
        done.add(cid)

    for cid in components:
        if cid not in done:
            visit(cid)


# ---------------------------------------------------------------------------------------------
# Relabel rules and scrape jobs
# ---------------------------------------------------------------------------------------------


def _block_of(thing: Component | Block) -> Block:
    return thing.block if isinstance(thing, Component) else thing


def source_of(block: Block) -> SourceRef | None:
    """The `// source: FILE:LINE` provenance comment directly above a block, if any."""
    for comment in reversed(block.comments):
        match = SOURCE_COMMENT.match(comment.text.strip())
        if match:
            return SourceRef(match["file"], int(match["line"]), int(match["col"] or 0))
    return None


def rule_dict(rule: Block) -> dict[str, Any]:
    """A `rule`/`write_relabel_config` block as a Prometheus-style relabel mapping (only the
    keys written; Alloy's defaults are Prometheus'), plus "__pos__" and, when the renderer
    left one, "__source__"."""
    out: dict[str, Any] = {}
    for stmt in rule.body:
        if isinstance(stmt, Block):
            raise InputError(f"unrecognized block name {go_quote(stmt.name)}", stmt.pos)
        expected = RULE_ATTRIBUTES.get(stmt.name)
        if expected is None:
            raise InputError(f"unrecognized attribute name {go_quote(stmt.name)}", stmt.pos)
        if stmt.name in out:
            raise InputError(f"attribute {go_quote(stmt.name)} may only be provided once", stmt.pos)
        out[stmt.name] = _typed_value(stmt, expected)
    if "action" in out and out["action"] not in RELABEL_ACTIONS:
        raise InputError(f"unknown relabel action {go_quote(out['action'])}", rule.attrs()["action"].value.pos)
    out["__pos__"] = rule.pos
    source = source_of(rule)
    if source is not None:
        out["__source__"] = source
    return out


def _typed_value(attr: Attribute, expected: str) -> Any:
    value = literal_value(attr.value)
    ok = {
        "list": isinstance(value, list) and all(isinstance(v, str) for v in value),
        "string": isinstance(value, str),
        "int": isinstance(value, int) and not isinstance(value, bool),
    }[expected]
    if not ok:
        want = {"list": "list(string)", "string": "string", "int": "number"}[expected]
        raise InputError(f"{attr.name}: expected {want}, got {type(value).__name__}", attr.value.pos)
    return value


def relabel_rules(component: Component | Block) -> list[dict[str, Any]]:
    """The `rule` blocks of a prometheus.relabel or discovery.relabel, in order."""
    return [rule_dict(rule) for rule in _block_of(component).blocks("rule")]


def write_relabel_rules(component: Component | Block) -> list[tuple[Block, list[dict[str, Any]]]]:
    """For a prometheus.remote_write: each `endpoint` block with its `write_relabel_config`
    rules (applied to the series sent to that endpoint only)."""
    return [(endpoint, [rule_dict(r) for r in endpoint.blocks("write_relabel_config")])
            for endpoint in _block_of(component).blocks("endpoint")]


#: Endpoint settings that send the write through another host than `url` names.
PROXY_ATTRIBUTES = ("proxy_url", "proxy_from_environment", "proxy_connect_header", "no_proxy")


def endpoint_url(endpoint: Block) -> str | None:
    """The literal `url` of a remote_write endpoint, if it is a literal and the write goes there:
    with a proxy setting the bytes go to the proxy, so the destination is unknown (None)."""
    attrs = endpoint.attrs()
    attr = attrs.get("url")
    if attr is None or any(name in attrs for name in PROXY_ATTRIBUTES):
        return None
    try:
        value = literal_value(attr.value)
    except NotLiteral:
        return None
    return value if isinstance(value, str) else None


def endpoint_sends(endpoint: Block) -> dict[str, SourceRef]:
    """What an endpoint sends besides the relabeled series, with where it is (not) switched off:
    `exemplars` unless `send_exemplars = false` (Alloy's default is true), `metadata` unless
    `metadata_config { send = false }` (default true). Neither is relabeled: exemplar labels
    and metric metadata (family name, help, unit) go out as the source produced them."""
    out: dict[str, SourceRef] = {}
    attrs = endpoint.attrs()
    if not _literal_false(attrs.get("send_exemplars")):
        out["exemplars"] = attrs["send_exemplars"].pos if "send_exemplars" in attrs else endpoint.pos
    metadata = endpoint.blocks("metadata_config")
    send = metadata[0].attrs().get("send") if metadata else None
    if not _literal_false(send):
        out["metadata"] = send.pos if send is not None else (metadata[0].pos if metadata else endpoint.pos)
    return out


def _literal_false(attr: Attribute | None) -> bool:
    if attr is None:
        return False
    try:
        return literal_value(attr.value) is False
    except NotLiteral:
        return False


@dataclass
class ScrapeJob:
    """What a prometheus.scrape contributes to its series' labels."""

    component: str
    job_name: str  # the `job` label value given to targets without one
    job_name_explicit: bool
    honor_labels: bool
    targets: Expr | None
    target_sources: list[str]  # components feeding `targets`, transitively, nearest first
    forward_to: list[str]
    pos: SourceRef


def scrape_job(graph: Graph, cid: str) -> ScrapeJob:
    """Job settings of one prometheus.scrape. `job_name` defaults to the component id
    ("The scrape job name defaults to the component's unique identifier", Alloy docs)."""
    comp = graph.components[cid]
    attrs = comp.block.attrs()
    job = attrs.get("job_name")
    honor = attrs.get("honor_labels")
    targets = attrs.get("targets")
    return ScrapeJob(
        component=cid,
        job_name=_literal_str(job) if job else cid,
        job_name_explicit=job is not None,
        honor_labels=bool(literal_value(honor.value)) if honor else False,
        targets=targets.value if targets else None,
        target_sources=graph.target_sources(cid),
        forward_to=graph.successors(cid),
        pos=comp.pos,
    )


def scrape_jobs(graph: Graph) -> list[ScrapeJob]:
    """Every prometheus.scrape of the graph, in source order."""
    return [scrape_job(graph, c.id) for c in graph.of_kind("prometheus.scrape")]


def _literal_str(attr: Attribute) -> str:
    value = literal_value(attr.value)
    if not isinstance(value, str):
        raise InputError(f"{attr.name}: expected string, got {type(value).__name__}", attr.value.pos)
    return value
