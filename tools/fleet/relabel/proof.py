"""The GDPR proof: can ANY input series reach an external destination carrying a customer id?

Abstract interpretation of a relabel pipeline (a list of rule stages) over label *sets*, in
four parts a newcomer can read one at a time:

* absdomain.py — the abstract domain (value/name languages, cells, rest classes, states);
* transfer.py  — the transfer function of each relabel action (the engine's switch, abstractly);
* paths.py     — the path model: what an agent sends and where (stages, external labels,
                 target relabeling and the scrape, the parts of a write);
* witness.py   — the search for a concrete input that leaks, replayed through the engine.

`analyzer.py` carries the state along a path; this module is the entry point (`prove`).
Every abstract leak is searched for a concrete witness: an input series run through the
real engine along the same path that really leaks.  A leak with no witness found is still a
leak (soundness first), marked `verified: False`.
"""
from __future__ import annotations

import hashlib
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Iterator

from .absdomain import ANY, RESERVED, SELF, lit
from .analyzer import Analyzer
from .engine import Rule  # noqa: F401  (callers import it from here)
from .paths import (OPAQUE, UNRELABELED_PARTS, Pipeline, TargetChain, run_concrete, run_target,  # noqa: F401
                    scraped_series, trace_concrete)
from .policy import Policy
from .witness import Leak, WitnessFinder, _target_rules, _target_witness, rule_ref, still_leaks

__all__ = ["Analyzer", "Leak", "OPAQUE", "Pipeline", "TargetChain", "prove", "run_concrete", "run_target",
           "scraped_series", "trace_concrete"]


def involved_rules(leak_kind: str, label: str, pipeline: Pipeline, witness: dict | None,
                   writers: frozenset[int]) -> list[str]:
    """Where a reviewer should look, most telling first: the rules that changed the leaking
    label on the witness run (the culprits), the rules the analysis saw writing it, then the
    rules that were meant to stop it (labeldrop/labelkeep for names and values, keep/drop on
    `job` for jobs)."""
    flat = pipeline.flat
    changed: set[int] = set()
    if witness is not None:
        prev = dict(witness)
        for i, rule, after in trace_concrete(pipeline, witness):
            after = after or {}
            if prev.get(label) != after.get(label):
                changed.add(i)
            prev = after
    gates: set[int] = set()
    for i, (rule, _) in enumerate(flat):
        if leak_kind in ("label", "value") and rule.action in ("labeldrop", "labelkeep"):
            gates.add(i)
        if leak_kind == "job" and rule.action in ("keep", "drop") and "job" in rule.source_labels:
            gates.add(i)
    ordered = [*sorted(changed - gates), *sorted(set(writers) - changed - gates), *sorted(gates | (changed & gates))]
    return list(dict.fromkeys(rule_ref(flat[i][0]) for i in ordered if i < len(flat)))


def prove(pipeline: Pipeline, policy: Policy) -> list[Leak]:
    """Leaks of one path to an external destination; [] is a proof that none exists.

    Every part of what the write sends is a path: the relabeled series (the abstract
    interpretation below), and the parts relabeling never touches (`paths.UNRELABELED_PARTS`),
    each a leak wherever it is sent: no rule can prove it clean."""
    if "payload" in pipeline.sends:  # a path that sends more than labels is refused as a whole
        return unrelabeled_part_leaks(pipeline, policy)
    return _relabeled_leaks(pipeline, policy) + unrelabeled_part_leaks(pipeline, policy)


def unrelabeled_part_leaks(pipeline: Pipeline, policy: Policy) -> list[Leak]:
    """One finding per part of the write that bypasses relabeling (exemplars, metadata, ...).

    Not replayed through the engine (it models labels only): `verified` stays False and the
    note says what carries the identifier and how to switch it off."""
    example = (policy.example_forbidden_names() or ["project_id"])[0]
    out = []
    for part, ref in sorted(pipeline.sends.items()):
        kind, why = UNRELABELED_PARTS[part]
        series = {"__name__": "http_request_duration_seconds_bucket", "job": "shuttle", "le": "0.5"}
        carried = {"exemplar": {example: "p7c1a9", "trace_id": "4bf92f3577b34da6"},
                   "metadata": {"metric_family": f"requests_{example}_p7c1a9_total", "help": "per customer p7c1a9"},
                   "payload": {"line": f"{example}=p7c1a9"}}[kind]
        out.append(Leak(kind, example, series, {kind: carried}, [ref], pipeline.name, False, why, example))
    return out


