"""Table tests for fleet.relabel.engine: every action, the defaults, anchoring, $-expansion,
validation, and the places where Prometheus and vmagent v1.150.0 disagree."""
from __future__ import annotations

import hashlib

import pytest

from fleet.errors import InputError, SourceRef
from fleet.relabel.engine import (
    ACTIONS, FLAVOR_ACTIONS, Rule, apply, expand, rule_from_mapping, trace,
)
from fleet.relabel.xxhash import xxh64


def run(rules: list[dict], labels: dict, flavor: str = "prometheus"):
    return apply([rule_from_mapping(r, flavor=flavor) for r in rules], labels, flavor)


def both(rules: list[dict], labels: dict):
    return run(rules, labels, "prometheus"), run(rules, labels, "vmagent")


def test_action_set_is_the_documented_one():
    assert ACTIONS == {"replace", "keep", "drop", "keepequal", "dropequal", "hashmod", "labelmap",
                       "labeldrop", "labelkeep", "lowercase", "uppercase", "keep_if_equal",
                       "drop_if_equal", "replace_all", "labelmap_all", "keep_metrics", "drop_metrics",
                       "keep_if_contains", "drop_if_contains", "graphite"}
    assert FLAVOR_ACTIONS["vmagent"] == ACTIONS  # v1.150.0 lib/promrelabel accepts every one
    assert "keep_if_equal" not in FLAVOR_ACTIONS["prometheus"]
    assert "graphite" not in FLAVOR_ACTIONS["prometheus"]


def test_defaults():
    r = rule_from_mapping({"target_label": "t"})
    assert (r.action, r.separator, r.regex, r.replacement, r.source_labels) == ("replace", ";", "(.*)", "$1", ())
    assert r.modulus is None and r.source is None


@pytest.mark.parametrize("rules,labels,expected", [
    # replace: copy joined source values with the default regex/replacement
    ([{"source_labels": ["a", "b"], "target_label": "t"}], {"a": "1", "b": "2"}, {"a": "1", "b": "2", "t": "1;2"}),
    # missing source label joins as ""
    ([{"source_labels": ["a", "zz"], "target_label": "t"}], {"a": "1"}, {"a": "1", "t": "1;"}),
    # custom separator
    ([{"source_labels": ["a", "b"], "separator": "", "target_label": "t"}], {"a": "1", "b": "2"}, {"a": "1", "b": "2", "t": "12"}),
    # non-matching regex leaves labels unchanged
    ([{"source_labels": ["a"], "regex": "x", "target_label": "a", "replacement": "y"}], {"a": "1"}, {"a": "1"}),
    # empty result deletes the target
    ([{"source_labels": ["zz"], "target_label": "a"}], {"a": "1", "b": "2"}, {"b": "2"}),
    # literal replacement, no source labels
    ([{"target_label": "env", "replacement": "prod"}], {"a": "1"}, {"a": "1", "env": "prod"}),
    # target_label template
    ([{"source_labels": ["a"], "regex": "(.*)_(.*)", "target_label": "l_$1", "replacement": "$2"}],
     {"a": "x_y"}, {"a": "x_y", "l_x": "y"}),
    # keep / drop
    ([{"action": "keep", "source_labels": ["a"], "regex": "1|2"}], {"a": "2"}, {"a": "2"}),
    ([{"action": "keep", "source_labels": ["a"], "regex": "1"}], {"a": "12"}, None),
    ([{"action": "drop", "source_labels": ["a"], "regex": "1.*"}], {"a": "12"}, None),
    ([{"action": "drop", "source_labels": ["a"], "regex": "2"}], {"a": "12"}, {"a": "12"}),
    # drop matching "" — a missing label is the empty string
    ([{"action": "drop", "source_labels": ["missing"], "regex": ""}], {"a": "1"}, None),
    # labelmap (default replacement $1)
    ([{"action": "labelmap", "regex": "__meta_(.+)"}], {"__meta_x": "1", "y": "2"}, {"__meta_x": "1", "x": "1", "y": "2"}),
    # labeldrop / labelkeep act on names, anchored
    ([{"action": "labeldrop", "regex": "a"}], {"a": "1", "ab": "2"}, {"ab": "2"}),
    ([{"action": "labelkeep", "regex": "a.*"}], {"a": "1", "ab": "2", "b": "3"}, {"a": "1", "ab": "2"}),
    # lowercase / uppercase
    ([{"action": "lowercase", "source_labels": ["a"], "target_label": "l"}], {"a": "AbC"}, {"a": "AbC", "l": "abc"}),
    ([{"action": "uppercase", "source_labels": ["a", "b"], "target_label": "u"}], {"a": "x", "b": "y"}, {"a": "x", "b": "y", "u": "X;Y"}),
    # Go's simple case mapping: ß has no single-rune upper case, İ lowers to i
    ([{"action": "uppercase", "source_labels": ["a"], "target_label": "u"}], {"a": "straße"}, {"a": "straße", "u": "STRAßE"}),
    ([{"action": "lowercase", "source_labels": ["a"], "target_label": "u"}], {"a": "İ"}, {"a": "İ", "u": "i"}),
    # labels with empty values are absent
    ([{"action": "keep", "source_labels": ["a"], "regex": ".+"}], {"a": ""}, None),
])
def test_actions_agree_on_both_flavors(rules, labels, expected):
    assert run(rules, labels, "prometheus") == expected
    assert run(rules, labels, "vmagent") == expected


