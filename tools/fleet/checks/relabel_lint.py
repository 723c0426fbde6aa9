"""relabel-lint: relabel rules that do not do what they say.

Every relabel list the fleet runs is read as a program, rule by rule, with the abstract
interpretation of the GDPR proof (relabel/analyzer.py over regexlang languages):

* **ignored fields** — a field the action never reads (`replacement` on `keep`, `modulus`
  outside `hashmod`, `source_labels` on `labelmap`, `target_label` on vmagent's `labeldrop`,
  ...), per agent: Prometheus/Alloy (model/relabel/relabel.go: `labeldrop`/`labelkeep`/
  `keepequal` with extra fields are already load errors there) and vmagent v1.150
  (lib/promrelabel, which accepts and ignores them — except `regex`/`target_label` on
  `keep_if_equal`/`drop_if_equal` and `regex` on `keepequal`/`dropequal`, which it refuses:
  an error, vmagent would not start); the table is proved on both real agents;
* **never matches** — a `keep`/`drop`/`replace` whose regex has an empty intersection with
  every value its source labels can still have after the earlier rules (`keep job=a` then
  `keep job=b`: the second drops everything); a rule after one that already dropped every series;
* **order traps** — a `drop` after a `keep` that already removed everything it matches, and a
  `keep`/`drop` that reads a label an earlier rule removed;
* a `labeldrop`/`labelkeep` that removes `__name__` or `job` (error: the series loses its name
  or its job; target relabeling has no `__name__`, so there only `job` counts).

Lists: each cluster's customer remote-write rules (base/relabel/customer.yaml + the cluster's
own) and its vmagent scrape jobs' `relabel_configs` / `metric_relabel_configs` (the job's `job`
fixed; target lists of a Kubernetes discovery see only `__meta_*` input), and every
`prometheus.relabel` / `discovery.relabel` of the rendered Alloy configs (platform.yaml and
regional.yaml through the renderer's `// source:` trail). Findings land on the rule's source line.

Per cluster (SCOPE "cluster"): a cluster's lists come from its merged model and its rendered
Alloy config, so `lint --changed` reads only the affected clusters' (identical lists are still
analysed once). Rendered configs are read once per shape, as rule-jobs does, and a rule without
a `// source:` comment lands on the first file (sorted) of its shape: a narrowed run analyses a
cluster's config only when it is that first file, so it reports what the full lint reports.
The regional droplets' configs are not a cluster's: a narrowed run leaves them to the full lint
(their paths are in READS).
"""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable

from ..alloy import graph as alloy_graph
from ..alloy import syntax
from ..errors import Finding, InputError, Severity, SourceRef
from ..relabel.absdomain import ANY, RESERVED, Lang, lit, rule_lang, rule_lang_must, tracked_names
from ..relabel.engine import Rule, rule_from_mapping
from ..relabel.pipeline import _discovery_meta_only
from ..relabel.survival import cached_rule, may_carry, shared_analyzer
from . import CheckContext
from .gdpr import _policy
from .rule_jobs import PLATFORM_ALLOY, _distinct, file_shape

NAME = "relabel-lint"
DESCRIPTION = ("relabel rules: fields the action ignores, rules that can never match, keep/drop order traps "
               "(warnings); a labeldrop/labelkeep that removes __name__ or job (error)")
ORDER = 63
SCOPE = "cluster"
#: What the lists are merged from besides a cluster's own files: relabel rules, component values,
#: fleet settings, the GDPR policy (the analyser's names), overlays, regions; and the regional
#: droplets' rendered Alloy configs.
READS = ("base/fleet.yaml", "base/relabel/*", "base/components/*", "policies/*", "overlays/*", "regions/*",
         "rendered/regions/*")

_FIELDS = ("source_labels", "separator", "regex", "target_label", "replacement", "modulus")
_EQUAL = frozenset({"source_labels", "separator", "target_label"})
_FILTER = frozenset({"source_labels", "separator", "regex"})
_CASE = frozenset({"source_labels", "separator", "target_label"})
#: Fields each action reads, per agent (Prometheus' `relabel()` switch; vmagent's
#: lib/promrelabel `applyInternal`, which adds keep_if_equal/drop_if_equal and reads nothing
#: else than Prometheus for the shared actions).
USES: dict[str, dict[str, frozenset[str]]] = {
    "prometheus": {
        "replace": frozenset(_FIELDS) - {"modulus"},
        "keep": _FILTER, "drop": _FILTER,
        "keepequal": _EQUAL, "dropequal": _EQUAL,
        "hashmod": frozenset({"source_labels", "separator", "target_label", "modulus"}),
        "labelmap": frozenset({"regex", "replacement"}),
        "labeldrop": frozenset({"regex"}), "labelkeep": frozenset({"regex"}),
        "lowercase": _CASE, "uppercase": _CASE,
    },
}
USES["vmagent"] = {**USES["prometheus"], "keep_if_equal": frozenset({"source_labels"}),
                   "drop_if_equal": frozenset({"source_labels"})}
