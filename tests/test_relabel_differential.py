"""The engine (flavor="vmagent") against the real vmagent 1.79.5 + victoria-metrics.

Hand-picked cases pin the surprising corners; the property test runs >= 1,000 random cases
(RELABEL_DIFF_CASES raises it) in a few vmagent processes and requires zero disagreements,
printing a shrunk counterexample (rules, input, both outputs) when there is one.
"""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from _binaries import require_binary
from differential import Case, compare, render_case, run_cases, run_vmagent, shrink
from differential import prometheus as prom
from differential import strategies

pytestmark = pytest.mark.binary

M = "m"
PINNED = [
    # labelmap walks vmagent's list in arrival order and sees in-place updates
    Case([{"action": "labelmap", "regex": "(a|b)", "replacement": "b"}],
         [{"__name__": M, "a": "2", "b": "1"}, {"__name__": "n", "b": "1", "a": "2"}]),
    # an emptied label stays in the list and labelmap copies its "" over an existing label
    Case([{"target_label": "a", "replacement": ""}, {"action": "labelmap", "regex": "a", "replacement": "b"}],
         [{"__name__": M, "a": "1", "b": "2"}]),
    Case([{"action": "labelmap", "regex": "a", "replacement": "b"}], [{"__name__": M, "a": "", "b": "2"}]),
    # shortcuts: unset regex / literal + .* skip the regex, so newlines match there only
    Case([{"action": "keep", "source_labels": ["a"]}], [{"__name__": M, "a": "x\ny"}]),
    Case([{"action": "keep", "source_labels": ["a"], "regex": "x.*"}], [{"__name__": M, "a": "x\ny"}]),
    Case([{"action": "keep", "source_labels": ["a"], "regex": "x.y"}], [{"__name__": M, "a": "x\ny"}]),
    Case([{"action": "keep", "source_labels": ["a"], "regex": "(x.*)"}], [{"__name__": M, "a": "x\ny"}]),
    Case([{"source_labels": ["a"], "target_label": "b"}], [{"__name__": M, "a": "x\ny"}]),
    Case([{"source_labels": ["a"], "target_label": "b", "regex": "(.*)"}], [{"__name__": M, "a": "x\ny"}]),
    # any expanded target_label is written, valid label name or not
    Case([{"source_labels": ["a"], "target_label": "$1", "regex": "(.*)", "replacement": "v"}], [{"__name__": M, "a": "1x"}]),
    # hashmod is xxhash64 (short input and one past the 32-byte stripes)
    Case([{"action": "hashmod", "source_labels": ["a"], "target_label": "h", "modulus": 1000}],
         [{"__name__": M, "a": "x"}, {"__name__": "n", "a": "hello world, this is longer than 32 bytes!"}]),
    # Go's simple case mapping
    Case([{"action": "uppercase", "source_labels": ["a"], "target_label": "u"}], [{"__name__": M, "a": "straße İi"}]),
    Case([{"action": "lowercase", "source_labels": ["a"], "target_label": "u"}], [{"__name__": M, "a": "ΑΣ İI"}]),
    # a rule that empties the list drops at once; later rules cannot bring it back
    Case([{"action": "labeldrop", "regex": ".*"}, {"target_label": "x", "replacement": "y"}], [{"__name__": M, "a": "1"}]),
    # Go's Expand: $1x is the group "1x", $$ is $, a lone $ stays
    Case([{"target_label": "x", "replacement": "$1x|${1}x|$$|$|$0|$01", "source_labels": ["a"], "regex": "(.)"}],
         [{"__name__": M, "a": "q"}]),
    # losing __name__ is fine for the store; __-labels are finalised away
    Case([{"action": "labeldrop", "regex": "__name__"}, {"target_label": "__tmp", "replacement": "t"}],
         [{"__name__": M, "a": "1"}]),
    Case([], [{"__name__": "", "a": "1"}, {"a": "2"}]),
    # the agents anchor by concatenation; `regex:` null keeps the default
    Case([{"action": "keep", "source_labels": ["a"], "regex": "a|b"}], [{"__name__": M, "a": "b"}, {"__name__": M, "a": "ab"}]),
    Case([{"target_label": "x", "regex": None}], [{"__name__": M, "a": "1"}]),
    Case([{"action": "labeldrop", "regex": ["a", "b.*"]}], [{"__name__": M, "a": "1", "bc": "2", "c": "3"}]),
    # keep_if_equal / drop_if_equal; missing labels are ""
    Case([{"action": "keep_if_equal", "source_labels": ["a", "b", "c"]}],
         [{"__name__": M, "a": "1", "b": "1"}, {"__name__": M, "a": "1", "b": "1", "c": "1"}, {"__name__": M, "x": "1"}]),
    Case([{"action": "drop_if_equal", "source_labels": ["a", "b"]}], [{"__name__": M, "a": "1", "b": "1"}, {"__name__": M, "a": "1"}]),
    # (?i) scoped to its group
    Case([{"action": "keep", "source_labels": ["a"], "regex": "((?i)a)b"}], [{"__name__": M, "a": "Ab"}, {"__name__": M, "a": "AB"}]),
]


@pytest.fixture(scope="module")
def binaries() -> dict:
    return {"vmagent_bin": require_binary("vmagent"),
            "victoria_metrics_bin": require_binary("victoria-metrics")}