@pytest.mark.parametrize("regex,value,hit", [
    ("a", "a", True), ("a", "ba", False), ("a", "ab", False),   # fully anchored
    ("a|b", "b", True), ("a|bc", "ab", False),                   # alternation inside the anchor
    ("(?i)abc", "ABC", True), ("x(?i)abc", "xABC", True), ("(?i)x", "X", True),
    ("((?i)a)b", "Ab", True), ("((?i)a)b", "AB", False),        # flag scoped to its group (RE2)
    ("^a$", "a", True), ("a$|b", "b", True),                       # anchors inside are harmless
    ("[a-c]+", "abcab", True), ("[^a]", "a", False), (r"\d{2}", "12", True),
    ("", "", True), ("", "x", False),
    # the agents anchor by concatenation: ^(?s:a)|(b)$ is NOT anchored at both ends
    ("a)|(b", "a", True), ("a)|(b", "ab", True), ("a)|(b", "xb", True), ("a)|(b", "xa", False),
])
def test_regex_anchoring_and_re2(regex, value, hit):
    r = rule_from_mapping({"action": "keep", "source_labels": ["a"], "regex": regex})
    assert r.matches(value) is hit


def test_dot_and_newline():
    """Both match `.` against a newline; vmagent's PromRegex not where the simplified regex is
    a literal then one lone `.` (upstream prints it `(?s:.)` and rewrites that to `.`)."""
    rules = [{"action": "keep", "source_labels": ["a"], "regex": "a.b"}]
    assert run(rules, {"a": "a\nb"}, "prometheus") == {"a": "a\nb"}
    assert run(rules, {"a": "a\nb"}, "vmagent") == {"a": "a\nb"}
    lone = [{"action": "keep", "source_labels": ["a"], "regex": "a."}]
    assert run(lone, {"a": "a\n"}, "prometheus") == {"a": "a\n"}
    assert run(lone, {"a": "a\n"}, "vmagent") is None


@pytest.mark.parametrize("template,expected", [
    ("$1", "x"), ("${1}", "x"), ("$1x", ""), ("${1}x", "xx"), ("$2", "y"), ("$3", ""),
    ("$$1", "$1"), ("$", "$"), ("a$", "a$"), ("$-", "$-"), ("${1", "${1"), ("${}", "${}"),
    ("$0", "x-y"), ("$01", ""), ("$name", "y"), ("${name}_", "y_"), ("$name_", ""),
    ("$$$1", "$x"), ("plain", "plain"), ("", ""),
])
def test_expand_like_go(template, expected):
    rule = Rule(regex="(x)-(?P<name>y)")
    m = rule.match("x-y")
    assert expand(template, "x-y", m) == expected


def test_unmatched_optional_group_expands_empty():
    rule = Rule(regex="(a)(b)?")
    assert expand("[$2]", "a", rule.match("a")) == "[]"


def test_replace_with_dollar_templates_in_target_and_value():
    out = run([{"source_labels": ["a"], "regex": "(\\w+)=(\\w+)", "target_label": "${1}",
                "replacement": "$2$$"}], {"a": "k=v"})
    assert out == {"a": "k=v", "k": "v$"}


def test_replace_target_expanding_to_invalid_name_is_skipped_by_prometheus_not_vmagent():
    rules = [{"source_labels": ["a"], "regex": "(.*)", "target_label": "$1", "replacement": "v"}]
    assert run(rules, {"a": "1x"}, "prometheus") == {"a": "1x"}
    assert run(rules, {"a": "1x"}, "vmagent") == {"a": "1x", "1x": "v"}