#: Fields vmagent v1.150 refuses outright for an action (`cannot be used for action=...`: it does
#: not start), where 1.79.5 and the fleet's engine accept and ignore them (checked with
#: `vmagent -dryRun` in tests/test_relabel_lint_upstream.py).
REFUSED: dict[str, dict[str, frozenset[str]]] = {
    # Prometheus' Validate (the engine refuses these at load, with the agent's message)
    "prometheus": {"lowercase": frozenset({"replacement"}), "uppercase": frozenset({"replacement"})},
    "vmagent": {"keep_if_equal": frozenset({"regex", "target_label"}),
                "drop_if_equal": frozenset({"regex", "target_label"}),
                "keepequal": frozenset({"regex"}), "dropequal": frozenset({"regex"})},
}
#: Labels a labeldrop/labelkeep must never remove: the series' name and its job.
PROTECTED = ("__name__", "job")


def ignored_fields(raw: dict, action: str, flavor: str) -> list[str]:
    """Fields written in `raw` (non-null) that `action` never reads under `flavor`."""
    uses = USES[flavor].get(action)
    if uses is None:
        return []
    refused = REFUSED[flavor].get(action, frozenset())
    return [f for f in _FIELDS if raw.get(f) is not None and f not in uses and f not in refused]


def refused_fields(raw: dict, action: str, flavor: str) -> list[str]:
    """Fields written in `raw` that the agent refuses for `action` (it would not start)."""
    refused = REFUSED[flavor].get(action, frozenset())
    return [f for f in _FIELDS if raw.get(f) is not None and f in refused]


def _protected_removed(rule: Rule, flavor: str, targets: bool) -> list[str]:
    """PROTECTED names a labeldrop (surely matching) / labelkeep (never matching) removes."""
    names = [n for n in PROTECTED if not (targets and n == "__name__")]
    if rule.action == "labeldrop":
        lang = rule_lang_must(rule, flavor)
        return [n for n in names if lang is not None and lang.contains(n)]
    if rule.action == "labelkeep":
        lang = rule_lang(rule, flavor)
        return [n for n in names if lang is not None and not lang.contains(n)]
    return []


def _where(rule: Rule) -> str:
    return f"{rule.source.file}:{rule.source.line}" if rule.source and rule.source.file else "an earlier rule"


_MARK = "\x00rule"
_MARK_REF = re.compile(re.escape(_MARK) + r":(\d+)")


