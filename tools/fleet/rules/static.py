"""Static checks on parsed rules: each function takes the rules of one plane and yields Findings.

Planes: "customer" (recording rules vmalert evaluates against a region's VictoriaMetrics) and
"platform" (alerts loaded into Grafana Cloud). Every finding points at the source line of the
rule (`record:`/`alert:` line) or of its `expr:`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Iterator

import promql_parser as pp

from ..errors import Finding, Severity, SourceRef
from . import promql
from .loader import Group, Rule
from .producers import Catalogue, Plane

CUSTOMER_IDS = ("project_id", "service_id", "workspace_id")
FORBIDDEN_LABEL = re.compile(r"^(?:project_id|service_id|workspace_id|label_starform_io_\w*)\Z")
# `$labels.x`, `$labels["x"]`, `.Labels.x`, `index $labels "x"` in Go templates.
_TEMPLATE_LABEL = re.compile(
    r"""\$labels\.(\w+)|\$labels\[\s*"(\w+)"\s*\]|\.Labels\.(\w+)|index\s+\$labels\s+"(\w+)\"""")
RECORD_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*:[a-zA-Z_][a-zA-Z0-9_]*:[a-zA-Z0-9_]+\Z")
ALERT_NAME = re.compile(r"^[A-Z][A-Za-z0-9]*\Z")
SEVERITIES = ("critical", "warning", "info")
# The one way a platform alert pages: critical for production (or, fail-safe, a series that lost
# its environment), warning for every other environment. `environment` is Alloy's external label
# (the cluster's environment), so a staging cluster never pages critical. `rules-environment`
# holds every alert to it: a static `critical` would page for staging too.
ENV_SEVERITY = ('{{ if or (eq $labels.environment "production") (eq $labels.environment "") }}'
                'critical{{ else }}warning{{ end }}')
REQUIRED_ANNOTATIONS = {
    "summary": "one line: what is wrong, and where (instance, cluster_id)",
    "description": "why it matters and what to check first (a short runbook)",
}
# Rendered annotations stay on one line; this keeps that line under yamllint's 240 characters.
MAX_ANNOTATION_CHARS = 200
_DURATION = re.compile(r"^(?:\d+(?:ms|s|m|h|d|w|y))+\Z")
_COUNTER_FUNCS = re.compile(r"\b(?:rate|irate|increase)\s*\(")


@dataclass
class PlaneRules:
    """All rules of one plane, with the group each belongs to."""

    plane: str
    rules: list[tuple[Group, Rule]]


def _finding(check: str, source: SourceRef, message: str, hint: str = "",
             severity: Severity = Severity.ERROR) -> Finding:
    return Finding(check, severity, source, message, hint)


def parsed(rules: PlaneRules) -> tuple[dict[int, pp.Expr], list[Finding]]:
    """Parse every expr once; unparsable ones become findings (id(rule) → AST otherwise)."""
    asts: dict[int, pp.Expr] = {}
    findings = []
    for _group, rule in rules.rules:
        try:
            asts[id(rule)] = promql.parse(rule.expr)
        except ValueError as exc:
            findings.append(_finding("rules-promql", rule.expr_source,
                                     f"{rule.kind} {rule.name!r}: PromQL does not parse: {exc}"))
    return asts, findings


# --- names --------------------------------------------------------------------------------
def check_names(rules: PlaneRules) -> Iterator[Finding]:
    """Recording rules follow level:metric:operations; alerts are CamelCase; no name twice."""
    seen: dict[tuple[str, str], SourceRef] = {}
    for group, rule in rules.rules:
        if rule.kind == "record":
            if not RECORD_NAME.match(rule.name):
                yield _finding("rules-names", rule.source,
                               f"recording rule name {rule.name!r} is not level:metric:operations",
                               "e.g. project_service:container_cpu_usage_seconds:rate5m")
            else:
                metric = rule.name.split(":")[1]
                if metric.endswith("_total") and _COUNTER_FUNCS.search(rule.expr):
                    yield _finding("rules-names", rule.source,
                                   f"{rule.name!r}: drop `_total` from the metric part once a rate is taken",
                                   "Prometheus naming: level:metric:operations with the counter suffix removed")
        elif not ALERT_NAME.match(rule.name):
            yield _finding("rules-names", rule.source, f"alert name {rule.name!r} is not CamelCase")
        if rule.kind == "record" and rule.key in seen and seen[rule.key] != rule.source:
            yield _finding("rules-names", rule.source,
                           f"{rule.name!r} is also recorded at {seen[rule.key]}: two groups writing one series")
        seen.setdefault(rule.key, rule.source)


