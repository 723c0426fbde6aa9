"""`relabel-lint`: ignored fields, never-matching rules, keep/drop order traps (warnings) and a
labeldrop/labelkeep removing `__name__`/`job` (error), each at the rule's source line."""
from __future__ import annotations

from pathlib import Path

import pytest

from _lintrun import FORMATS, assert_errors_at, check_findings, lint_only
from fleet.checks import relabel_lint

CUSTOMER = "base/relabel/customer.yaml"
PLATFORM = "base/relabel/platform.yaml"
VALUES = "base/components/vmagent/values.yaml"


def _append(root: Path, rel: str, text: str) -> int:
    """Append rules to a relabel file; the line of the first appended rule."""
    path = root / rel
    before = path.read_text()
    path.write_text(before + text)
    return len(before.splitlines()) + 1


def _at(found, rel: str) -> dict[int, list[tuple[str, str]]]:
    out: dict[int, list[tuple[str, str]]] = {}
    for f in found:
        if f.source.file == rel:
            out.setdefault(f.source.line, []).append((f.severity.value, f.message))
    return out


def test_shipped_fleet_is_clean(repo_root: Path) -> None:
    assert check_findings(repo_root, relabel_lint, rendered=True) == []


def test_fields_an_action_ignores_per_agent(fleet_copy: Path) -> None:
    vm = _append(fleet_copy, CUSTOMER, "- action: keep\n  source_labels: [job]\n  regex: .+\n  replacement: unused\n"
                                       "- action: labeldrop\n  regex: uid\n  target_label: x\n")
    alloy = _append(fleet_copy, PLATFORM, "- source_labels: [job]\n  regex: shuttle\n  target_label: owner\n"
                                          "  replacement: platform\n  modulus: 4\n")
    found = check_findings(fleet_copy, relabel_lint)
    customer, platform = _at(found, CUSTOMER), _at(found, PLATFORM)
    assert customer[vm] == [("warning", "keep ignores replacement (vmagent never reads it for this action)")]
    assert customer[vm + 4] == [("warning", "labeldrop ignores target_label (vmagent never reads it for this action)")]
    assert platform[alloy] == [("warning", "replace ignores modulus (Alloy/Prometheus never reads it for this action)")]
    assert relabel_lint.ignored_fields({"source_labels": ["a"], "regex": "x"}, "labelmap", "prometheus") == ["source_labels"]
    assert relabel_lint.ignored_fields({"regex": "x", "modulus": 2}, "hashmod", "vmagent") == ["regex"]


def test_keep_then_a_disjoint_keep_never_matches(fleet_copy: Path) -> None:
    line = _append(fleet_copy, CUSTOMER, "- action: keep\n  source_labels: [job]\n  regex: envoy|customer-pods\n"
                                         "- action: keep\n  source_labels: [job]\n  regex: kube-state-metrics\n")
    (finding,) = _at(check_findings(fleet_copy, relabel_lint), CUSTOMER)[line + 3]
    assert finding == ("warning", f"keep can never match (the keep at {CUSTOMER}:{line} already removed every "
                                  "value it matches): it drops every series")


def test_drop_after_a_keep_that_removed_what_it_matches(fleet_copy: Path) -> None:
    line = _append(fleet_copy, PLATFORM, "- action: drop\n  source_labels: [job]\n  regex: customer-app|team-.+\n")
    found = _at(check_findings(fleet_copy, relabel_lint), PLATFORM)
    keep = next(i for i, text in enumerate((fleet_copy / PLATFORM).read_text().splitlines(), 1) if "action: keep" in text)
    assert found[line] == [("warning", f"drop can never match (the keep at {PLATFORM}:{keep} already removed every "
                                       "value it matches): it drops nothing")]


def test_keep_reading_a_label_an_earlier_rule_dropped(fleet_copy: Path) -> None:
    line = _append(fleet_copy, CUSTOMER, "- action: labeldrop\n  regex: pod_ip\n"
                                         "- action: drop\n  source_labels: [pod_ip]\n  regex: 10\\..+\n")
    found = _at(check_findings(fleet_copy, relabel_lint), CUSTOMER)
    assert found[line + 2] == [("warning", f"drop reads 'pod_ip', which the labeldrop at {CUSTOMER}:{line} already "
                                           "removed: it sees an empty value")]


def test_labeldrop_of_job_and_labelkeep_without_name_are_errors(fleet_copy: Path) -> None:
    line = _append(fleet_copy, CUSTOMER, "- action: labeldrop\n  regex: job|image\n")
    values = fleet_copy / VALUES
    text = values.read_text()
    anchor = "        - action: labeldrop\n          regex: exported_.+|cluster_id|region\n"
    assert anchor in text
    values.write_text(text.replace(anchor, anchor + "        - action: labelkeep\n          regex: job|pod|namespace\n"))
    keep = next(i for i, t in enumerate(values.read_text().splitlines(), 1) if "action: labelkeep" in t)
    found = check_findings(fleet_copy, relabel_lint)
    assert ("error", "labeldrop removes 'job' from every series it sees (regex 'job|image')") in _at(found, CUSTOMER)[line]
    assert _at(found, VALUES)[keep] == [("error", "labelkeep removes '__name__' from every series it sees "
                                                  "(regex 'job|pod|namespace')")]


def test_target_relabeling_may_drop_what_targets_never_carry(fleet_copy: Path) -> None:
    """In relabel_configs (targets: no __name__) a labelkeep of job and __* names is fine, and a
    keep on a label a Kubernetes target cannot carry never matches."""
    values = fleet_copy / VALUES
    text = values.read_text()
    anchor = "        - source_labels: [__meta_kubernetes_endpointslice_port_name]\n"
    assert anchor in text
    extra = ("        - action: labelkeep\n          regex: job|__.+\n"
             "        - source_labels: [namespace]\n          regex: .+\n          action: keep\n")
    values.write_text(text.replace(anchor, extra + anchor))
    lines = values.read_text().splitlines()
    keep = next(i for i, t in enumerate(lines, 1) if "source_labels: [namespace]" in t)
    found = _at(check_findings(fleet_copy, relabel_lint), VALUES)
    assert sorted(found) == [keep, keep + 3]  # the labelkeep passes; the keep drops all; the next never runs
    assert found[keep][0][1].startswith("keep can never match (its regex matches no value of namespace")
    assert found[keep + 3] == [("warning", f"keep never runs: the rule before it ({VALUES}:{keep}) already "
                                           "drops every series")]


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_names_the_rule(fleet_copy: Path, fmt: str) -> None:
    line = _append(fleet_copy, CUSTOMER, "- action: labeldrop\n  regex: job\n")
    assert_errors_at(fleet_copy, relabel_lint, fmt, {(CUSTOMER, line)})


def test_a_field_vmagent_v1150_refuses_is_bad_input_at_its_line(fleet_copy: Path) -> None:
    """The engine models v1.150, so a field v1.150 refuses (vmagent would not start) stops the
    load itself: exit 2 at the rule's line, before any check runs."""
    line = _append(fleet_copy, CUSTOMER, "- action: drop_if_equal\n  source_labels: [namespace, exported_namespace]\n"
                                         "  regex: .+\n")
    result = lint_only(fleet_copy, relabel_lint)
    assert result.exit_code == 2, result.output
    assert f"{CUSTOMER}:{line}:" in result.output
    assert "`regex` cannot be used for `action=drop_if_equal`" in result.output