def test_hashmod_prometheus_is_md5_low_8_bytes():
    value = "10.0.0.1:9100"
    want = int.from_bytes(hashlib.md5(value.encode()).digest()[8:], "big") % 7
    out = run([{"action": "hashmod", "source_labels": ["a"], "modulus": 7, "target_label": "h"}], {"a": value})
    assert out == {"a": value, "h": str(want)}


def test_hashmod_vmagent_is_xxhash64():
    assert xxh64(b"") == 0xEF46DB3751D8E999
    assert xxh64(b"abc") == 0x44BC2CF5AD770999
    assert xxh64(b"Nobody inspects the spammish repetition") == 0xFBCEA83C8A378BF1
    value = "x" * 40  # exercises the 32-byte stripes
    out = run([{"action": "hashmod", "source_labels": ["a"], "modulus": 1000, "target_label": "h"}],
              {"a": value}, "vmagent")
    assert out["h"] == str(xxh64(value.encode()) % 1000)


def test_keepequal_dropequal_prometheus():
    keep = [{"action": "keepequal", "source_labels": ["a"], "target_label": "b"}]
    drop = [{"action": "dropequal", "source_labels": ["a"], "target_label": "b"}]
    assert run(keep, {"a": "1", "b": "1"}) == {"a": "1", "b": "1"}
    assert run(keep, {"a": "1", "b": "2"}) is None
    assert run(keep, {"c": "1"}) == {"c": "1"}  # "" == "" (both absent)
    assert run(drop, {"a": "1", "b": "1"}) is None
    assert run(drop, {"a": "1", "b": "2"}) == {"a": "1", "b": "2"}


def test_keep_if_equal_vmagent():
    keep = [{"action": "keep_if_equal", "source_labels": ["a", "b", "c"]}]
    drop = [{"action": "drop_if_equal", "source_labels": ["a", "b"]}]
    assert run(keep, {"a": "1", "b": "1", "c": "1"}, "vmagent") == {"a": "1", "b": "1", "c": "1"}
    assert run(keep, {"a": "1", "b": "1", "c": "2"}, "vmagent") is None
    assert run(drop, {"a": "1", "b": "1"}, "vmagent") is None
    assert run(drop, {"a": "1", "b": "2"}, "vmagent") == {"a": "1", "b": "2"}


def test_labelmap_collision_order_differs():
    """Prometheus walks a sorted snapshot; vmagent walks its list and sees in-place updates."""
    rules = [{"action": "labelmap", "regex": "(a|b)", "replacement": "b"}]
    assert run(rules, {"a": "2", "b": "1"}, "prometheus") == {"a": "2", "b": "1"}
    assert run(rules, {"a": "2", "b": "1"}, "vmagent") == {"a": "2", "b": "2"}


def test_vmagent_labelmap_copies_empty_value_over_existing_label():
    rules = [{"target_label": "a", "replacement": ""},                     # a := "" (kept in the list)
             {"action": "labelmap", "regex": "a", "replacement": "b"}]
    assert run(rules, {"a": "1", "b": "2"}, "prometheus") == {"b": "2"}
    assert run(rules, {"a": "1", "b": "2"}, "vmagent") is None or run(rules, {"a": "1", "b": "2"}, "vmagent") == {}


def test_vmagent_default_regex_and_groups():
    """v1.150: a regex that simplifies to `.*` is the default `(.*)` (fast paths, `$1` = value);
    otherwise the match is dotall while the groups come from the non-dotall `^(?:re)$`, so a
    matching value with a newline is written as it is (checked against the real binary)."""
    nl = {"a": "x\ny"}
    assert run([{"action": "keep", "source_labels": ["a"]}], nl, "vmagent") == nl
    assert run([{"action": "keep", "source_labels": ["a"], "regex": "^(.*)$"}], nl, "vmagent") == nl
    assert run([{"action": "drop", "source_labels": ["a"]}], nl, "vmagent") is None
    assert run([{"source_labels": ["a"], "target_label": "b", "regex": "(.*)"}], nl, "vmagent") == {**nl, "b": "x\ny"}
    assert run([{"source_labels": ["a"], "target_label": "b", "regex": "x(.*)", "replacement": "<$1>"}], nl,
               "vmagent") == {**nl, "b": "x\ny"}
    assert run([{"source_labels": ["a"], "target_label": "b", "regex": "x(.*)", "replacement": "<$1>"}],
               {"a": "xy"}, "vmagent") == {"a": "xy", "b": "<y>"}
    assert run([{"action": "labelmap", "regex": "(?:.*$)", "replacement": "${1}_"}], {"a": "1"}, "vmagent") == \
        {"a": "1", "a_": "1"}