# --- alert fields -------------------------------------------------------------------------
def check_alert_fields(rules: PlaneRules) -> Iterator[Finding]:
    """Every alert has `for:`, a known `severity` label, and `summary` + `description` annotations.

    Why: whoever is paged reads the notification, not this file: it must say what is wrong where
    (summary) and why it matters / what to check first (description).
    """
    for _group, rule in rules.rules:
        if rule.kind != "alert":
            continue
        duration = rule.data.get("for")
        if duration is None:
            yield _finding("rules-alert-fields", rule.source, f"alert {rule.name!r} has no `for:`",
                           "add `for: <duration>` so a single bad scrape does not page")
        elif not _DURATION.match(str(duration)):
            yield _finding("rules-alert-fields", rule.source, f"alert {rule.name!r}: `for: {duration}` is not a duration")
        labels = rule.data.get("labels") or {}
        severity = labels.get("severity") if isinstance(labels, dict) else None
        if severity is None:
            yield _finding("rules-alert-fields", rule.source, f"alert {rule.name!r} has no `severity` label",
                           f"one of: {', '.join(SEVERITIES)}")
        elif severity not in SEVERITIES and severity != ENV_SEVERITY:
            yield _finding("rules-alert-fields", rule.source,
                           f"alert {rule.name!r}: severity {severity!r} is not one of {', '.join(SEVERITIES)}")
        annotations = rule.data.get("annotations") or {}
        for key, hint in REQUIRED_ANNOTATIONS.items():
            if not isinstance(annotations, dict) or not str(annotations.get(key) or "").strip():
                yield _finding("rules-alert-fields", rule.source, f"alert {rule.name!r} has no `{key}` annotation",
                               hint)
        if isinstance(annotations, dict):
            for key, text in annotations.items():
                if len(str(text)) > MAX_ANNOTATION_CHARS:
                    yield _finding("rules-alert-fields", rule.source,
                                   f"alert {rule.name!r}: annotation `{key}` is {len(str(text))} characters, "
                                   f"over {MAX_ANNOTATION_CHARS}",
                                   "rendered files keep each annotation on one line (yamllint max 240): shorten it")


# --- platform: no customer identifiers ----------------------------------------------------
def check_platform_identifiers(rules: PlaneRules, asts: dict[int, pp.Expr]) -> Iterator[Finding]:
    """Platform alerts never mention customer identifier labels (GDPR: they are not in Grafana Cloud)."""
    for _group, rule in rules.rules:
        ast = asts.get(id(rule))
        if ast is not None:
            reported = set()
            for label, where in promql.label_mentions(ast):
                if FORBIDDEN_LABEL.match(label) and label not in reported:
                    reported.add(label)
                    yield _finding("rules-platform-ids", rule.expr_source,
                                   f"platform alert {rule.name!r} uses customer identifier {label!r} in `{where}`",
                                   "customer identifiers never reach Grafana Cloud; aggregate by cluster_id/instance")
        for section in ("labels", "annotations"):
            values = rule.data.get(section) or {}
            if not isinstance(values, dict):
                continue
            for key, text in values.items():
                names = {key} | {g for m in _TEMPLATE_LABEL.finditer(str(text)) for g in m.groups() if g}
                for label in sorted(n for n in names if FORBIDDEN_LABEL.match(n)):
                    yield _finding("rules-platform-ids", rule.source,
                                   f"platform alert {rule.name!r} {section}.{key} uses customer identifier {label!r}")


