"""relabel-lint's table of fields each action ignores, proved on the real agents: for every
(action, field) the table calls ignored, the pinned vmagent (v1.150) and Prometheus (the
release Alloy vendors) give the same output with and without the field set to a value that
would change the result if it were read; and for every action a field the table calls used
does change it (so the comparison can fail)."""
from __future__ import annotations

import pytest

from _binaries import require_binary
from differential import Case, run_cases
from differential import prometheus as prom
import json
import subprocess
from pathlib import Path

from fleet.checks.relabel_lint import REFUSED, USES

SERIES = [{"__name__": "m", "a": "x", "b": "x"}, {"__name__": "m", "a": "y", "b": "z"}]
#: A valid rule per action, and a "used" field change that alters what it does to SERIES.
BASE = {
    "replace": ({"source_labels": ["a"], "target_label": "t", "regex": "(.*)", "replacement": "$1"}, ("replacement", "X")),
    "keep": ({"source_labels": ["a"], "regex": "x"}, ("regex", "y")),
    "drop": ({"source_labels": ["a"], "regex": "x"}, ("regex", "y")),
    "hashmod": ({"source_labels": ["a"], "target_label": "h", "modulus": 1000}, ("modulus", 1)),
    "labelmap": ({"regex": "a", "replacement": "m2"}, ("replacement", "m3")),
    "labeldrop": ({"regex": "b"}, ("regex", "a")),
    "labelkeep": ({"regex": "__name__|a"}, ("regex", "__name__|b")),
    "lowercase": ({"source_labels": ["a"], "target_label": "l"}, ("target_label", "l2")),
    "uppercase": ({"source_labels": ["a"], "target_label": "u"}, ("target_label", "u2")),
    "keepequal": ({"source_labels": ["a"], "target_label": "b"}, ("target_label", "a")),
    "dropequal": ({"source_labels": ["a"], "target_label": "b"}, ("target_label", "a")),
    "keep_if_equal": ({"source_labels": ["a", "b"]}, ("source_labels", ["a", "a"])),
    "drop_if_equal": ({"source_labels": ["a", "b"]}, ("source_labels", ["a", "a"])),
}
#: A value for each field that would change the outcome on SERIES if the action read it.
PERTURB = {"source_labels": ["b"], "separator": "#", "regex": "nomatch", "target_label": "b",
           "replacement": "X$1", "modulus": 7}
#: Prometheus' Validate refuses these outright (a load error, not an ignored field): not run there.
PROMETHEUS_REFUSED = {"labeldrop", "labelkeep", "keepequal", "dropequal"}


def _cases(flavor: str, skip: set[str]) -> tuple[list[Case], list[tuple[str, str, str]]]:
    """(cases, labels): per action its base rule, the used change, and each ignored field set."""
    cases, labels = [], []
    for action, uses in sorted(USES[flavor].items()):
        if action in skip:
            continue
        base, (used_field, used_value) = BASE[action]
        rule = {"action": action, **base}
        cases.append(Case([rule], SERIES))
        labels.append((action, "base", ""))
        cases.append(Case([{**rule, used_field: used_value}], SERIES))
        labels.append((action, "used", used_field))
        for field in PERTURB:
            if field not in uses and field not in REFUSED[flavor].get(action, ()):
                cases.append(Case([{**rule, field: PERTURB[field]}], SERIES))
                labels.append((action, "ignored", field))
    return cases, labels


def _verdicts(labels: list[tuple[str, str, str]], outputs: list) -> list[str]:
    """Problems: an ignored field that changed the output, an action whose used field did not."""
    base = {action: out for (action, kind, _), out in zip(labels, outputs) if kind == "base"}
    problems = []
    for (action, kind, field), out in zip(labels, outputs):
        if kind == "ignored" and out != base[action]:
            problems.append(f"{action}: {field} is read ({base[action]} → {out})")
        if kind == "used" and out == base[action]:
            problems.append(f"{action}: changing {field} changed nothing: the comparison cannot fail")
    return problems


def test_vmagent_ignores_what_the_table_says() -> None:
    binaries = {"vmagent_bin": require_binary("vmagent"), "victoria_metrics_bin": require_binary("victoria-metrics")}
    cases, labels = _cases("vmagent", set())
    assert _verdicts(labels, run_cases(cases, **binaries)) == []


def test_prometheus_ignores_what_the_table_says() -> None:
    binaries = {"prometheus_bin": require_binary("prometheus"),
                "victoria_metrics_bin": require_binary("victoria-metrics")}
    cases, labels = _cases("prometheus", PROMETHEUS_REFUSED)
    _expected, actual = prom.run_cases(cases, **binaries)
    assert _verdicts(labels, actual) == []


def test_vmagent_refuses_exactly_the_refused_fields(tmp_path: Path) -> None:
    """`vmagent -dryRun` loads the rule list and exits: non-zero for a rule it refuses."""
    vmagent = require_binary("vmagent")
    refused = set()
    for action, uses in sorted(USES["vmagent"].items()):
        base, _ = BASE[action]
        for field in PERTURB:
            if field in uses:
                continue
            rules = tmp_path / f"{action}-{field}.yml"
            rules.write_text("- " + json.dumps({"action": action, **base, field: PERTURB[field]}) + "\n")
            result = subprocess.run([vmagent, "-dryRun", "-remoteWrite.url=http://127.0.0.1:1/api/v1/write",
                                     f"-remoteWrite.urlRelabelConfig={rules}"], capture_output=True, text=True,
                                    timeout=60)
            if result.returncode != 0:
                assert f"`{field}` cannot be used for `action={action}`" in result.stderr + result.stdout
                refused.add((action, field))
    assert refused == {(a, f) for a, fields in REFUSED["vmagent"].items() for f in fields}


def test_the_verdicts_can_fail() -> None:
    """A field the agent did read (its output changed) is reported."""
    labels = [("keep", "base", ""), ("keep", "used", "regex"), ("keep", "ignored", "replacement")]
    assert _verdicts(labels, [[{"a": "x"}], [{"a": "y"}], [{"a": "z"}]]) == ["keep: replacement is read ([{'a': 'x'}] → [{'a': 'z'}])"]
    assert _verdicts(labels, [[{"a": "x"}], [{"a": "x"}], [{"a": "x"}]]) == \
        ["keep: changing regex changed nothing: the comparison cannot fail"]


@pytest.mark.parametrize("flavor", ["prometheus", "vmagent"])
def test_every_action_of_the_table_has_a_case(flavor: str) -> None:
    assert set(USES[flavor]) <= set(BASE)
