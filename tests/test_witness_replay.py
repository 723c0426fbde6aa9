"""Every witness the proof produces for the YAML cases is replayed through real vmagent 1.79.5
and shown to leak there too (the proof's counterexamples are real, not artefacts of the engine).

vmagent 1.79.5 lacks keepequal/dropequal: cases using them are skipped explicitly, nothing else.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from fleet import yamlio
from fleet.relabel import policy as pol
from fleet.relabel.engine import rule_from_mapping
from fleet.relabel.proof import Pipeline, prove
from _binaries import require_binary
from differential.vmagent import Case, finalize, run_cases

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "relabel"
CASES = yamlio.plain(yamlio.load_file(FIXTURES / "proof_cases.yaml"))
# the red team's vmagent-flavoured leaks (their witnesses carry newlines vmagent must keep)
CASES += [c for c in yamlio.plain(yamlio.load_file(FIXTURES / "adversarial" / "yaml_cases.yaml"))
          if c.get("flavor") == "vmagent" and c["expect"] == "leak"]
UNSUPPORTED_BY_VMAGENT_1_79 = {"keepequal", "dropequal"}


def _vmagent_witnesses(policy: pol.Policy) -> list[tuple[str, list[dict], object]]:
    """(case name, rules, leak) for every leak the proof finds on the vmagent flavor of a case."""
    out = []
    for case in CASES:
        if ("leaks" not in case and case.get("expect") != "leak") or any(r.get("action") in UNSUPPORTED_BY_VMAGENT_1_79 for r in case["rules"]):
            continue
        rules = [rule_from_mapping(r, flavor="vmagent") for r in case["rules"]]
        for leak in prove(Pipeline([(rules, "vmagent")], name=case["name"]), policy):
            assert leak.verified, leak.to_json()
            out.append((case["name"], case["rules"], leak))
    return out


def _leaks_there(policy: pol.Policy, leak, stored: list[dict]) -> bool:
    if not stored:
        return False
    (series,) = stored
    if leak.kind == "label":
        return any(policy.is_forbidden(n) for n in series)
    if leak.kind == "job":
        return not policy.job_allowed(series.get("job"))
    expected = finalize(leak.witness_output)
    return leak.label in series and series[leak.label] == expected.get(leak.label)


@pytest.mark.binary
def test_every_witness_leaks_through_real_vmagent():
    vmagent = require_binary("vmagent")
    store = require_binary("victoria-metrics")
    policy = pol.load_policy(ROOT / "policies" / "gdpr-labeldrop.yaml")
    witnesses = _vmagent_witnesses(policy)
    assert len(witnesses) >= 15
    cases = [Case([dict(r) for r in rules], [dict(leak.witness_input)]) for _, rules, leak in witnesses]
    results = run_cases(cases, vmagent_bin=vmagent, victoria_metrics_bin=store)
    failures = [f"{name}: {leak.to_json()} → vmagent stored {stored}"
                for (name, _, leak), stored in zip(witnesses, results)
                if not _leaks_there(policy, leak, stored)]
    assert not failures, "\n".join(failures)