# --- producers ------------------------------------------------------------------------------
def check_producers(rules: PlaneRules, asts: dict[int, pp.Expr], catalogue: Catalogue) -> Iterator[Finding]:
    """Every metric a rule reads is produced by one of the plane's scrape jobs or by a rule."""
    plane = catalogue.planes.get(rules.plane)
    recorded = {r.name for _g, r in rules.rules if r.kind == "record"}
    for _group, rule in rules.rules:
        ast = asts.get(id(rule))
        if ast is None:
            continue
        for use in promql.selectors(ast):
            problem = _producer_problem(use, plane, recorded, rules.plane)
            if problem:
                yield _finding("rules-producers", rule.expr_source, f"{rule.kind} {rule.name!r}: {problem}",
                               f"add the producing job to {catalogue.path} or fix the name")


def _producer_problem(use: promql.SelectorUse, plane: Plane | None, recorded: set[str], plane_name: str) -> str:
    if use.name is None:
        return f"selector `{use.text}` has no fixed metric name, so its producer cannot be checked"
    if use.name in recorded:
        return ""
    if plane is None:
        return f"no {plane_name} producers are catalogued, so nothing produces {use.name!r}"
    job = use.equal("job")
    if job is not None and job not in plane.jobs:
        return f"`{use.text}` selects job {job!r}, which is not a {plane_name} scrape job"
    if not plane.jobs_producing(use.name, job):
        where = f"job {job!r}" if job else f"any {plane_name} scrape job"
        return f"nothing produces {use.name!r}: not made by {where} nor by a recording rule"
    return ""


# --- customer: project_id is kept -------------------------------------------------------------
class _FlowIndex:
    """Label flow of every recording rule, resolving rule-on-rule reads (memoised, cycle-safe)."""

    def __init__(self, rules: PlaneRules, asts: dict[int, pp.Expr], catalogue: Catalogue,
                 watch: tuple[str, ...] = CUSTOMER_IDS[:1]):
        self.by_name: dict[str, list[Rule]] = {}
        for _g, r in rules.rules:
            if r.kind == "record":
                self.by_name.setdefault(r.name, []).append(r)
        self.asts = asts
        self.plane = catalogue.planes.get(rules.plane)
        self.memo: dict[int, promql.LabelFlow] = {}
        self.active: set[int] = set()
        self.analyzer = promql.FlowAnalyzer(self.resolve, watch)

    def resolve(self, use: promql.SelectorUse) -> tuple[frozenset[str], bool]:
        external = self.plane.external_labels if self.plane else frozenset()
        if use.name in self.by_name:
            flows = [self.rule_flow(r) for r in self.by_name[use.name]]
            known = frozenset.intersection(*(f.known for f in flows))
            return known, any(f.open for f in flows)
        if self.plane and use.name:
            jobs = self.plane.jobs_producing(use.name, use.equal("job"))
            if jobs:
                common = frozenset.intersection(*(j.labels for j in jobs))
                return external | common | {"job"}, True
        return external, True

    def rule_flow(self, rule: Rule) -> promql.LabelFlow:
        key = id(rule)
        if key in self.memo:
            return self.memo[key]
        ast = self.asts.get(key)
        if ast is None or key in self.active:
            return promql.LabelFlow(frozenset(), True)
        self.active.add(key)
        flow = self.analyzer.flow(ast)
        self.active.discard(key)
        static = rule.data.get("labels") or {}
        flow = promql.LabelFlow(flow.known | frozenset(k for k, v in static.items() if v), flow.open,
                                flow.kind, flow.losses)
        self.memo[key] = flow
        return flow


#: What a `cluster:` customer rule may carry: the platform's view of the customer plane (no tenant
#: in it), federated to Grafana Cloud by the VictoriaMetrics droplet's Alloy (job customer-rules).
CLUSTER_LEVEL_LABELS = frozenset({"cluster_id", "region"})


