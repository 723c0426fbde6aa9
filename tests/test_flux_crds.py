"""flux-crds: Flux objects against the real CRDs (structural schema → JSON Schema, CEL rules).

The CRDs live outside the repo: $FLEET_SHARED/crds/flux (default <repo>/../shared). Missing
CRDs fail the run under CI=true and skip these tests elsewhere.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest

from fleet.checks import CheckContext, flux_crds
from fleet.k8s import crd, objects

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def crds_dir() -> Path:
    shared = Path(os.environ.get("FLEET_SHARED", ROOT.parent / "shared"))
    folder = shared / "crds" / "flux"
    if not any(folder.glob("*.yaml")):
        message = f"Flux CRDs not found in {folder} (set FLEET_SHARED)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return folder


@pytest.fixture(scope="module")
def shipped(rendered_root):
    return list(objects.iter_objects(rendered_root / "rendered"))


@pytest.fixture(scope="module")
def crds(crds_dir):
    return crd.load_crds(crds_dir)


def run(root: Path, fleet, crds_dir: Path | None):
    ctx = CheckContext(root=root, fleet=fleet, rendered=root / "rendered", options={"crds": crds_dir})
    return list(flux_crds.check(ctx))


def sample(shipped, kind: str, where=lambda o: True) -> str:
    return next(o.text for o in shipped if o.kind == kind and where(o)).lstrip("\n")


def lint_docs(tmp_path: Path, fleet, crds_dir: Path, docs: list[str]):
    path = tmp_path / "rendered" / "clusters" / "c1" / "x.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# header\n" + "---\n".join(d if d.endswith("\n") else d + "\n" for d in docs))
    return run(tmp_path, fleet, crds_dir), path


def line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


# -- the shipped fleet ---------------------------------------------------------------------------

def unvalidated_groups(findings) -> list[str]:
    """The API groups reported as not validated (warnings: no --crds folder defines them)."""
    return sorted(f.message.split()[0] for f in findings if f.severity.value == "warning")


def test_shipped_fleet_passes_the_real_crds(rendered_root, fleet, crds_dir, shipped):
    found = run(rendered_root, fleet, crds_dir)
    assert [f for f in found if f.severity.value != "warning"] == []
    assert unvalidated_groups(found) == ["gateway.envoyproxy.io", "gateway.networking.k8s.io"]
    flux_kinds = {o.kind for o in shipped if "fluxcd.io" in o.api_version}
    assert flux_kinds == {"GitRepository", "HelmRepository", "OCIRepository", "HelmRelease", "Kustomization"}


def test_check_only_warns_without_crds_option(rendered_root, fleet):
    found = run(rendered_root, fleet, None)
    assert unvalidated_groups(found) == ["gateway.envoyproxy.io", "gateway.networking.k8s.io"] and len(found) == 2


def test_crd_set_serves_the_current_flux_apis(crds):
    served = {(v.api_version, v.kind) for v in crds.versions.values()}
    assert {("helm.toolkit.fluxcd.io/v2", "HelmRelease"), ("kustomize.toolkit.fluxcd.io/v1", "Kustomization"),
            ("source.toolkit.fluxcd.io/v1", "OCIRepository"), ("source.toolkit.fluxcd.io/v1", "GitRepository"),
            ("source.toolkit.fluxcd.io/v1", "HelmRepository")} <= served
    assert crds.lookup("helm.toolkit.fluxcd.io/v2beta1", "HelmRelease") is None


def test_helmrelease_values_is_opaque_in_the_crd(crds):
    """What makes skeleton reading (values replaced by {}) sound for this check."""
    version = crds.lookup("helm.toolkit.fluxcd.io/v2", "HelmRelease")
    assert crd.is_opaque(version.openapi, ("spec", "values"))
    assert not crd.is_opaque(version.openapi, ("spec", "chart"))


# -- mutations -------------------------------------------------------------------------------------

def test_chart_and_chartref_caught_by_cel(tmp_path, fleet, crds_dir, shipped):
    doc = sample(shipped, "HelmRelease", lambda o: "chartRef" in o.obj["spec"] and o.name == "envoy-gateway")
    both = doc.replace("spec:\n", "spec:\n  chart:\n    spec:\n      chart: gateway-helm\n      version: 1.0.0\n"
                       "      sourceRef:\n        kind: HelmRepository\n        name: x\n", 1)
    findings, path = lint_docs(tmp_path, fleet, crds_dir, [both])
    (f,) = findings
    assert f.check == "flux-crds" and f.severity.value == "error"
    assert ("HelmRelease envoy-gateway-system/envoy-gateway: CEL validation failed: "
            "either chart or chartRef must be set") in f.message
    assert "at $.spec;" in f.message and f.source.line == line_of(path, "spec:")


def test_neither_chart_nor_chartref_caught_by_cel(tmp_path, fleet, crds_dir, shipped):
    doc = sample(shipped, "HelmRelease", lambda o: "chartRef" in o.obj["spec"])
    head, _, tail = doc.partition("  chartRef:\n")
    tail = tail.split("\n", 3)[3]  # drop kind/name/namespace of chartRef
    findings, _ = lint_docs(tmp_path, fleet, crds_dir, [head + tail])
    assert [f.message.split(": ", 1)[1].split(" at ")[0] for f in findings] == [
        "CEL validation failed: either chart or chartRef must be set"]


def test_unknown_field_in_helmrelease_spec(tmp_path, fleet, crds_dir, shipped):
    doc = sample(shipped, "HelmRelease").replace("  interval: 10m\n", "  interval: 10m\n  bogusField: 1\n", 1)
    findings, path = lint_docs(tmp_path, fleet, crds_dir, [doc])
    (f,) = findings
    assert "unknown field 'bogusField' at $.spec.bogusField" in f.message and "expected one of: chart, chartRef" \
        in f.message
    assert f.source.line == line_of(path, "bogusField")


def test_removed_helmrelease_api(tmp_path, fleet, crds_dir, shipped):
    doc = sample(shipped, "HelmRelease").replace("helm.toolkit.fluxcd.io/v2", "helm.toolkit.fluxcd.io/v2beta1")
    findings, _ = lint_docs(tmp_path, fleet, crds_dir, [doc])
    (f,) = findings
    assert "unknown/removed API helm.toolkit.fluxcd.io/v2beta1 HelmRelease" in f.message
    assert "expected one of: helm.toolkit.fluxcd.io/v2" in f.message


def test_layer_selector_operation(tmp_path, fleet, crds_dir, shipped):
    doc = sample(shipped, "OCIRepository").replace("operation: copy", "operation: move")
    findings, path = lint_docs(tmp_path, fleet, crds_dir, [doc])
    (f,) = findings
    assert "'move' is not allowed at $.spec.layerSelector.operation; expected one of 'extract', 'copy'" in f.message
    assert f.source.line == line_of(path, "operation: move")


def test_kustomization_missing_source_ref(tmp_path, fleet, crds_dir, shipped):
    doc = sample(shipped, "Kustomization").replace("  sourceRef:\n    kind: GitRepository\n    name: flux-system\n", "")
    findings, _ = lint_docs(tmp_path, fleet, crds_dir, [doc])
    (f,) = findings
    assert "missing required field 'sourceRef' at $.spec" in f.message


def test_duration_in_words_and_wrong_types(tmp_path, fleet, crds_dir, shipped):
    kust = sample(shipped, "Kustomization").replace("  interval: 10m\n", "  interval: 10 minutes\n")
    kust = kust.replace("  prune: true\n", "  prune: 'yes'\n")
    findings, _ = lint_docs(tmp_path, fleet, crds_dir, [kust])
    messages = sorted(f.message.split(": ", 1)[1] for f in findings)
    assert any(m.startswith("'10 minutes' is not valid at $.spec.interval; expected a string matching ^([0-9]+")
               for m in messages)
    assert any(m.startswith("wrong type: got string 'yes' at $.spec.prune; expected boolean") for m in messages)


def test_metadata_is_left_to_the_api_server(tmp_path, fleet, crds_dir, shipped):
    doc = sample(shipped, "GitRepository").replace("metadata:\n", "metadata:\n  annotations:\n    a: b\n")
    findings, _ = lint_docs(tmp_path, fleet, crds_dir, [doc])
    assert findings == []


def test_full_values_are_read_when_a_crd_looks_into_them(tmp_path, fleet, crds_dir, shipped):
    """With a CRD whose spec.values is not opaque, the skeleton shortcut is not taken."""
    folder = tmp_path / "crds"
    folder.mkdir()
    text = (crds_dir / "helm.toolkit.fluxcd.io_helmreleases.yaml").read_text()
    text = text.replace("              values:\n", "              values:\n                maxProperties: 1\n", 1)
    (folder / "hr.yaml").write_text(text)
    doc = sample(shipped, "HelmRelease", lambda o: len(o.obj["spec"]["values"]) > 1)
    findings, _ = lint_docs(tmp_path, fleet, folder, [doc])
    assert any("$.spec.values" in f.message and "maxProperties" in f.message for f in findings)


# -- conversion and CEL units --------------------------------------------------------------------

def test_structural_schema_conversion():
    schema = crd.to_json_schema({
        "type": "object",
        "properties": {
            "metadata": {"type": "object"},
            "spec": {"type": "object", "properties": {
                "port": {"x-kubernetes-int-or-string": True},
                "note": {"type": "string", "nullable": True},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "n": {"type": "integer", "format": "int32", "minimum": 0, "exclusiveMinimum": True},
                "timeout": {"type": "string", "format": "duration"},
                "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                "empty": {"type": "object"},
            }, "anyOf": [{"required": ["port"]}, {"required": ["note"]}]},
        },
    }, root=True)
    from jsonschema import Draft202012Validator

    v = Draft202012Validator(schema)
    ok = {"metadata": {"name": "a", "anything": 1}, "spec": {
        "port": "http", "note": None, "free": {"x": {"y": 1}}, "labels": {"a": "b"}, "n": 1, "timeout": "1m30s",
        "tags": ["a", "b"], "empty": {}}}
    assert list(v.iter_errors(ok)) == []
    for path, value in [("port", 1.5), ("n", 0), ("n", 2**31), ("timeout", "90 seconds"), ("tags", ["a", "a"]),
                        ("labels", {"a": 1}), ("empty", {"x": 1}), ("unknown", 1)]:
        bad = copy.deepcopy(ok)
        bad["spec"][path] = value
        assert not v.is_valid(bad), (path, value)
    assert not v.is_valid({"spec": {"free": {}}})  # anyOf: neither port nor note
    assert not v.is_valid({"status": {}})


def test_cel_rules_evaluate_skip_transitions_and_report_field_path():
    tree = crd.rule_tree({"type": "object", "properties": {"spec": {
        "type": "object",
        "x-kubernetes-validations": [
            {"rule": "self.min <= self.max", "message": "min above max", "fieldPath": ".min"},
            {"rule": "self.min == oldSelf.min", "message": "immutable"},
        ],
        "properties": {"items": {"type": "array", "items": {
            "type": "object", "x-kubernetes-validations": [{"rule": "self.name.startsWith('a')",
                                                           "messageExpression": "'bad name ' + self.name"}]}}},
    }}})
    assert crd.cel_violations(tree, {"spec": {"min": 1, "max": 2, "items": [{"name": "ab"}]}}) == []
    found = crd.cel_violations(tree, {"spec": {"min": 3, "max": 2, "items": [{"name": "ab"}, {"name": "zz"}]}})
    assert sorted((v.path, v.message) for v in found) == [
        (("spec", "items", 1), "CEL validation failed: bad name zz"),
        (("spec", "min"), "CEL validation failed: min above max")]


def test_cel_rule_cel_python_cannot_compile_is_a_warning():
    tree = crd.rule_tree({"type": "object", "x-kubernetes-validations": [{"rule": "self.a ==== 1"}]})
    (v,) = crd.cel_violations(tree, {"a": 1})
    assert v.severity.value == "warning" and "not supported by cel-python" in v.message


# -- the compiled predicate agrees with jsonschema on the converted CRD schemas --------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from fleet.k8s import fastcheck  # noqa: E402

LEAVES = st.none() | st.booleans() | st.integers(-2, 2**40) | st.sampled_from(
    ["", "10m", "10 minutes", "copy", "move", "extract", "CreateReplace", "Skip", "OCIRepository", "Bucket",
     "HelmRepository", "oci://x", "https://x", "ssh://x", "RemediateOnFailure", "x" * 300])
VALUES = st.recursive(LEAVES, lambda inner: st.lists(inner, max_size=2) | st.dictionaries(
    st.sampled_from(["name", "kind", "namespace", "retries", "tag", "extra"]), inner, max_size=2), max_leaves=4)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(data=st.data())
def test_fast_predicate_agrees_on_crd_schemas(crds, shipped, data):
    flux_objs = {(o.api_version, o.kind): o.obj for o in shipped if "fluxcd.io" in o.api_version}
    key = data.draw(st.sampled_from(sorted(flux_objs)))
    version = crds.lookup(*key)
    obj = copy.deepcopy(flux_objs[key])
    path = data.draw(st.sampled_from([p for p in _paths(obj) if p and p[0] != "metadata"]))
    parent = obj
    for part in path[:-1]:
        parent = parent[part]
    if data.draw(st.booleans()) and isinstance(parent, dict):
        parent.pop(path[-1])
    else:
        parent[path[-1]] = data.draw(VALUES)
    predicate = fastcheck.compile_schema(version.validator.schema)
    assert predicate(obj) == version.validator.is_valid(obj)


def test_opaque_means_no_rule_above_can_read_it():
    base = {"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "values": {"x-kubernetes-preserve-unknown-fields": True}, "chart": {"type": "string"}}}}}
    assert crd.is_opaque(base, ("spec", "values"))
    for rule in ("size(self.values) < 3", "self.all(k, k != 'x')", "has(self.spec.values)"):
        node = copy.deepcopy(base)
        target = node if "spec" in rule else node["properties"]["spec"]
        target["x-kubernetes-validations"] = [{"rule": rule}]
        assert not crd.is_opaque(node, ("spec", "values")), rule
    node = copy.deepcopy(base)
    node["properties"]["spec"]["x-kubernetes-validations"] = [{"rule": "has(self.chart)"}]
    assert crd.is_opaque(node, ("spec", "values"))
