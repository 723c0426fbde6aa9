"""The GDPR proof: verdicts on constructed cases, verified witnesses, soundness against the engine."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleet.errors import InputError
from fleet.relabel import policy as pol
from fleet.relabel import absdomain, proof
from fleet.relabel.engine import rule_from_mapping
from fleet.relabel.pipeline import paths_for_file
from fleet.relabel.proof import Pipeline, prove, run_concrete
from fleet import yamlio

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "relabel"
CASES = yamlio.plain(yamlio.load_file(FIXTURES / "proof_cases.yaml"))


@pytest.fixture(scope="module")
def policy() -> pol.Policy:
    return pol.load_policy(ROOT / "policies" / "gdpr-labeldrop.yaml", "policies/gdpr-labeldrop.yaml")


def pipeline_of(case: dict) -> Pipeline:
    flavor = case.get("flavor", "prometheus")
    rules = [rule_from_mapping(r, flavor=flavor) for r in case["rules"]]
    return Pipeline([(rules, flavor)], name=case["name"])


def concretely_leaks(policy: pol.Policy, leak: proof.Leak, pipe: Pipeline) -> bool:
    """Re-check a witness independently of the finder: run it and look at the output."""
    out = run_concrete(pipe, leak.witness_input)
    assert out == leak.witness_output
    if out is None:
        return False
    if leak.kind == "label":
        return any(policy.is_forbidden(n) for n in out)
    if leak.kind == "job":
        return not policy.job_allowed(out.get("job"))
    forbidden_values = [v for n, v in leak.witness_input.items() if policy.is_forbidden(n)]
    tainted = [n for n, v in out.items() if not policy.is_forbidden(n)
               and any(f.lower() in v.lower() or f.lower() in n.lower() for f in forbidden_values)]
    if tainted:
        return True
    # hashed values: change the forbidden inputs only; a label that changes derives from them
    other = {n: (v + "zz" if policy.is_forbidden(n) else v) for n, v in leak.witness_input.items()}
    out2 = run_concrete(pipe, other) or {}
    return any(out2.get(n) != v for n, v in out.items() if not policy.is_forbidden(n))


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_case_verdict_and_witness(case, policy):
    pipe = pipeline_of(case)
    leaks = prove(pipe, policy)
    if case.get("safe"):
        assert leaks == [], [leak.to_json() for leak in leaks]
        return
    found = {(leak.kind, leak.label) for leak in leaks}
    for expected in case["leaks"]:
        if len(expected) == 2:
            assert tuple(expected) in found, found
        else:
            assert any(k == expected[0] for k, _ in found), found
    for leak in leaks:
        assert leak.verified, leak.to_json()
        assert leak.witness_input.get("__name__"), "a witness names its metric"
        assert concretely_leaks(policy, leak, pipe), leak.to_json()


def test_seed_002_alloy_leaks_the_ksm_label(policy):
    paths = paths_for_file(FIXTURES / "seed002_fixed.alloy", "seed002_fixed.alloy", policy)
    assert len(paths) == 1 and paths[0].external
    leaks = prove(paths[0].pipeline, policy)
    by_label = {leak.label: leak for leak in leaks}
    ksm = by_label["label_starform_io_project_id"]
    assert ksm.kind == "label" and ksm.verified
    assert ksm.witness_output["label_starform_io_project_id"] == ksm.witness_input["label_starform_io_project_id"]
    assert ksm.rules == ["seed002_fixed.alloy:19"]          # the labeldrop that misses it
    assert by_label["job"].witness_output["job"] == "envoy-self"


def test_seed_002_as_written_is_a_syntax_error(policy):
    with pytest.raises(InputError) as exc:
        paths_for_file(FIXTURES / "seed002_as_written.alloy", "seed.alloy", policy)
    assert "seed.alloy:3:" in str(exc.value)


ALLOY_HEAD = """
prometheus.scrape "platform" {
  targets    = []
  forward_to = [%s]
}
"""
KEEP = 'rule {\n    source_labels = ["job"]\n    regex = "shuttle"\n    action = "keep"\n  }'
DROP = ('rule {\n    regex = "project_id|service_id|workspace_id|label_starform_io_.+"\n'
        '    action = "labeldrop"\n  }')
QUIET = '\n    send_exemplars = false\n    metadata_config {\n      send = false\n    }'
GRAFANA = 'endpoint {\n    url = "https://prometheus-prod-01.grafana.net/api/prom/push"' + QUIET + '\n  }'
VM = 'endpoint {\n    url = "http://vm.fra1.internal:8428/api/v1/write"' + QUIET + '\n  }'


def relabel(name: str, forward: str, *rules: str) -> str:
    body = "\n  ".join(rules)
    return f'prometheus.relabel "{name}" {{\n  forward_to = [{forward}]\n  {body}\n}}\n'


def remote(name: str, *endpoints: str, extra: str = "") -> str:
    return f'prometheus.remote_write "{name}" {{\n  {extra}\n  ' + "\n  ".join(endpoints) + "\n}\n"


def alloy_verdict(tmp_path, policy, text, in_region=()):
    f = tmp_path / "config.alloy"
    f.write_text(text)
    paths = paths_for_file(f, "config.alloy", policy, in_region_urls=in_region)
    return paths, [leak for p in paths if p.external for leak in prove(p.pipeline, policy)]


def test_alloy_multi_stage_chain_is_safe(tmp_path, policy):
    text = (ALLOY_HEAD % "prometheus.relabel.jobs.receiver"
            + relabel("jobs", "prometheus.relabel.ids.receiver", KEEP)
            + relabel("ids", "prometheus.remote_write.gc.receiver", DROP)
            + remote("gc", GRAFANA))
    paths, leaks = alloy_verdict(tmp_path, policy, text)
    assert len(paths) == 1 and leaks == []


def test_alloy_bypass_path_leaks(tmp_path, policy):
    text = (ALLOY_HEAD % "prometheus.relabel.gdpr.receiver, prometheus.remote_write.gc.receiver"
            + relabel("gdpr", "prometheus.remote_write.gc.receiver", KEEP, DROP)
            + remote("gc", GRAFANA))
    paths, leaks = alloy_verdict(tmp_path, policy, text)
    assert len(paths) == 2
    assert leaks and {leak.path for leak in leaks} == {
        "prometheus.scrape.platform → prometheus.remote_write.gc endpoint[0] "
        "(https://prometheus-prod-01.grafana.net/api/prom/push, external)"}


def test_alloy_fan_out_only_external_paths_are_held(tmp_path, policy):
    text = (ALLOY_HEAD % "prometheus.relabel.gdpr.receiver, prometheus.remote_write.vm.receiver"
            + relabel("gdpr", "prometheus.remote_write.gc.receiver", KEEP, DROP)
            + remote("gc", GRAFANA) + remote("vm", VM))
    paths, leaks = alloy_verdict(tmp_path, policy, text, in_region=["http://vm.fra1.internal:8428"])
    assert sorted(p.klass for p in paths) == ["external", "in-region"]
    assert leaks == []
    # the same fan-out to an unknown URL is held to the external rules
    paths, leaks = alloy_verdict(tmp_path, policy, text)
    assert leaks


def test_alloy_write_relabel_config_can_make_an_endpoint_safe(tmp_path, policy):
    write = ('endpoint {\n    url = "https://x.grafana.net/push"' + QUIET + '\n    write_relabel_config {\n'
             '      source_labels = ["job"]\n      regex = "shuttle"\n      action = "keep"\n    }\n'
             '    write_relabel_config {\n      regex = "project_id|service_id|workspace_id|label_starform_io_.+"\n'
             '      action = "labeldrop"\n    }\n  }')
    text = ALLOY_HEAD % "prometheus.remote_write.gc.receiver" + remote("gc", write, GRAFANA)
    paths, leaks = alloy_verdict(tmp_path, policy, text)
    assert len(paths) == 2
    assert {leak.path.split("endpoint")[1][:3] for leak in leaks} == {"[1]"}


def test_alloy_external_label_with_forbidden_name(tmp_path, policy):
    text = (ALLOY_HEAD % "prometheus.relabel.gdpr.receiver"
            + relabel("gdpr", "prometheus.remote_write.gc.receiver", KEEP, DROP)
            + remote("gc", GRAFANA, extra='external_labels = {cluster_id = "c1", project_id = "p1"}'))
    _, leaks = alloy_verdict(tmp_path, policy, text)
    assert [(leak.kind, leak.label) for leak in leaks] == [("label", "project_id")]
    assert leaks[0].witness_output["cluster_id"] == "c1"


def test_source_comments_point_findings_at_the_source_file(tmp_path, policy):
    rules = KEEP + "\n  // source: base/relabel/platform.yaml:12\n  " + DROP.replace("|label_starform_io_.+", "")
    text = ALLOY_HEAD % "prometheus.relabel.gdpr.receiver" + relabel(
        "gdpr", "prometheus.remote_write.gc.receiver", rules) + remote("gc", GRAFANA)
    _, leaks = alloy_verdict(tmp_path, policy, text)
    assert leaks and "base/relabel/platform.yaml:12" in leaks[0].rules


def test_unsupported_regex_is_treated_conservatively(policy, monkeypatch):
    case = next(c for c in CASES if c["name"] == "keep allowlist and drop every identifier")
    assert prove(pipeline_of(case), policy) == []
    real = absdomain._rule_lang

    def unsupported(pattern, dotall):
        return None if "label_starform_io" in pattern else real(pattern, dotall)

    monkeypatch.setattr(absdomain, "_rule_lang", unsupported)
    monkeypatch.setattr(proof, "_CACHE", {})
    leaks = prove(pipeline_of(case), policy)
    assert leaks, "a labeldrop we cannot model must not prove anything"
    assert all(not leak.verified and leak.note for leak in leaks)  # the engine really drops


def test_hashmod_modulus_one_is_still_reported(policy):
    case = {"name": "h", "rules": [
        {"action": "keep", "source_labels": ["job"], "regex": "shuttle"},
        {"action": "hashmod", "source_labels": ["project_id"], "modulus": 1, "target_label": "shard"},
        {"action": "labeldrop", "regex": "project_id|service_id|workspace_id|label_starform_io_.+"}]}
    leaks = prove(pipeline_of(case), policy)
    assert [(leak.kind, leak.label) for leak in leaks] == [("value", "shard")]


def test_cache_returns_outputs_for_the_asking_pipeline(policy):
    rules = [rule_from_mapping({"action": "keep", "source_labels": ["job"], "regex": "shuttle"})]
    a = prove(Pipeline([(rules, "prometheus")], {"cluster_id": "a"}, "a"), policy)
    b = prove(Pipeline([(rules, "prometheus")], {"cluster_id": "b"}, "b"), policy)
    assert [leak.kind for leak in a] == [leak.kind for leak in b]
    assert {leak.witness_output["cluster_id"] for leak in b} == {"b"}
    assert {leak.path for leak in b} == {"b"}


# --------------------------------------------------------------------------------------------
# Soundness: whenever the engine leaks on some series, the proof must say so.

NAMES = ["job", "project_id", "label_starform_io_project_id", "tenant", "x_project_id", "a", "__name__", "pod"]
FORBIDDEN_MARK = "zq7"
rule_st = st.fixed_dictionaries(
    {"action": st.sampled_from(["replace", "keep", "drop", "labeldrop", "labelkeep", "labelmap",
                                "hashmod", "lowercase", "uppercase", "keepequal", "dropequal"])},
    optional={
        "source_labels": st.lists(st.sampled_from(NAMES), min_size=1, max_size=2),
        "regex": st.sampled_from(["(.*)", ".+", "shuttle", "project_id", "x_(.+)", "(.+)_id",
                                  "label_.*|project_id", "(?i)PROJECT_ID", "a|tenant", "zq7.*", "(s.*)"]),
        "target_label": st.sampled_from(["tenant", "job", "a", "project_id", "$1", "t_$1"]),
        "replacement": st.sampled_from(["$1", "x", "shuttle", "${1}_c", "", "$1"]),
        "modulus": st.sampled_from([1, 7]),
    })


def _valid_rules(raw: list[dict], flavor: str) -> list | None:
    out = []
    for r in raw:
        try:
            out.append(rule_from_mapping(r, flavor=flavor))
        except InputError:
            return None
    return out


series_st = st.dictionaries(st.sampled_from(NAMES), st.sampled_from(["shuttle", "a", "x_project_id", "envoy-gateway",
                                                                       "project_id", FORBIDDEN_MARK + "p"]),
                            max_size=6)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(raw=st.lists(rule_st, max_size=5), flavor=st.sampled_from(["prometheus", "vmagent"]),
       inputs=st.lists(series_st, min_size=1, max_size=6))
def test_proof_is_sound_against_the_engine(raw, flavor, inputs):
    policy = pol.load_policy(ROOT / "policies" / "gdpr-labeldrop.yaml")
    rules = _valid_rules(raw, flavor)
    if rules is None:
        return
    pipe = Pipeline([(rules, flavor)], name="random")
    kinds = {leak.kind for leak in prove(pipe, policy)}
    for labels in inputs:
        labels = dict(labels)
        labels.setdefault("__name__", "up")
        for n in list(labels):   # forbidden inputs carry a recognisable value
            if policy.is_forbidden(n):
                labels[n] = FORBIDDEN_MARK + n
        out = run_concrete(pipe, labels)
        if out is None:
            continue
        if any(policy.is_forbidden(n) for n in out):
            assert "label" in kinds, (raw, labels, out)
        if not policy.job_allowed(out.get("job")):
            assert "job" in kinds, (raw, labels, out)
        marks = [v.lower() for n, v in labels.items() if policy.is_forbidden(n)]
        if any(not policy.is_forbidden(n) and any(m in v.lower() or m in n.lower() for m in marks)
               for n, v in out.items()):
            assert "value" in kinds, (raw, labels, out)
