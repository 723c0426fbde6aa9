"""fleet.relabel.loader: both file shapes, positions of rules, and errors with file:line:col."""
from __future__ import annotations

from pathlib import Path

import pytest

from fleet import yamlio
from fleet.errors import InputError, SourceRef
from fleet.relabel.loader import load_rules, rules_from_yaml_list


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.yml"
    path.write_text(text)
    return path


def test_bare_list_vmagent_form(tmp_path):
    path = write(tmp_path, "# vmagent -remoteWrite.relabelConfig\n"
                           "- action: labeldrop\n"
                           "  regex: [a, b]\n"
                           "- source_labels: [x]\n"
                           "  target_label: y\n")
    rules = load_rules(path, "r.yml", flavor="vmagent")
    assert [r.action for r in rules] == ["labeldrop", "replace"]
    assert rules[0].regex == "a|b"
    assert [r.source for r in rules] == [SourceRef("r.yml", 2, 3), SourceRef("r.yml", 4, 3)]


def test_mapping_form_keeps_pipeline_order(tmp_path):
    path = write(tmp_path, "write_relabel_configs:\n"
                           "  - {action: keep, source_labels: [b], regex: y}\n"
                           "job_name: x\n"
                           "relabel_configs:\n"
                           "  - source_labels: [a]\n"
                           "    target_label: b\n"
                           "metric_relabel_configs: []\n")
    rules = load_rules(path, "m.yml")
    assert [r.action for r in rules] == ["replace", "keep"]
    assert rules[0].source == SourceRef("m.yml", 5, 5)
    assert rules[1].source == SourceRef("m.yml", 2, 5)


def test_empty_file_and_empty_key(tmp_path):
    assert load_rules(write(tmp_path, "")) == []
    assert load_rules(write(tmp_path, "relabel_configs:\n")) == []


def test_invalid_rule_reports_its_line(tmp_path):
    path = write(tmp_path, "- target_label: ok\n- action: keep\n  bogus: 1\n")
    with pytest.raises(InputError) as info:
        load_rules(path, "bad.yml")
    assert info.value.source == SourceRef("bad.yml", 2, 3)
    assert "bogus" in info.value.message


def test_flavor_decides_validation(tmp_path):
    path = write(tmp_path, "- action: keep\n  regex: x\n")
    assert load_rules(path)[0].action == "keep"
    with pytest.raises(InputError, match="missing `source_labels`"):
        load_rules(path, flavor="vmagent")


@pytest.mark.parametrize("text,message", [
    ("foo: 1\n", "no relabel rules found"),
    ("relabel_configs: {a: 1}\n", "must be a list"),
    ("- just a string\n", "must be a mapping"),
    ("'scalar'\n", "must be a YAML list or mapping"),
    ("- {a: 1, a: 2}\n", "duplicate key"),
])
def test_shape_errors(tmp_path, text, message):
    with pytest.raises(InputError, match=message) as info:
        load_rules(write(tmp_path, text), "s.yml")
    assert info.value.source is not None and info.value.source.file == "s.yml"


def test_rules_from_loaded_node_keep_lines():
    doc = yamlio.load_text("alloy:\n  rules:\n    - target_label: a\n      replacement: b\n", "c.yml")
    rules = rules_from_yaml_list(doc["alloy"]["rules"], "c.yml")
    assert rules[0].source == SourceRef("c.yml", 3, 7)
    assert rules[0].replacement == "b"
