"""The proof's parts on their own: domain, transfer functions, path model, witness search."""
from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from fleet.relabel import policy as pol
from fleet.relabel.absdomain import ANY, EPS, Cell, lit, rule_lang, rule_lang_must
from fleet.relabel.analyzer import Analyzer
from fleet.relabel.engine import ACTIONS, apply, rule_from_mapping
from fleet.relabel.paths import Pipeline, run_concrete
from fleet.relabel.transfer import TRANSFER
from fleet.relabel.witness import WitnessFinder

ROOT = Path(__file__).resolve().parents[1]
POLICY = pol.load_policy(ROOT / "policies" / "gdpr-labeldrop.yaml")


# -- abstract domain

def test_cell_join_is_an_upper_bound():
    a = Cell(lit("x"), frozenset({"project_id"}), frozenset({1}))
    b = Cell(EPS, frozenset(), frozenset({2}))
    j = a.join(b)
    assert j.values.contains("x") and j.values.contains("") and j.taint == {"project_id"}
    assert j.writers == {1, 2} and not j.ident


def test_rule_lang_covers_both_anchorings():
    rule = rule_from_mapping({"action": "keep", "source_labels": ["a"], "regex": "x.y"})
    may, must = rule_lang(rule, "prometheus"), rule_lang_must(rule, "prometheus")
    assert may.contains("x\ny") and not must.contains("x\ny")
    assert may.contains("xzy") and must.contains("xzy")


# -- transfer functions: one per engine action, each sound against the engine

def test_every_engine_action_has_a_transfer_function():
    assert set(TRANSFER) == set(ACTIONS)


SAMPLE_RULES = {
    "keep": {"source_labels": ["job"], "regex": "shuttle"},
    "drop": {"source_labels": ["project_id"], "regex": ".+"},
    "replace": {"source_labels": ["project_id"], "target_label": "team"},
    "lowercase": {"source_labels": ["project_id"], "target_label": "team"},
    "uppercase": {"source_labels": ["project_id"], "target_label": "team"},
    "hashmod": {"source_labels": ["project_id"], "target_label": "team", "modulus": 4},
    "labeldrop": {"regex": "project_.+"},
    "labelkeep": {"regex": "job|__name__|team"},
    "labelmap": {"regex": "project_(.+)", "replacement": "p_$1"},
    "keepequal": {"source_labels": ["job"], "target_label": "team"},
    "dropequal": {"source_labels": ["job"], "target_label": "team"},
    "keep_if_equal": {"source_labels": ["job", "team"]},
    "drop_if_equal": {"source_labels": ["job", "team"]},
    # vmagent v1.150's own actions
    "replace_all": {"source_labels": ["project_id"], "target_label": "team", "regex": "1", "replacement": "1!"},
    "labelmap_all": {"regex": "project_id", "replacement": "team"},
    "keep_if_contains": {"source_labels": ["job"], "target_label": "team"},
    "drop_if_contains": {"source_labels": ["job"], "target_label": "team"},
    "keep_metrics": {"regex": "up"},
    "drop_metrics": {"regex": "down"},
    "graphite": {"match": "*", "labels": {"team": "$1"}},
}
VMAGENT_ONLY = {"keep_if_equal", "drop_if_equal", "replace_all", "labelmap_all", "keep_if_contains",
                "drop_if_contains", "keep_metrics", "drop_metrics", "graphite"}
INPUTS = [dict(p) for p in itertools.product(
    [("__name__", "up")], [("job", "shuttle")], [("project_id", "P1"), ("project_id", "")],
    [("team", "shuttle"), ("team", "")])]


def _sample(action: str, flavor: str, with_if: str | None = None):
    data = {"action": action, **SAMPLE_RULES[action]}
    if with_if:
        data["if"] = with_if
    return rule_from_mapping(data, flavor=flavor)


@pytest.mark.parametrize("flavor,action,with_if", [
    ("vmagent" if a in VMAGENT_ONLY else "prometheus", a, None) for a in sorted(ACTIONS)] + [
    ("vmagent", a, w) for a in sorted(ACTIONS) for w in ('{team="shuttle"}', '{team!="shuttle"}')])
def test_transfer_function_over_approximates_the_engine(flavor, action, with_if):
    """Whatever the engine makes of a concrete input, the abstract state after the same rule
    allows; on vmagent also with an `if:` filter that holds for some inputs and not others."""
    rule = _sample(action, flavor, with_if)
    an = Analyzer(POLICY)
    state = an.run([(rule, flavor)])
    for labels in INPUTS:
        out = apply([rule], labels, flavor)
        if out is None:
            continue
        assert not state.dead, (action, labels)
        for name, value in out.items():
            cell = state.cells.get(name)
            if cell is not None:
                assert cell.values.contains(value), (action, name, value)
                if name == "team" and "P1" in value:
                    assert "project_id" in cell.taint, (action, cell)


# -- path model

