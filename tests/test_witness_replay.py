"""Every witness the proof produces for the YAML cases is replayed through the real agents
and shown to leak there too (the proof's counterexamples are real, not artefacts of the engine).

* vmagent (pinned, tools/upstream.lock: v1.150.0, which the engine's vmagent flavour models),
  for the vmagent flavour of every case, vmagent's own actions, `if:` filters and `{{label}}`
  templates included; cases marked `flavor: prometheus` (a regex escaping the anchors) are
  skipped explicitly.
* Prometheus (pinned, the release Alloy vendors), for the prometheus-flavour cases (the shipped
  platform path, Alloy, has Prometheus semantics): the witness series is scraped as exposed
  (honor_labels, the scrape's own job/instance deleted again) and the case's rules run as
  write_relabel_configs. Every witness is replayed, newline values included (its `.` is dotall,
  like the engine's and Alloy's).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from fleet import yamlio
from fleet.relabel import policy as pol
from fleet.relabel.engine import apply, rule_from_mapping
from fleet.relabel.proof import Pipeline, prove
from _binaries import require_binary
from differential import prometheus as prom
from differential.vmagent import Case, finalize, run_cases

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "relabel"
CASES = yamlio.plain(yamlio.load_file(FIXTURES / "proof_cases.yaml"))
# the red team's vmagent-flavoured leaks (their witnesses carry newlines vmagent must keep)
CASES += [c for c in yamlio.plain(yamlio.load_file(FIXTURES / "adversarial" / "yaml_cases.yaml"))
          if c.get("flavor") == "vmagent" and c["expect"] == "leak"]
POLICY = pol.load_policy(ROOT / "policies" / "gdpr-labeldrop.yaml")
#: the prometheus-flavour cases: proof cases (flavor unset or prometheus) and the red team's leaks
PROMETHEUS_CASES = [c for c in yamlio.plain(yamlio.load_file(FIXTURES / "proof_cases.yaml"))
                    if c.get("flavor", "prometheus") == "prometheus"]
PROMETHEUS_CASES += [c for c in yamlio.plain(yamlio.load_file(FIXTURES / "adversarial" / "yaml_cases.yaml"))
                     if c.get("flavor", "prometheus") == "prometheus" and c["expect"] == "leak"]


def _vmagent_witnesses(policy: pol.Policy) -> list[tuple[str, list[dict], object]]:
    """(case name, rules, leak) for every leak the proof finds on the vmagent flavor of a case."""
    out = []
    for case in CASES:
        if ("leaks" not in case and case.get("expect") != "leak") or case.get("flavor") == "prometheus":
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
    # the witnesses through vmagent's own actions, `if:` and templates are among them
    names = {name for name, _, _ in witnesses}
    for needed in ("vmagent if - a copy under a filter may happen", "vmagent template - a {{label}} reference copies the id",
                   "vmagent replace_all keeps the unmatched parts of the id", "vmagent graphite can name a label project_id",
                   "vmagent labelmap_all renames the id's label after the drop", "vm_v1150_groups_miss_writes_the_source"):
        assert needed in names, needed


def _prometheus_witnesses() -> list[tuple[str, list[dict], object]]:
    """(case name, rules, leak) for every leak the proof finds on a prometheus-flavour case."""
    out = []
    for case in PROMETHEUS_CASES:
        rules = [rule_from_mapping(r, flavor="prometheus") for r in case["rules"]]
        leaks = prove(Pipeline([(rules, "prometheus")], name=case["name"]), POLICY)
        assert bool(leaks) == ("leaks" in case or case.get("expect") == "leak"), case["name"]
        out.extend((case["name"], case["rules"], leak) for leak in leaks)
    return out


PROMETHEUS_WITNESSES = _prometheus_witnesses()
def _witness_id(witness) -> str:
    name, _, leak = witness
    return f"{name}:{leak.kind}:{leak.label}"


@pytest.fixture(scope="module")
def prometheus_stored() -> dict[int, list[dict]]:
    """What the store holds for each witness, all in one Prometheus process."""
    binaries = {"prometheus_bin": require_binary("prometheus"),
                "victoria_metrics_bin": require_binary("victoria-metrics")}
    cases = [Case([dict(r) for r in rules] + _reveal(leak), [dict(leak.witness_input)])
             for _, rules, leak in PROMETHEUS_WITNESSES]
    _, actual = prom.run_cases(cases, scrape=prom.Scrape(verbatim=True), **binaries)
    return {id(leak): stored for (_, _, leak), stored in zip(PROMETHEUS_WITNESSES, actual)}


EMPTY_NAME_SHOWN_AS = "zz_empty_name"


def _reveal(leak) -> list[dict]:
    """A label with an empty name reaches the store as the metric name (VictoriaMetrics collapses
    the two), so a leak there is copied, after the case's rules, to a name the store keeps."""
    if leak.label != "":
        return []
    return [{"action": "labelmap", "regex": "", "replacement": EMPTY_NAME_SHOWN_AS}]


def _prometheus_leaks_there(leak, stored: list[dict]) -> bool:
    if not stored:
        return False
    (series,) = stored
    if leak.label == "":
        return series.get(EMPTY_NAME_SHOWN_AS) == leak.witness_output.get("")
    if leak.kind == "label":
        return any(POLICY.is_forbidden(n) for n in series)
    if leak.kind == "job":
        return not POLICY.job_allowed(series.get("job"))
    return leak.label in series and series[leak.label] == leak.witness_output.get(leak.label)


@pytest.mark.binary
def test_prometheus_witnesses_cover_the_cases():
    assert len(PROMETHEUS_WITNESSES) >= 25, len(PROMETHEUS_WITNESSES)
    assert all(leak.verified and leak.witness_input for _, _, leak in PROMETHEUS_WITNESSES)


@pytest.mark.binary
@pytest.mark.parametrize("witness", [
    pytest.param(w, id=_witness_id(w)) for w in PROMETHEUS_WITNESSES])
def test_witness_leaks_through_real_prometheus(prometheus_stored, witness):
    name, rules, leak = witness
    stored = prometheus_stored[id(leak)]
    assert _prometheus_leaks_there(leak, stored), (
        f"{name}: {leak.to_json()} → prometheus stored {stored}")
    # and Prometheus stores exactly the engine's output for the witness (through the reveal rule)
    expected = prom.as_stored(apply([rule_from_mapping(r) for r in _reveal(leak)], leak.witness_output))
    assert stored == [expected], f"{name}: engine {expected}, prometheus {stored}"