@pytest.mark.parametrize("rule,labels,expected", [
    ({"action": "keep", "if": 'm{a="1"}'}, {"__name__": "m", "a": "1"}, {"__name__": "m", "a": "1"}),
    ({"action": "keep", "if": 'm{a="1"}'}, {"__name__": "m", "a": "2"}, None),        # keep drops on a mismatch
    ({"action": "drop", "if": ['{a="2"}', "n"]}, {"__name__": "n"}, None),
    ({"action": "drop", "if": '{a="2" or b=~"x|y"}', "source_labels": ["a"], "regex": "1"},
     {"__name__": "m", "a": "1", "b": "y"}, None),
    ({"if": '{a!~"1"}', "target_label": "t", "replacement": "v"}, {"a": "1"}, {"a": "1"}),  # skipped
    ({"if": '{c=""}', "target_label": "t", "replacement": "{{a}}/{{b}}"}, {"a": "1"}, {"a": "1", "t": "1/"}),
    ({"action": "replace_all", "source_labels": ["a"], "target_label": "b", "regex": "-", "replacement": "_"},
     {"a": "x-y-z"}, {"a": "x-y-z", "b": "x_y_z"}),
    ({"action": "labelmap_all", "regex": "-", "replacement": "_"}, {"a-b": "1"}, {"a_b": "1"}),
    ({"action": "keep_metrics", "regex": "m|n"}, {"__name__": "o"}, None),
    ({"action": "drop_metrics", "regex": "m|n"}, {"__name__": "o"}, {"__name__": "o"}),
    ({"action": "keep_if_contains", "source_labels": ["a"], "target_label": "t"}, {"a": "b", "t": "abc"},
     {"a": "b", "t": "abc"}),
    ({"action": "drop_if_contains", "source_labels": ["a"], "target_label": "t"}, {"a": "b", "t": "abc"}, None),
    ({"action": "keepequal", "source_labels": ["a"], "target_label": "b"}, {"a": "1", "b": "2"}, None),
    ({"action": "graphite", "match": "a.*.c", "labels": {"__name__": "a_c", "b": "$1"}}, {"__name__": "a.x.c"},
     {"__name__": "a_c", "b": "x"}),
    ({"action": "Keep", "source_labels": ["a"], "regex": "1"}, {"a": "1"}, {"a": "1"}),  # lower-cased
])
def test_vmagent_v1150_actions(rule, labels, expected):
    assert run([rule], labels, "vmagent") == expected


def test_all_labels_removed_is_a_drop():
    assert run([{"action": "labeldrop", "regex": ".*"}], {"a": "1"}, "prometheus") is None
    assert run([{"action": "labeldrop", "regex": ".*"}], {"a": "1"}, "vmagent") is None


def test_prometheus_empty_set_can_be_refilled_vmagent_cannot():
    rules = [{"action": "labeldrop", "regex": ".*"}, {"target_label": "x", "replacement": "y"}]
    assert run(rules, {"a": "1"}, "prometheus") == {"x": "y"}
    assert run(rules, {"a": "1"}, "vmagent") is None


def test_trace_stops_at_drop():
    rules = [rule_from_mapping(r) for r in (
        {"target_label": "t", "replacement": "1"},
        {"action": "drop", "source_labels": ["t"], "regex": "1"},
        {"target_label": "u", "replacement": "2"})]
    steps = trace(rules, {"a": "x"})
    assert [s[1] for s in steps] == [{"a": "x", "t": "1"}, None]
    assert steps[1][0] is rules[1]


def test_apply_does_not_mutate_input():
    labels = {"a": "1"}
    run([{"target_label": "a", "replacement": "2"}], labels, "vmagent")
    assert labels == {"a": "1"}


SRC = SourceRef("f.yml", 3, 5)


