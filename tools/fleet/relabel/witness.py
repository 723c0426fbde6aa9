"""The GDPR proof's witness search: a concrete input that really leaks, for each abstract leak.

Candidates are rich inputs (customer ids as recognisable markers, values that reach both
branches of every rule) and seeded random variations; a candidate leaks when the engine, run
along the same path, carries a marker (or, non-interference, a value that changes with the
customer ids) into a label that leaves. A found witness is minimised and re-run.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterable, Sequence

from .absdomain import ANY, ANY_ORIGIN, EPS, SELF, AbstractLeak, _forbidden_lang, rule_lang, tracked_names
from .analyzer import Analyzer
from .engine import Rule
from .paths import Pipeline, TargetChain, run_concrete, run_target, scraped_series
from .policy import Policy


def rule_ref(rule: Rule) -> str:
    """`file:line` of a rule (its `// source:` file when the rule was rendered from one)."""
    src = rule.source
    if src is None:
        return "<rule>"
    return f"{src.file}:{src.line}" if src.line else src.file


@dataclass
class Leak:
    """One leak on one path, with its witness (verified by running the engine) when found."""

    kind: str
    label: str
    witness_input: dict | None
    witness_output: dict | None
    rules: list[str]
    path: str = ""
    verified: bool = True
    note: str = ""
    origin: str = ""
    #: a witness through a scrape: the target (discovery labels) and the exposed sample whose
    #: scraped series is `witness_input`
    witness_target: dict | None = None
    witness_sample: dict | None = None

    def to_json(self) -> dict:
        witness = {"input": self.witness_input, "output": self.witness_output}
        if self.witness_target is not None:
            witness.update(target=self.witness_target, exposed=self.witness_sample)
        out = {"kind": self.kind, "label": self.label, "witness": witness,
               "rules": self.rules, "path": self.path, "verified": self.verified}
        if self.origin:
            out["origin"] = self.origin
        if self.note:
            out["note"] = self.note
        return out



_MARKERS = ("p7c1a9", "s4e2b8", "w1f6d3", "k9d4e7", "m3a8c2", "q5b7f1", "r2c9a4", "t8e1b6")
_ALT_MARKERS = ("x0zz11", "y2zz33", "z4zz55", "u6zz77", "v8zz99", "n1zz02", "o3zz04", "h5zz06")


class WitnessFinder:
    """Search for a concrete input that leaks; verified by the engine, then minimised."""

    def __init__(self, policy: Policy, analyzer: Analyzer, pipeline: Pipeline, state0_constraints: dict):
        self.policy = policy
        self.an = analyzer
        self.pipeline = pipeline
        self.flat = pipeline.flat
        self.constraints = state0_constraints
        self._hints: dict[str, tuple[str, ...]] | None = None

    @property
    def hints(self) -> dict[str, tuple[str, ...]]:
        """Values per label that its rules match and miss: computed only when a leak needs a witness."""
        if self._hints is None:
            self._hints = _value_hints(self.flat, self.constraints)
        return self._hints

    # concrete leak predicates

    def leaking(self, leak: AbstractLeak, labels: dict[str, str], markers: dict[str, str]) -> str | None:
        """Name of the label that concretely leaks like `leak` on input `labels`, else None."""
        out = run_concrete(self.pipeline, labels)
        if out is None:
            return None
        if leak.kind == "label":
            hits = [n for n in out if self.policy.is_forbidden(n)]
            return leak.label if leak.label in hits else (hits[0] if hits else None)
        if leak.kind == "job":
            return None if self.policy.job_allowed(out.get("job")) else "job"
        return self._derived(labels, out, markers)

    def _derived(self, labels: dict, out: dict, markers: dict[str, str]) -> str | None:
        found = self._marker_hits(out, markers.values())
        if found is not None:
            return found
        # non-interference: change only the forbidden values; a label that changes derives from them
        if not markers:
            return None
        swapped = dict(labels)
        for (name, _), alt in zip(markers.items(), _ALT_MARKERS):
            swapped[name] = alt
        other = run_concrete(self.pipeline, swapped)
        if other is None:
            return None
        for n in sorted(out):
            if not self.policy.is_forbidden(n) and n in other and other[n] != out[n]:
                return n
        return None

    def _marker_hits(self, out: dict, markers: Iterable[str]) -> str | None:
        markers = [m.lower() for m in markers if len(m) >= 4]  # short hint values: non-interference decides
        for n, v in sorted(out.items(), key=lambda kv: (len(kv[0]), kv[0])):
            if self.policy.is_forbidden(n):
                continue
            if any(m in v.lower() or m in n.lower() for m in markers):
                return n
        return None

    # candidate inputs

    def _value_for(self, name: str, rng: random.Random | None) -> str:
        """A value for tracked label `name` satisfying the filters seen on it (if any)."""
        lang = self.constraints.get(name, ANY)
        if name == "job":
            prefer = list(self.policy.job_allow)
        elif name == "__name__":
            prefer = ["kube_pod_labels", "up"]
        else:
            prefer = ["v1"]
        if rng is None:
            return lang.example(prefer) or ""
        guesses = (lang.example(), lang.example(prefer), "", "v" + str(rng.randint(0, 99)),
                   rng.choice(self.an.forbidden_examples + ["job"] * 3),
                   *self.hints.get(name, ()))
        options = [o for o in guesses if o is not None and lang.contains(o)]
        return rng.choice(options) if options else ""

    def candidates(self, leak: AbstractLeak, tries: int) -> Iterable[tuple[dict, dict]]:
        """(labels, markers) to try: a rich input first, then seeded random variations."""
        forbidden_names = list(dict.fromkeys(
            [leak.label] * (leak.kind == "label") + sorted(o for o in leak.origins if o != ANY_ORIGIN and o != SELF)
            + self.an.forbidden_examples))
        forbidden_names += [n for n in sorted(tracked_names(self.flat)) if n not in forbidden_names]
        forbidden_names = [n for n in forbidden_names if self.an.is_origin(n)]  # meta labels too, on targets
        map_sources = self._labelmap_sources(
            ([leak.label] if leak.kind == "job" else []) + forbidden_names + [leak.label])
        names = sorted(tracked_names(self.flat) | {"job", "__name__"})
        rng = None
        for attempt in range(tries):
            labels: dict[str, str] = {}
            markers: dict[str, str] = {}
            for n in names:
                if n in forbidden_names:
                    continue
                v = self._value_for(n, rng)
                if v:
                    labels[n] = v
            if leak.kind == "job" and attempt % 2 == 0:
                bad = leak.example_value
                (labels.__setitem__("job", bad) if bad else labels.pop("job", None))
            if not labels.get("__name__"):
                labels["__name__"] = "kube_pod_labels"
            labels.update(self.pipeline.fixed_input)  # what the input always holds (a target's job)
            for i, n in enumerate(forbidden_names + map_sources):
                if rng is not None and rng.random() < 0.35:
                    continue
                marker = _MARKERS[i % len(_MARKERS)] + ("" if i < len(_MARKERS) else str(i))
                if rng is not None and self.hints.get(n) and rng.random() < 0.5:
                    marker = rng.choice(self.hints[n])  # a value the rules reading it match (or miss)
                labels[n] = marker
                if self.an.is_origin(n):  # only a customer id is a marker (a map source is not one)
                    markers[n] = marker
            yield labels, markers
            rng = rng or random.Random(attempt + 7)

    def _labelmap_sources(self, forbidden_names: list[str]) -> list[str]:
        """Names that labelmap rules would turn into forbidden ones, e.g. `__meta_..._project_id`."""
        out = []
        for rule, flavor in self.flat:
            if rule.action != "labelmap":
                continue
            R = rule_lang(rule, flavor)
            if R is None:
                continue
            prefix = _literal_prefix(rule.regex)
            prefer = (list(forbidden_names) + [prefix + f for f in forbidden_names]
                      + [prefix + "x_" + f for f in forbidden_names])
            hits = [p for p in prefer if R.contains(p)] or [(R - EPS).example(prefer)]
            out.extend(h for h in hits[:12] if h and h not in out)
        return out

    def find(self, leak: AbstractLeak, tries: int = 120) -> tuple[dict, dict | None, str, bool]:
        """(input, output, concrete label, verified)."""
        first: tuple[dict, dict] | None = None
        for labels, markers in self.candidates(leak, tries):
            first = first or (labels, markers)
            hit = self.leaking(leak, labels, markers)
            if hit is not None:
                labels = self.minimise(leak, labels, markers, hit)
                return labels, run_concrete(self.pipeline, labels), hit, True
        assert first is not None
        return first[0], run_concrete(self.pipeline, first[0]), leak.label, False

    def minimise(self, leak: AbstractLeak, labels: dict, markers: dict, hit: str) -> dict:
        """Drop labels one at a time while the input still leaks `hit` (readable witnesses)."""
        current = dict(labels)
        for name in sorted(labels, key=lambda n: (n == "__name__", n == "job", n)):
            if name == "__name__" or name in self.pipeline.fixed_input:
                continue
            trial = {k: v for k, v in current.items() if k != name}
            if self.leaking(leak, trial, {k: v for k, v in markers.items() if k in trial}) == hit:
                current = trial
        return current


def _value_hints(flat: Sequence[tuple[Rule, str]], constraints: dict) -> dict[str, tuple[str, ...]]:
    """Per label read alone by a rule: a value the rule's regex matches and one it misses
    (within the filters seen on the label), so witnesses reach both branches of every rule."""
    hints: dict[str, list[str]] = {}
    for rule, flavor in flat:
        vm = getattr(rule, "vm", None)
        if vm is not None and vm.graphite_match:  # a metric name the graphite template matches
            name = "".join("v1" if p == "*" else p for p in vm.graphite_match)
            if name not in hints.setdefault("__name__", []):
                hints["__name__"].append(name)
        if getattr(rule, "if_expr", None) is not None:  # values that pass (or fail) vmagent's `if:`
            for f in rule.if_expr.filters():
                name = f.label or "__name__"
                options = [f.value] if f.op in ("=", "!=") else []
                if f.regex is not None:
                    example = _regex_example(f.value)
                    options += [example] if example is not None else []
                for value in options:
                    if value not in hints.setdefault(name, []):
                        hints[name].append(value)
        if len(rule.source_labels) != 1 or rule.action == "opaque":
            continue
        R = rule_lang(rule, flavor)
        if R is None:
            continue
        name = rule.source_labels[0]
        lang = constraints.get(name, ANY)
        parts = [lang & R, lang - R]
        vm = getattr(rule, "vm", None)
        if vm is not None and rule.action == "replace" and not vm.regex.default:
            from .absdomain import _rule_lang
            plain = _rule_lang(vm.regex.text, False)  # where vmagent finds no groups: it writes the value
            if plain is not None:
                parts.append((lang & R) - plain)
        for part in parts:
            example = (part - EPS).example(["v1", "x"])
            if example is not None and example not in hints.setdefault(name, []):
                hints[name].append(example)
    return {n: tuple(v) for n, v in hints.items()}


def _regex_example(pattern: str) -> str | None:
    try:
        from .regexlang import Lang, UnsupportedRegex
        return (Lang.from_relabel(pattern, dotall=True) - EPS).example(["v1", "x"])
    except Exception:  # an unsupported construct: no hint
        return None


def _literal_prefix(pattern: str) -> str:
    out = []
    for c in pattern:
        if c in "\\.^$|?*+()[]{}":
            break
        out.append(c)
    return "".join(out)


# --------------------------------------------------------------------------------------------
# Witnesses through target relabeling


def _target_rules(chain_states: list) -> list[str]:
    """Rules of the target relabeling that copy a value (where a reviewer should look)."""
    out = []
    for chain, _, _ in chain_states:
        for rule, _ in chain.flat:
            if rule.action in ("replace", "labelmap", "lowercase", "uppercase", "hashmod", "opaque"):
                out.append(rule_ref(rule))
    return list(dict.fromkeys(out))


def _target_candidates(policy: Policy, chain: TargetChain, constraints: dict, tries: int) -> Iterable[tuple[dict, dict]]:
    """(target, markers): discovery labels that pass the chain's filters, customer-id labels marked."""
    flat = chain.flat
    names = sorted(tracked_names(flat) | {"__address__"})
    disc = _forbidden_lang(tuple(policy.discovery_patterns))
    for rule, flavor in flat:  # labelmap sources: a meta label the map would copy
        if rule.action == "labelmap":
            R = rule_lang(rule, flavor)
            hit = (R & disc) if R is not None else disc
            ex = hit.example(["__meta_kubernetes_pod_label_starform_io_project_id"])
            if ex and ex not in names:
                names.append(ex)
    if not any(policy.is_discovery_origin(n) for n in names):
        names.append("__meta_kubernetes_pod_label_starform_io_project_id")
    fixed: dict[str, str] = {}
    for rule, flavor in flat:  # multi-label keep filters: split an example of the regex
        if rule.action == "keep" and len(rule.source_labels) > 1:
            R = rule_lang(rule, flavor)
            ex = R.example() if R is not None else None
            parts = ex.split(rule.separator) if ex is not None and rule.separator else []
            if len(parts) == len(rule.source_labels):
                fixed.update(zip(rule.source_labels, parts))
    rng: random.Random | None = None
    for attempt in range(tries):
        target, markers = {"__address__": "10.0.0.1:9100"}, {}
        for i, n in enumerate(names):
            lang = constraints.get(n, ANY)
            if policy.is_discovery_origin(n) or policy.is_forbidden(n):
                marker = _MARKERS[i % len(_MARKERS)]
                value = marker if lang.contains(marker) else (lang - EPS).example() or ""
                if value:
                    markers[n] = value
            elif n in fixed and (rng is None or rng.random() < 0.8):
                value = fixed[n]
            else:
                value = (lang.example(["v1"]) if rng is None else
                         rng.choice([lang.example(["v1"]) or "", "", "v1"])) or ""
            if value and (rng is None or rng.random() < 0.9 or n in markers):
                target[n] = value
        yield target, markers
        rng = rng or random.Random(attempt + 11)