def _report(cases: list[Case], actual: list, binaries: dict) -> str:
    problems = compare(cases, actual)
    if not problems:
        return ""
    first = problems[0]
    small, want, got = shrink(first.case, **binaries)
    return (f"{len(problems)} of {len(cases)} cases disagree; case {first.case_index}, shrunk:\n"
            + render_case(small, want, got))


def test_pinned_cases_agree_with_vmagent(binaries):
    actual = run_cases(PINNED, **binaries)
    message = _report(PINNED, actual, binaries)
    assert not message, message


def test_run_vmagent_replays_one_rule_list_over_many_series(binaries):
    out = run_vmagent([[{"action": "labeldrop", "regex": "project_id"}], []],
                      [{"__name__": "up", "project_id": "p1", "job": "j"}, {"__name__": "up"}], **binaries)
    assert out == [[{"__name__": "up"}, {"__name__": "up", "job": "j"}],
                   [{"__name__": "up"}, {"__name__": "up", "job": "j", "project_id": "p1"}]]


def _generated_cases(count: int) -> list[Case]:
    """`count` deterministic cases from the strategies (derandomized: same cases every run)."""
    collected: list[Case] = []

    @settings(max_examples=count, derandomize=True, database=None, deadline=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(strategies.cases())
    def collect(case: tuple) -> None:
        collected.append(Case(case[0], case[1]))

    collect()
    return collected


def test_random_cases_agree_with_vmagent(binaries):
    count = int(os.environ.get("RELABEL_DIFF_CASES", "1000"))
    cases = _generated_cases(count)
    assert len(cases) >= min(count, 1000) * 0.95, "hypothesis produced too few cases"
    actual = run_cases(cases, **binaries)
    assert sum(len(a) for a in actual) > len(cases) / 4, "suspiciously few series reached the store"
    message = _report(cases, actual, binaries)
    assert not message, message


PROMETHEUS_PINNED = [
    # hashmod: md5, big-endian uint64 of the last 8 bytes
    Case([{"action": "hashmod", "source_labels": ["a"], "target_label": "h", "modulus": 1000}],
         [{"__name__": M, "a": "x"}, {"__name__": "n", "a": "hello world, this is longer than 32 bytes!"}]),
    Case([{"action": "keepequal", "source_labels": ["a"], "target_label": "b"}],
         [{"__name__": M, "a": "1", "b": "1"}, {"__name__": "n", "a": "1", "b": "2"}, {"__name__": "o", "c": "1"}]),
    Case([{"action": "dropequal", "source_labels": ["a"], "target_label": "b"}],
         [{"__name__": M, "a": "1", "b": "1"}, {"__name__": "n", "a": "1", "b": "2"}]),
    # labelmap over a sorted snapshot; a deleted label is gone (unlike vmagent)
    Case([{"action": "labelmap", "regex": "(a|b)", "replacement": "b"}], [{"__name__": M, "a": "2", "b": "1"}]),
    Case([{"target_label": "a", "replacement": ""}, {"action": "labelmap", "regex": "a", "replacement": "b"}],
         [{"__name__": M, "a": "1", "b": "2"}]),
    Case([{"action": "labelmap", "regex": "__name__|a", "replacement": "c"}], [{"__name__": M, "a": "1"}]),
    # an expanded target_label that is no label name is skipped
    Case([{"source_labels": ["a"], "target_label": "$1", "regex": "(.*)", "replacement": "v"}],
         [{"__name__": M, "a": "1x"}, {"__name__": M, "a": "ok"}]),
    Case([{"action": "uppercase", "source_labels": ["a"], "target_label": "u"}], [{"__name__": M, "a": "straße İi"}]),
    # an emptied label set can be refilled
    Case([{"action": "labeldrop", "regex": ".*"}, {"target_label": "x", "replacement": "y"}], [{"__name__": M, "a": "1"}]),
    Case([{"target_label": "x", "replacement": "$1x|${1}x|$$|$|$0|$01", "source_labels": ["a"], "regex": "(.)"}],
         [{"__name__": M, "a": "q"}]),
    # actions are case-insensitive; anchoring by concatenation; keep without source_labels
    Case([{"action": "Keep", "source_labels": ["a"], "regex": "a)|(b"}],
         [{"__name__": M, "a": "ab"}, {"__name__": M, "a": "xb"}, {"__name__": M, "a": "xa"}]),
    Case([{"action": "keep"}], [{"__name__": M, "a": "1"}]),
    Case([{"action": "keep", "source_labels": ["a"], "regex": ".+"}], [{"__name__": M, "a": ""}]),
]


def test_pinned_cases_agree_with_prometheus_agent():
    """Prometheus 2.42 in agent mode: write_relabel_configs, remote-written to victoria-metrics."""
    bins = {"prometheus_bin": require_binary("prometheus"),
            "victoria_metrics_bin": require_binary("victoria-metrics")}
    expected, actual = prom.run_cases(PROMETHEUS_PINNED, **bins)
    bad = [render_case(c, e, a).replace("vmagent -remoteWrite.urlRelabelConfig", "write_relabel_configs")
           .replace("engine (flavor=vmagent)", "engine (flavor=prometheus)")
           .replace("real vmagent 1.79.5:    ", "real prometheus 2.42:   ")
           for c, e, a in zip(PROMETHEUS_PINNED, expected, actual) if e != a]
    assert not bad, "\n\n".join(bad)