@pytest.mark.parametrize("flavor,data,message", [
    ("prometheus", {"action": "explode"}, 'unknown relabel action "explode"'),
    ("prometheus", {"action": None, "target_label": "x"}, "relabel action cannot be empty"),
    ("prometheus", {"target_label": "x", "foo": 1}, "field foo not found in type relabel.plain"),
    ("prometheus", {"source_labels": ["a"]}, "relabel configuration for replace action requires 'target_label' value"),
    ("prometheus", {"action": "hashmod", "source_labels": ["a"], "target_label": "h"}, "requires non-zero modulus"),
    ("prometheus", {"action": "hashmod", "modulus": 2}, "hashmod action requires 'target_label'"),
    ("prometheus", {"action": "lowercase", "source_labels": ["a"]}, "lowercase action requires 'target_label'"),
    ("prometheus", {"action": "uppercase", "target_label": "u", "replacement": "x"}, "'replacement' can not be set for uppercase"),
    ("prometheus", {"action": "keepequal", "source_labels": ["a"]}, "keepequal action requires 'target_label'"),
    ("prometheus", {"action": "dropequal", "source_labels": ["a"], "target_label": "b", "separator": ","}, "requires only 'source_labels'"),
    ("prometheus", {"action": "keepequal", "source_labels": ["a"], "target_label": "b", "regex": "(.*)"}, "requires only 'source_labels'"),
    ("prometheus", {"target_label": "a-b"}, '"a-b" is invalid \'target_label\' for replace action'),
    ("prometheus", {"target_label": "$1-b"}, '"$1-b" is invalid \'target_label\''),
    ("prometheus", {"action": "lowercase", "source_labels": ["a"], "target_label": "$1"}, "invalid 'target_label' for lowercase"),
    ("prometheus", {"action": "labelmap", "replacement": "a-$1"}, "is invalid 'replacement' for labelmap"),
    ("prometheus", {"action": "labeldrop", "regex": "a", "source_labels": ["x"]}, "labeldrop action requires only 'regex'"),
    ("prometheus", {"action": "labelkeep", "regex": "a", "target_label": "x"}, "labelkeep action requires only 'regex'"),
    ("prometheus", {"action": "labelkeep", "regex": "a", "replacement": "x"}, "labelkeep action requires only 'regex'"),
    ("prometheus", {"action": "keep", "source_labels": ["a"], "regex": "(a"}, "error parsing regexp"),
    ("prometheus", {"action": "keep", "source_labels": ["a"], "regex": r"a\C"}, "invalid escape"),
    ("prometheus", {"source_labels": ["a-b"], "target_label": "x"}, '"a-b" is not a valid label name'),
    ("prometheus", {"action": "keep_if_equal", "source_labels": ["a", "b"]}, "unknown relabel action"),
    ("prometheus", {"action": "replace", "target_label": "x", "regex": ["a", "b"]}, "cannot unmarshal !!seq"),
    ("prometheus", {"action": "hashmod", "source_labels": ["a"], "target_label": "h", "modulus": -1}, "modulus"),
    ("vmagent", {"action": "explode", "target_label": "x"}, 'unknown `action` "explode"'),
    ("vmagent", {"action": "keepequal", "source_labels": ["a"], "target_label": "b", "regex": "a"},
     "`regex` cannot be used for `action=keepequal`"),
    ("vmagent", {"action": "keep"}, "missing `source_labels` for `action=keep`"),
    ("vmagent", {"action": "drop", "regex": "x"}, "missing `source_labels` for `action=drop`"),
    ("vmagent", {"action": "hashmod", "target_label": "h", "modulus": 2}, "missing `source_labels` for `action=hashmod`"),
    ("vmagent", {"action": "hashmod", "source_labels": ["a"], "target_label": "h"}, "unexpected `modulus` for `action=hashmod`: 0"),
    ("vmagent", {"action": "uppercase", "source_labels": ["a"]}, "missing `target_label` for `action=uppercase`"),
    ("vmagent", {"action": "lowercase", "target_label": "b"}, "missing `source_labels` for `action=lowercase`"),
    ("vmagent", {"action": "keep_if_equal", "source_labels": ["a"]}, 'at least two entries for `action=keep_if_equal`; got ["a"]'),
    ("vmagent", {"action": "replace"}, "missing `target_label` for `action=replace`"),
    ("vmagent", {"action": "labeldrop", "regex": "a)|(b"}, "cannot parse `regex`"),
    ("vmagent", {"action": "graphite", "match": "a.*"}, "missing `labels` for `action=graphite`"),
    ("vmagent", {"action": "graphite", "labels": {"a": "$1"}}, "missing `match` for `action=graphite`"),
    ("vmagent", {"action": "labeldrop", "match": "a.*"}, "`match` config cannot be applied to `action=labeldrop`"),
    ("vmagent", {"action": "replace_all", "target_label": "b"}, "missing `source_labels` for `action=replace_all`"),
    ("vmagent", {"action": "keep_metrics"}, "`regex` must be non-empty for `action=keep_metrics`"),
    ("vmagent", {"action": "drop_metrics", "regex": "a", "source_labels": ["b"]}, "`source_labels` must be empty"),
    ("vmagent", {"action": "keep_if_contains", "source_labels": ["a"]}, "`target_label` must be set"),
    ("vmagent", {"action": "keep", "if": 'm{a="1"} + 1'}, "cannot parse `if` series selector"),
    ("vmagent", {"action": "keep", "if": 'a{__name__="b"}'}, "metric name must not be set twice"),
    ("vmagent", {"action": "keep", "if": '{a=~"("}'}, "cannot parse regexp"),
    ("vmagent", {"action": "labeldrop", "regex": "a", "labels": {"a": "b"}}, "`labels` config cannot be applied"),
])
def test_validation_errors(flavor, data, message):
    with pytest.raises(InputError) as info:
        rule_from_mapping(data, SRC, flavor)
    assert message in info.value.message
    assert info.value.source == SRC