def test_external_labels_come_before_the_write_relabel_stage():
    drop_cluster = [rule_from_mapping({"action": "labeldrop", "regex": "cluster_id"})]
    pipe = Pipeline([([], "prometheus"), (drop_cluster, "prometheus")], {"cluster_id": "c1"}, write_stages=1)
    assert run_concrete(pipe, {"__name__": "up"}) == {"__name__": "up"}
    pipe = Pipeline([(drop_cluster, "prometheus")], {"cluster_id": "c1"})
    assert run_concrete(pipe, {"__name__": "up"}) == {"__name__": "up", "cluster_id": "c1"}


# -- witness search

def test_witness_is_verified_by_rerunning_the_engine():
    rules = [rule_from_mapping({"action": "replace", "source_labels": ["project_id"], "target_label": "team"}),
             rule_from_mapping({"action": "labeldrop", "regex": "project_id"})]
    pipe = Pipeline([(rules, "prometheus")])
    an = Analyzer(POLICY)
    state = an.run(pipe.flat)
    (leak,) = [l for l in an.leaks(state) if l.kind == "value"]
    finder = WitnessFinder(POLICY, an, pipe, state.constraints)
    witness, output, label, verified = finder.find(leak)
    assert verified and label == "team"
    assert run_concrete(pipe, witness)["team"] == witness["project_id"]


def test_a_witness_is_verified_only_when_a_fresh_run_leaks(monkeypatch):
    """A search that claims a witness it does not have must not make the finding `verified`."""
    from fleet.relabel import proof, witness

    rules = [rule_from_mapping({"action": "replace", "source_labels": ["project_id"], "target_label": "team"}),
             rule_from_mapping({"action": "labeldrop", "regex": "project_id"})]
    pipe = Pipeline([(rules, "prometheus")], name="bogus")
    real = witness.WitnessFinder.find

    def lying(self, leak, tries=120):
        labels, out, label, verified = real(self, leak, tries)
        return {"__name__": "up", "job": "shuttle"}, out, label, True  # a harmless input, claimed

    monkeypatch.setattr(witness.WitnessFinder, "find", lying)
    monkeypatch.setattr(proof, "_CACHE", {})
    leaks = proof.prove(pipe, POLICY)
    assert leaks and all(not lk.verified and "re-run" in lk.note for lk in leaks)
    monkeypatch.setattr(witness.WitnessFinder, "find", real)
    monkeypatch.setattr(proof, "_CACHE", {})
    assert all(lk.verified for lk in proof.prove(pipe, POLICY))


# -- the engine's ReplaceAllString and the domain's exact renames

@pytest.mark.parametrize("regex, name, replacement, expected", [
    ("__meta_(.+)", "__meta_x", "$1", "x"),             # a balanced pattern: one whole match
    ("a)|(b", "abc", "$1", "bc"),                       # escaping: the prefix `a` replaced by ""
    ("a)|(b", "xab", "z${1}_", "xazb_"),                 # the suffix branch, its group expanded
    ("a)|(", "abc", "q", "qbcq"),                       # an empty match at the end is replaced
    ("a)|(", "", "q", "q"),                             # ... and at the start of an empty name
])
def test_labelmap_rename_is_go_replace_all_on_the_anchored_pattern(regex, name, replacement, expected):
    from fleet.relabel.engine import replace_all

    rule = rule_from_mapping({"action": "labelmap", "regex": regex, "replacement": replacement})
    assert replace_all(rule.pattern("prometheus"), name, replacement) == expected


def test_prefix_capture_renames_a_language_exactly():
    from fleet.relabel.absdomain import prefix_capture
    from fleet.relabel.regexlang import Lang
    from fleet.relabel.transfer import _renamed

    rule = rule_from_mapping({"action": "labelmap", "regex": "tmp_(?P<v>.+)", "replacement": "x_${v}"})
    assert prefix_capture(rule) == ("tmp_", "x_", "")
    names = Lang.from_re2("tmp_(?:team|owner_.*)")
    out = _renamed(rule, "prometheus", names, rule_lang(rule, "prometheus"), ["v"], False)
    assert out.contains("x_team") and out.contains("x_owner_1") and not out.contains("x_tmp_team")
    assert Lang.from_re2("ab(c|d)").strip_prefix("ab").members() == ["c", "d"]


def test_an_endpoint_sends_exemplars_and_metadata_unless_switched_off():
    from fleet.alloy import syntax
    from fleet.alloy.graph import endpoint_sends

    def sends(body: str) -> set[str]:
        (block,) = syntax.parse('prometheus.remote_write "x" {\n  endpoint {\n    url = "https://a"\n' + body
                                + '  }\n}\n', "x.alloy")
        return set(endpoint_sends(block.blocks("endpoint")[0]))

    assert sends("") == {"exemplars", "metadata"}
    assert sends("    send_exemplars = false\n    metadata_config {\n      send = false\n    }\n") == set()
    assert sends("    send_exemplars = true\n    metadata_config {\n      send = false\n    }\n") == {"exemplars"}