class Program:
    """One relabel list as the agent runs it: raw mappings, rules, flavour, the input it sees."""

    def __init__(self, raws: list[dict], rules: list[Rule], flavor: str, *, targets: bool = False,
                 meta_only: bool = False, fixed: dict[str, str] | None = None):
        """`meta_only`: the input carries only `__`-prefixed names (and the fixed ones): a
        Kubernetes discovery's targets."""
        self.raws, self.rules, self.flavor = raws, rules, flavor
        self.targets, self.meta_only, self.fixed = targets, meta_only, fixed or {}
        self.input_names: Lang = ANY
        if meta_only:
            self.input_names = RESERVED
            for label in self.fixed:
                self.input_names = self.input_names | lit(label)

    def key(self) -> str:
        """Same rules, same input: same findings up to where the rules are written (clusters and
        rendered configs share most lists; `findings_here` puts each program's sources back)."""
        return repr((self.flavor, self.targets, self.meta_only, sorted(self.fixed.items()),
                     [repr(r) for r in self.rules], [repr(r) for r in self.raws]))

    def placeholder(self) -> "Program":
        """This program with rule i at the placeholder source `_MARK`:i."""
        rules = [replace(r, source=SourceRef(_MARK, i)) for i, r in enumerate(self.rules)]
        return Program(self.raws, rules, self.flavor, targets=self.targets, meta_only=self.meta_only,
                       fixed=self.fixed)

    def findings_here(self, generic: list[tuple]) -> Iterable[tuple[Severity, SourceRef, str, str]]:
        """`generic` (findings of `placeholder()`) at this program's own sources."""
        def where(m: re.Match) -> str:
            return _where(self.rules[int(m.group(1))])

        for severity, source, message, hint in generic:
            yield severity, self.rules[source.line].source, _MARK_REF.sub(where, message), hint

    def findings(self, ctx: CheckContext) -> Iterable[tuple[Severity, SourceRef, str, str]]:
        for raw, rule in zip(self.raws, self.rules):
            ignored = ignored_fields(raw, rule.action, self.flavor)
            if ignored:
                yield (Severity.WARNING, rule.source, f"{rule.action} ignores {', '.join(ignored)} "
                       f"({'Alloy/Prometheus' if self.flavor == 'prometheus' else 'vmagent'} never reads "
                       f"{'it' if len(ignored) == 1 else 'them'} for this action)", "remove the field(s)")
            refused = refused_fields(raw, rule.action, self.flavor)
            if refused:
                yield (Severity.ERROR, rule.source, f"{rule.action} with {', '.join(refused)}: vmagent v1.150 "
                       f"refuses the rule (`{refused[0]}` cannot be used for `action={rule.action}`) and does "
                       "not start", "remove the field(s)")
            for name in _protected_removed(rule, self.flavor, self.targets):
                yield (Severity.ERROR, rule.source, f"{rule.action} removes {name!r} from every series it sees "
                       f"(regex {rule.regex!r})", f"narrow the regex so {name} stays")
        yield from self._flow(ctx)

    def _flow(self, ctx: CheckContext) -> Iterable[tuple[Severity, SourceRef, str, str]]:
        """Never-matching rules and order traps, from the abstract state before each rule."""
        analyzer = shared_analyzer(_policy(ctx))
        flat = [(r, self.flavor) for r in self.rules]
        state = analyzer.initial(tracked_names(flat), self.input_names, self.fixed)
        fresh = state.copy()
        names = sorted(state.cells)
        removed_by: dict[str, Rule] = {}
        history = [fresh]  # the state after each rule, the input first
        for index, rule in enumerate(self.rules):
            if state.dead:
                killer = self.rules[index - 1]
                yield (Severity.WARNING, rule.source, f"{rule.action} never runs: the rule before it "
                       f"({_where(killer)}) already drops every series", "remove the dead rules or fix the filter")
                return
            yield from self._before(analyzer, history, rule, removed_by)
            state = analyzer.step(state, rule, self.flavor, index)
            history.append(state)
            for name in names:
                if not may_carry(state, name) and may_carry(fresh, name) and name not in removed_by:
                    removed_by[name] = rule
                elif may_carry(state, name):
                    removed_by.pop(name, None)

    def _before(self, analyzer: Any, history: list, rule: Rule,
                removed_by: dict[str, Rule]) -> Iterable[tuple[Severity, SourceRef, str, str]]:
        if rule.action not in ("keep", "drop", "replace") or not rule.source_labels:
            return
        if rule.action in ("keep", "drop"):
            for label in rule.source_labels:
                if label in removed_by:
                    culprit = removed_by[label]
                    yield (Severity.WARNING, rule.source, f"{rule.action} reads {label!r}, which the "
                           f"{culprit.action} at {_where(culprit)} already removed: it sees an empty value",
                           "filter before removing the label, or read another label")
                    return
        lang = rule_lang(rule, self.flavor)
        if lang is None:
            return
        def matchable(state: Any) -> bool:
            return not (analyzer.joined_value(state.copy(), rule) & lang).is_empty()

        if matchable(history[-1]):
            return
        effect = {"keep": "it drops every series", "drop": "it drops nothing",
                  "replace": "it changes nothing"}[rule.action]
        # the first earlier rule after which nothing it matches was left
        culprit = next((self.rules[k] for k in range(len(history) - 1) if not matchable(history[k + 1])), None)
        if matchable(history[0]) and culprit is not None:
            why = f"the {culprit.action} at {_where(culprit)} already removed every value it matches"
        else:
            why = f"its regex matches no value of {', '.join(rule.source_labels)} this input can have"
        yield (Severity.WARNING, rule.source, f"{rule.action} can never match ({why}): {effect}",
               "remove the rule or fix its regex")