@pytest.mark.parametrize("flavor,data", [
    ("prometheus", {"action": "Replace", "target_label": "x"}),            # Prometheus lower-cases actions
    ("prometheus", {"action": "keep"}),                                     # no source_labels needed
    ("prometheus", {"target_label": "${1}b", "source_labels": ["x"]}),
    ("prometheus", {"action": "labelmap", "regex": "(?<n>a)", "replacement": "${n}"}),  # modern Go
    ("prometheus", {"action": "labeldrop", "regex": "a)|(b"}),
    ("prometheus", {"action": "keepequal", "source_labels": ["a"], "target_label": "b"}),
    ("vmagent", {"target_label": "a-b", "source_labels": ["x-y"]}),         # vmagent checks no names
    ("vmagent", {"action": "labeldrop", "regex": ["a", "b"], "source_labels": ["x"]}),
    ("vmagent", {"action": None, "target_label": "x"}),                     # empty action = replace
    ("vmagent", {"action": "Replace", "target_label": "x"}),                # v1.150 lower-cases actions
    ("vmagent", {"action": "labelmap", "regex": "(?<n>a)", "replacement": "${n}"}),  # Go 1.22+
    ("vmagent", {"action": "keep", "if": ['{a="b"}', 'm{c=~"x.*" or d!="1"}']}),
    ("vmagent", {"action": "drop_metrics", "if": "m"}),
    ("vmagent", {"action": "keepequal", "source_labels": ["a"], "target_label": "b"}),
])
def test_accepted_configs(flavor, data):
    rule_from_mapping(data, SRC, flavor)


def test_null_fields_follow_each_agent():
    p = rule_from_mapping({"target_label": "x", "regex": None, "replacement": None, "separator": None})
    assert (p.regex, p.replacement, p.separator) == ("", "", "")
    v = rule_from_mapping({"target_label": "x", "regex": None, "replacement": None, "separator": None},
                          flavor="vmagent")
    assert (v.regex, v.replacement, v.separator) == ("(.*)", "$1", ";")


def test_vmagent_regex_list_is_alternation():
    r = rule_from_mapping({"action": "labeldrop", "regex": ["a", "b.*"]}, flavor="vmagent")
    assert r.regex == "a|b.*"
    assert run([r.to_mapping()], {"a": "1", "bx": "2", "c": "3"}, "vmagent") == {"c": "3"}


def test_scalar_regex_types():
    assert rule_from_mapping({"action": "keep", "regex": 123}).regex == "123"
    assert rule_from_mapping({"action": "keep", "regex": True}).regex == "true"


def test_labelmap_collision_keeps_the_label_prometheus_builder_walks_last():
    """Several names mapped to one: the last write wins, in `labels.Builder.Range` order (input
    labels no rule touched, by name, then the ones rules set, in the order they were set). A
    label set by an earlier rule is walked after `job`, so it wins (real Prometheus v0.312.0;
    found by the random differential suite)."""
    from fleet.relabel.engine import apply, rule_from_mapping
    rules = [rule_from_mapping(r, flavor="prometheus") for r in (
        {"action": "uppercase", "source_labels": ["a"], "target_label": "a"},
        {"action": "labelmap", "replacement": "lit"})]
    series = {"__name__": "A", "a": "aA1", "instance": "127.0.0.1:1", "job": "relabel-diff"}
    assert apply(rules, series)["lit"] == "AA1"
    assert apply(rules[1:], series)["lit"] == "relabel-diff"   # untouched labels: name order, job last