def _target_witness(policy: Policy, finder: "WitnessFinder", pipeline: Pipeline, chain_states: list,
                    leak: AbstractLeak) -> tuple[dict, dict | None, str, str, dict, dict] | None:
    """A target whose relabeled labels, on a scraped series, leak through the path."""
    for chain, _, d_state in chain_states:
        for target, markers in _target_candidates(policy, chain, d_state.constraints, 40):
            tlabels = run_target(chain, target)
            if not tlabels or not markers:
                continue
            for sample, sample_markers in finder.candidates(leak, 6):
                if chain.honor_labels:  # the scraped customer ids: only an exported_ rename moves them
                    sample = {k: v for k, v in sample.items() if not policy.is_forbidden(k)}
                    sample_markers = {}
                series = scraped_series(chain, tlabels, sample)
                out = run_concrete(pipeline, series)
                if out is None:
                    continue
                hit = finder._marker_hits(out, [*markers.values(), *sample_markers.values()])
                if hit is not None:
                    note = (f"scrape target {dict(sorted(target.items()))} gets target labels "
                            f"{dict(sorted(tlabels.items()))} from {chain.name or 'target relabeling'}; "
                            "the witness input is a series scraped from it")
                    return series, out, hit, note, target, sample
    return None


def still_leaks(policy: Policy, analyzer: Analyzer, pipeline: Pipeline, leak: "Leak") -> bool:
    """Re-run a witness from scratch, independently of the search that found it: the engine must
    give the recorded output, and that output must leak as the finding says (a forbidden name; a
    job outside the allowlist; a value that carries, or changes with, the customer ids)."""
    series = leak.witness_input
    if series is None:
        return False
    chain = pipeline.targets[0] if pipeline.targets else None
    if leak.witness_target is not None:
        found = [c for c in pipeline.targets
                 if (t := run_target(c, leak.witness_target)) is not None
                 and scraped_series(c, t, leak.witness_sample or {}) == series]
        if not found:
            return False
        chain = found[0]
    out = run_concrete(pipeline, series)
    if out is None or out != leak.witness_output:
        return False
    if leak.kind == "label":
        return any(policy.is_forbidden(n) for n in out)
    if leak.kind == "job":
        return not policy.job_allowed(out.get("job"))
    source = leak.witness_target if leak.witness_target is not None else series
    ids = {n: v for n, v in source.items() if policy.is_forbidden(n) or policy.is_discovery_origin(n)
           or analyzer.is_origin(n)}
    if leak.witness_target is not None:
        ids.update({n: v for n, v in (leak.witness_sample or {}).items() if policy.is_forbidden(n)})
    clean = {n: v for n, v in out.items() if not policy.is_forbidden(n)}
    if any(len(v) >= 4 and (v.lower() in x.lower() or v.lower() in n.lower())
           for v in ids.values() for n, x in clean.items()):
        return True
    # non-interference: other customer ids in, and a label that is sent changes
    for alt in ("x0zz11", "y2zz33"):
        if leak.witness_target is not None and chain is not None:
            target = {n: (alt if n in ids else v) for n, v in leak.witness_target.items()}
            sample = {n: (alt if n in ids else v) for n, v in (leak.witness_sample or {}).items()}
            labels = run_target(chain, target)
            other = run_concrete(pipeline, scraped_series(chain, labels, sample)) if labels is not None else None
        else:
            other = run_concrete(pipeline, {n: (alt if n in ids else v) for n, v in series.items()})
        if other is not None and any(n in other and other[n] != v for n, v in clean.items()):
            return True
    return False