def _model_programs(cluster: Any) -> Iterable[Program]:
    """The customer remote-write list and the vmagent scrape jobs' lists of one cluster."""
    write = [r for r in cluster.customer_relabel]
    if write:
        yield Program([r.rule for r in write], [cached_rule(r.rule, r.source, "vmagent") for r in write], "vmagent")
    vmagent = cluster.components.get("vmagent")
    config = (vmagent.values.get("config") or {}) if vmagent else {}
    for index, job in enumerate(config.get("scrape_configs") or []):
        if not isinstance(job, dict) or "job_name" not in job:
            continue
        fixed = {"job": str(job["job_name"])}
        for key, targets in (("relabel_configs", True), ("metric_relabel_configs", False)):
            raws = [r for r in job.get(key) or [] if isinstance(r, dict)]
            if not raws:
                continue
            path = ("values", "config", "scrape_configs", index, key)
            rules = [cached_rule(r, vmagent.source_of(*path, i) or SourceRef(cluster.source), "vmagent")
                     for i, r in enumerate(raws)]
            yield Program(raws, rules, "vmagent", targets=targets, fixed=fixed,
                          meta_only=targets and _discovery_meta_only(job))


_META_ONLY_KINDS = ("discovery.kubernetes",)


def _alloy_programs(text: str, name: str) -> Iterable[Program]:
    """Every prometheus.relabel and discovery.relabel rule list of one rendered Alloy config."""
    graph = alloy_graph.build_graph(syntax.parse(text, name), name)
    for comp in graph.components.values():
        if comp.kind not in ("prometheus.relabel", "discovery.relabel"):
            continue
        maps = alloy_graph.relabel_rules(comp)
        raws = [{k: v for k, v in m.items() if not k.startswith("__")} for m in maps]
        rules = [rule_from_mapping(raw, m.get("__source__") or m.get("__pos__"), "prometheus")
                 for raw, m in zip(raws, maps)]
        targets = comp.kind == "discovery.relabel"
        feeds = [graph.components[t].kind for t in graph.target_sources(comp.id)] if targets else []
        meta_only = targets and bool(feeds) and all(k in _META_ONLY_KINDS for k in feeds)
        yield Program(raws, rules, "prometheus", targets=targets, meta_only=meta_only)


def check(ctx: CheckContext) -> Iterable[Finding]:
    analysed: dict[str, list[tuple]] = {}
    found: dict[tuple, None] = {}

    def run(program: Program) -> None:
        key = program.key()
        if key not in analysed:
            analysed[key] = list(program.placeholder().findings(ctx))
        for finding in program.findings_here(analysed[key]):
            found.setdefault(finding)

    for cluster in (ctx.fleet.clusters.values() if ctx.fleet is not None else []):
        for program in _model_programs(cluster):
            run(program)
    if (ctx.rendered / "clusters").is_dir():
        for path, text in _alloy_configs(ctx):
            try:
                programs = list(_alloy_programs(text, path.relative_to(ctx.rendered.parent).as_posix()))
            except InputError:
                continue  # the Alloy syntax checks report it
            for program in programs:
                run(program)
    for severity, source, message, hint in sorted(found, key=lambda f: (f[1], f[2])):
        yield Finding(NAME, severity, source, message, hint)


def _alloy_configs(ctx: CheckContext) -> Iterable[tuple[Path, str]]:
    """(path, text) of the rendered Alloy configs to analyse: one per shape (the first, sorted);
    narrowed to some clusters, only those clusters' files that are the first of their shape."""
    if ctx.clusters is None:
        for pattern in PLATFORM_ALLOY:
            yield from _distinct(ctx.rendered, pattern)
        return
    cluster_pattern = PLATFORM_ALLOY[0]
    every = sorted(ctx.rendered.glob(cluster_pattern))
    shapes: dict[Path, str] = {}

    def shape_of(path: Path) -> str:
        if path not in shapes:
            shapes[path] = file_shape(ctx.rendered, path, path.read_text())
        return shapes[path]

    for index, path in enumerate(every):
        if not ctx.wants(path.relative_to(ctx.rendered).parts[1]):
            continue
        text = path.read_text()
        shapes[path] = file_shape(ctx.rendered, path, text)
        if not any(shape_of(earlier) == shapes[path] for earlier in every[:index]):
            yield path, text