def check_customer_project_id(rules: PlaneRules, asts: dict[int, pp.Expr], catalogue: Catalogue) -> Iterator[Finding]:
    """Every customer recording rule's result carries project_id (the tenant filter needs it),
    but a `cluster:` rule whose result provably carries nothing but cluster_id and region: a
    per-cluster figure of no tenant (e.g. the L7 traffic no tenant could be given)."""
    index = _FlowIndex(rules, asts, catalogue)
    for _group, rule in rules.rules:
        if rule.kind != "record" or id(rule) not in asts:
            continue
        flow = index.rule_flow(rule)
        if "project_id" in flow.known:
            continue
        if rule.name.startswith("cluster:"):
            bound = promql.label_bound(asts[id(rule)])
            if bound is not None and bound <= CLUSTER_LEVEL_LABELS:
                continue
            extra = "unbounded labels" if bound is None else ", ".join(sorted(bound - CLUSTER_LEVEL_LABELS))
            yield _finding("rules-project-id", rule.expr_source,
                           f"customer rule {rule.name!r}: result is not sure to carry project_id, and as a "
                           f"`cluster:` rule without it may keep only cluster_id and region (it can carry {extra})",
                           "aggregate `by (cluster_id, region)`, or keep project_id")
            continue
        if flow.losses:
            for loss in flow.losses:
                yield _finding("rules-project-id", rule.expr_source,
                               f"customer rule {rule.name!r} drops project_id: {loss.why}, in `{loss.where}`",
                               "keep project_id in every aggregation (by (..., project_id, ...))")
        else:
            yield _finding("rules-project-id", rule.expr_source,
                           f"customer rule {rule.name!r}: result is not sure to carry project_id",
                           "join kube_pod_labels/kube_service_labels with a label_starform_io_project_id!=\"\" "
                           "matcher and keep project_id in the aggregation")


# --- platform: staging never pages ------------------------------------------------------------
def check_environment_severity(rules: PlaneRules, asts: dict[int, pp.Expr], catalogue: Catalogue) -> Iterator[Finding]:
    """A platform alert pages only for production: its severity is a static non-paging one
    (warning, info) or ENV_SEVERITY, and then its result keeps `environment` (an aggregation
    without it, or an absent() without an `environment="production"` matcher, would make every
    environment's alert look like production's)."""
    index = _FlowIndex(rules, asts, catalogue, watch=("environment",))
    for _group, rule in rules.rules:
        if rule.kind != "alert":
            continue
        labels = rule.data.get("labels") or {}
        severity = labels.get("severity") if isinstance(labels, dict) else None
        if severity == "critical":
            yield _finding("rules-environment", rule.source,
                           f"alert {rule.name!r}: a static `severity: critical` pages for staging clusters too",
                           f"use severity '{ENV_SEVERITY}' (or warning/info)")
            continue
        if severity != ENV_SEVERITY or id(rule) not in asts:
            continue
        flow = index.rule_flow(rule)
        if "environment" in flow.known:
            continue
        if flow.losses:
            for loss in flow.losses:
                yield _finding("rules-environment", rule.expr_source,
                               f"alert {rule.name!r} drops environment: {loss.why}, in `{loss.where}`",
                               "keep environment in every aggregation (by (..., environment))")
        else:
            yield _finding("rules-environment", rule.expr_source,
                           f"alert {rule.name!r}: result is not sure to carry environment, so its severity "
                           "cannot tell staging from production",
                           'give absent()/absent_over_time() an environment="production" matcher')


# --- customer: a ratio reads one evaluation ---------------------------------------------------
def _divisions(ast: pp.Expr) -> list[pp.BinaryExpr]:
    found: list[pp.BinaryExpr] = []
    pp.walk(ast, lambda node: found.append(node) if isinstance(node, pp.BinaryExpr) and str(node.op) == "/" else None)
    return found


def _reads(ast: pp.Expr, recorded: set[str]) -> tuple[bool, frozenset[str]]:
    """(reads any series at all, the recording-rule outputs among them)."""
    uses = promql.selectors(ast)
    return bool(uses), frozenset(u.name for u in uses if u.name in recorded)