def _relabeled_leaks(pipeline: Pipeline, policy: Policy) -> list[Leak]:
    """Leaks of the relabeled series of one path."""
    key = _cache_key(pipeline, policy)
    cached = _CACHE.get(key)
    if cached is not None:  # same rules, other cluster: recompute outputs (external label values)
        return [replace(leak, path=pipeline.name, witness_output=run_concrete(pipeline, leak.witness_input)
                        if leak.witness_input is not None else None) for leak in cached]
    analyzer = Analyzer(policy, discovery=pipeline.discovery_input)
    flat = pipeline.flat
    seeds, chain_states = [], []
    for chain in pipeline.targets:
        d_an = Analyzer(policy, discovery=True, alloy_targets=chain.alloy)
        d_state = d_an.run(chain.flat, input_names=RESERVED if chain.meta_only else ANY)
        chain_states.append((chain, d_an, d_state))
        seeds.extend(d_an.target_taints(d_state))
        if not chain.honor_labels:
            seeds.extend(d_an.exported_taints(d_state))
    input_names = ANY
    if pipeline.meta_only_input:
        input_names = RESERVED
        for name in pipeline.fixed_input:
            input_names = input_names | lit(name)
    state = analyzer.run(flat, seeds=seeds, external_labels=pipeline.external_labels,
                         external_at=pipeline.external_at, input_names=input_names, fixed=pipeline.fixed_input)
    abstract = analyzer.leaks(state)
    finder = WitnessFinder(policy, analyzer, pipeline, state.constraints)
    leaks: list[Leak] = []
    seen: set[tuple[str, str]] = set()
    for al in abstract:
        witness, output, label, verified = finder.find(al)
        target_note, target, sample = "", None, None
        if not verified and chain_states:
            found = _target_witness(policy, finder, pipeline, chain_states, al)
            if found is not None:
                witness, output, label, target_note, target, sample = found
                verified = True
        if (al.kind, label) in seen:
            continue
        seen.add((al.kind, label))
        origin = ", ".join(sorted(o for o in al.origins if o != SELF))
        note = "" if verified else ("the analysis cannot exclude this leak but found no concrete "
                                    "input showing it; the witness is a best effort")
        rules = involved_rules(al.kind, label, pipeline, witness, al.writers)
        if target_note or (not verified and chain_states):
            rules = _target_rules(chain_states) + rules
        note = target_note or note
        leak = Leak(al.kind, label, witness, output, rules, pipeline.name, verified, note, origin, target, sample)
        if verified and not still_leaks(policy, analyzer, pipeline, leak):
            # a witness is called verified only when a fresh run of the engine leaks with it
            leak = replace(leak, verified=False, note="the witness found does not leak when re-run; the analysis "
                           "cannot exclude this leak")
        leaks.append(leak)
    _CACHE[key] = leaks
    return leaks


_CACHE: dict[str, list[Leak]] = {}


@contextmanager
def persisted(root: Path) -> Iterator[None]:
    """Keep proofs across runs in .cache/relabel-proof.json (keyed like the in-memory cache, and
    by this package's code): a lint that meets a known pipeline reads its leaks, which is what the
    in-memory cache already does across clusters of one run; a `--changed` lint of one cluster
    then costs no proof at all. Witness outputs are recomputed on use, as for any cached proof."""
    from ..cache import ResultCache, code_key

    store = ResultCache(root, "relabel-proof")
    code = code_key(*Path(__file__).parent.glob("*.py")) + ":"
    for key, leaks in list(store._data.items()) if store.enabled else ():
        if key.startswith(code):
            _CACHE.setdefault(key[len(code):], [Leak(**leak) for leak in leaks])
        else:
            del store._data[key]   # proofs of other code: never read again
            store._dirty = True
    try:
        yield
    finally:
        for key, leaks in _CACHE.items():
            if code + key not in store._data:
                store.put(code + key, [asdict(leak) for leak in leaks])
        store.save()


def _cache_key(pipeline: Pipeline, policy: Policy) -> str:
    h = hashlib.sha256(policy.fingerprint.encode())
    for rules, flavor in pipeline.stages:
        h.update(flavor.encode())
        for r in rules:
            h.update(repr((r.action, r.source_labels, r.separator, r.regex, r.regex_set, r.target_label,
                           r.replacement, r.modulus, r.extra, str(r.source))).encode())
        h.update(b"|")
    # Values matter only as job / non-empty, unless write rules run after them (they may test them).
    exact = pipeline.write_stages > 0
    h.update(repr((sorted(pipeline.sends.items()), pipeline.discovery_input, sorted(pipeline.fixed_input.items()),
                   pipeline.meta_only_input)).encode())
    h.update(repr((pipeline.write_stages, sorted((k, v if k == "job" or exact else bool(v))
                                                 for k, v in pipeline.external_labels.items()))).encode())
    for chain in pipeline.targets:
        h.update(repr(("targets", chain.honor_labels, chain.meta_only, chain.alloy)).encode())
        for rules, flavor in chain.stages:
            h.update(flavor.encode())
            for r in rules:
                h.update(repr((r.action, r.source_labels, r.separator, r.regex, r.regex_set, r.target_label,
                               r.replacement, r.modulus, r.extra, str(r.source))).encode())
            h.update(b"|")
    return h.hexdigest()