def check_ratio_inputs(rules: PlaneRules, asts: dict[int, pp.Expr]) -> Iterator[Finding]:
    """Numerator and denominator of a customer ratio read the same recorded series (or raw ones only).

    Why: vmalert sends each rule's result through remote write and later rules query it back from
    VictoriaMetrics, so a rule sees earlier rules' results from a previous evaluation, and a series
    recorded from another recorded series lags one interval more. `a / b` with a and b recorded by
    different rules divides numbers of different evaluations (see base/rules/README.md).
    """
    recorded = {r.name for _g, r in rules.rules if r.kind == "record"}
    for _group, rule in rules.rules:
        ast = asts.get(id(rule))
        if ast is None or rule.kind != "record":
            continue
        for node in _divisions(ast):
            (lhs_reads, lhs), (rhs_reads, rhs) = _reads(node.lhs, recorded), _reads(node.rhs, recorded)
            if lhs_reads and rhs_reads and lhs != rhs:
                yield _finding("rules-ratio-inputs", rule.expr_source,
                               f"customer rule {rule.name!r} divides {_names(lhs)} by {_names(rhs)}: vmalert "
                               "reads recorded series from earlier evaluations, so the two sides may be "
                               "from different intervals",
                               "compute both sides from the same recorded series (or from raw series) "
                               "in this expression")


# --- customer: a tenant id is only ever copied from its own KSM label ------------------------
TENANT_IDS = ("project_id", "service_id", "workspace_id")
_WHOLE_VALUE = {"(.*)", "(.+)", "^(.*)$", "^(.+)$"}


def _tenant_id_writes(ast: pp.Expr) -> list[tuple[str, str]]:
    """(problem, sub-expression) for every label_replace/label_join that writes a tenant id
    from anything but the whole value of its `label_starform_io_<id>` label."""
    found: list[tuple[str, str]] = []

    def visit(node: object) -> None:
        if not (isinstance(node, pp.Call) and node.func.name in ("label_replace", "label_join")):
            return
        args = [a.val if isinstance(a, pp.StringLiteral) else None for a in node.args]
        dst = args[1] if len(args) > 1 else None
        if dst not in TENANT_IDS:
            return
        if node.func.name == "label_join":
            found.append((f"label_join writes {dst}", str(node)))
            return
        replacement, src, regex = (args[2:5] + [None, None, None])[:3]
        if src != f"label_starform_io_{dst}" or replacement not in ("$1", "${1}") or regex not in _WHOLE_VALUE:
            found.append((f"label_replace sets {dst} from {src!r} (regex {regex!r}, replacement {replacement!r})",
                          str(node)))

    pp.walk(ast, visit)
    return found


def check_tenant_ids(rules: PlaneRules, asts: dict[int, pp.Expr]) -> Iterator[Finding]:
    """project_id/service_id/workspace_id come only from KSM's label_starform_io_* labels.

    Why: the server-side tenant filter trusts these labels; a rule that sets project_id from
    another label (or a fixed string) attributes one tenant's usage to another."""
    for _group, rule in rules.rules:
        ast = asts.get(id(rule))
        if ast is None:
            continue
        for problem, where in _tenant_id_writes(ast):
            yield _finding("rules-tenant-ids", rule.expr_source,
                           f"customer {rule.kind} {rule.name!r}: {problem}, in `{where}`",
                           "copy tenant ids only as label_replace(v, \"project_id\", \"$1\", "
                           "\"label_starform_io_project_id\", \"(.+)\") (likewise service_id, workspace_id)")


def _names(names: frozenset[str]) -> str:
    return ", ".join(sorted(names)) if names else "raw series"


def run_all(rules: PlaneRules, catalogue: Catalogue) -> list[Finding]:
    """All static checks of a plane, sorted by position."""
    asts, findings = parsed(rules)
    findings.extend(check_names(rules))
    findings.extend(check_alert_fields(rules))
    findings.extend(check_producers(rules, asts, catalogue))
    if rules.plane == "platform":
        findings.extend(check_platform_identifiers(rules, asts))
        findings.extend(check_environment_severity(rules, asts, catalogue))
    if rules.plane == "customer":
        findings.extend(check_customer_project_id(rules, asts, catalogue))
        findings.extend(check_ratio_inputs(rules, asts))
        findings.extend(check_tenant_ids(rules, asts))
    return sorted(set(findings), key=Finding.sort_key)


def dedupe(findings: Iterable[Finding]) -> list[Finding]:
    """The same source rule merged into several regions gives the same finding once."""
    return sorted(set(findings), key=Finding.sort_key)
