"""k8s-schema: rendered objects, strict core schemas (kubernetes-validate files) and our Flux schemas."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import kubernetes_validate
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st


from fleet.checks import CheckContext, k8s_schema
from fleet.k8s import cilium, core, fastcheck, flux, objects
from fleet.k8s.crd import crd_group
from fleet.k8s.validate import VerdictCache, schema_violations


@pytest.fixture(scope="module")
def shipped(rendered_root):
    return list(objects.iter_objects(rendered_root / "rendered", skeleton=False))


def ctx_for(root: Path, fleet, **options) -> CheckContext:
    return CheckContext(root=root, fleet=fleet, rendered=root / "rendered", options=options)


def sample(shipped, kind: str) -> str:
    """The text of the first shipped document of this kind (the mutation tests edit it)."""
    return next(o.text for o in shipped if o.kind == kind).lstrip("\n")


def lint_docs(tmp_path: Path, fleet, docs: list[str], name: str = "x.yaml"):
    """Write documents into rendered/clusters/c1/<name> and run k8s-schema on that tree."""
    path = tmp_path / "rendered" / "clusters" / "c1" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# header line\n" + "---\n".join(d if d.endswith("\n") else d + "\n" for d in docs))
    return list(k8s_schema.check(ctx_for(tmp_path, fleet))), path


def line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


# -- reading rendered objects --------------------------------------------------------------------

def test_iter_objects_reads_every_object_and_skips_kustomize_files(rendered_root, shipped):
    files = {o.path for o in shipped}
    assert all(f.startswith("rendered/clusters/") for f in files)
    assert not any(f.endswith("kustomization.yaml") or f.endswith(".alloy") for f in files)
    kinds = {o.kind for o in shipped}
    assert {"Namespace", "Deployment", "GitRepository", "HelmRepository", "OCIRepository", "HelmRelease",
            "Kustomization", "ClusterRole"} <= kinds
    assert all(o.api_version != "kustomize.config.k8s.io/v1beta1" for o in shipped)
    for obj in shipped[:40]:  # the reported line is the document's apiVersion line in the file
        lines = (rendered_root / obj.path).read_text().splitlines()
        assert lines[obj.line - 1].startswith("apiVersion:"), (obj.path, obj.line)


def test_iter_objects_positions_index_and_digest(tmp_path):
    folder = tmp_path / "rendered" / "clusters" / "c1"
    folder.mkdir(parents=True)
    (folder / "a.yaml").write_text("# head\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n"
                                   "---\n---\n# only a comment\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n"
                                   "  name: b\n")
    (folder / "b.yml").write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n")
    (folder / "kustomization.yaml").write_text("resources: [a.yaml]\n")
    (folder / "config.alloy").write_text("// not yaml: {{{\n")
    got = list(objects.iter_objects(tmp_path / "rendered"))
    assert [(o.path, o.index, o.line, o.name) for o in got] == [
        ("rendered/clusters/c1/a.yaml", 0, 3, "a"), ("rendered/clusters/c1/a.yaml", 1, 11, "b"),
        ("rendered/clusters/c1/b.yml", 0, 1, "a")]
    assert got[0].digest == got[2].digest != got[1].digest
    assert got[0].cluster == "c1"
    assert got[1].source(["metadata", "name"]).line == 14


def test_iter_objects_reports_yaml_syntax_errors_with_position(tmp_path):
    folder = tmp_path / "rendered" / "clusters" / "c1"
    folder.mkdir(parents=True)
    (folder / "bad.yaml").write_text("apiVersion: v1\nkind: [Namespace\n")
    with pytest.raises(Exception) as info:
        list(objects.iter_objects(tmp_path / "rendered"))
    assert "rendered/clusters/c1/bad.yaml:" in str(info.value)


def test_timestamps_stay_strings_like_kubectl(tmp_path):
    folder = tmp_path / "rendered" / "clusters" / "c1"
    folder.mkdir(parents=True)
    (folder / "a.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  day: 2024-01-01\n")
    (obj,) = objects.iter_objects(tmp_path / "rendered")
    assert obj.obj["data"]["day"] == "2024-01-01"


def test_skeleton_only_drops_helmrelease_values(rendered_root, shipped):
    skeletons = list(objects.iter_objects(rendered_root / "rendered", skeleton=True))
    assert len(skeletons) == len(shipped)
    stripped = 0
    for full, skel in zip(shipped, skeletons):
        assert (full.path, full.index, full.line) == (skel.path, skel.index, skel.line)
        if skel.skeleton:
            stripped += 1
            assert full.kind == "HelmRelease" and skel.obj["spec"]["values"] == {}
            expected = copy.deepcopy(full.obj)
            expected["spec"]["values"] = {}
            assert skel.obj == expected
        else:
            assert skel.obj == full.obj
    assert stripped == sum(1 for o in shipped if o.kind == "HelmRelease")


@pytest.mark.parametrize("values", ["  values:\n    - a\n    - b\n", "  values:\n    just text\n",
                                    "  values:\n", "  values: {a: 1}\n", "  values:\n  - a\n"])
def test_strip_opaque_leaves_non_mappings_alone(values):
    body = "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nspec:\n  interval: 1m\n" + values
    assert objects.strip_opaque(body) is None


def test_strip_opaque_only_touches_spec_values():
    body = ("apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  values:\n    a: 1\n"
            "spec:\n  interval: 1m\n  values:\n    b:\n      c: 2\n\n    d: 3\n  wait: true\n")
    out = objects.strip_opaque(body)
    assert out is not None and "    a: 1" in out and "  values: {}\n  wait: true\n" in out and "c: 2" not in out


# -- core kinds ------------------------------------------------------------------------------------

def test_shipped_fleet_passes(rendered_root, fleet):
    assert list(k8s_schema.check(ctx_for(rendered_root, fleet))) == []


def test_core_validators_agree_with_kubernetes_validate(shipped):
    """Same files, same strictness: our cached validators and the library agree, valid or not."""
    schemas = core.core_schemas("1.33.0")
    assert schemas.label == "v1.33.0-local-strict"
    core_objs = [o for o in shipped if not flux.is_flux(o.api_version) and not crd_group(o.api_version)
                 and not cilium.is_cilium(o.api_version)]
    seen = set()
    for obj in core_objs:
        if obj.kind in seen:
            continue
        seen.add(obj.kind)
        bad = copy.deepcopy(obj.obj)
        bad["metadata"]["unknownField"] = "x"
        for data, valid in ((obj.obj, True), (bad, False)):
            ours = schemas.validator(data["apiVersion"], data["kind"]).is_valid(data)
            try:
                kubernetes_validate.validate(data, "1.33.0", strict=True)
                theirs = True
            except kubernetes_validate.ValidationError:
                theirs = False
            assert ours == theirs == valid, (obj.describe(), valid)
    assert {"Namespace", "Deployment", "ClusterRole", "ServiceAccount", "NetworkPolicy"} <= seen


def test_deployment_replicas_as_string(tmp_path, fleet, shipped):
    doc = sample(shipped, "Deployment").replace("  replicas: 1\n", "  replicas: '1'\n")
    findings, path = lint_docs(tmp_path, fleet, [doc])
    (f,) = findings
    assert f.check == "k8s-schema" and f.severity.value == "error"
    assert "Deployment starform-system/shuttle: wrong type: got string '1' at $.spec.replicas" in f.message
    assert "expected integer" in f.message
    assert (f.source.file, f.source.line) == ("rendered/clusters/c1/x.yaml", line_of(path, "replicas: '1'"))


def test_unknown_core_field_and_unknown_core_api(tmp_path, fleet, shipped):
    ns = sample(shipped, "Namespace")
    bogus = ns.replace("kind: Namespace", "kind: Namespace\nspec:\n  finalizers: []\n  color: blue")
    removed = sample(shipped, "Deployment").replace("apiVersion: apps/v1", "apiVersion: extensions/v1beta1")
    findings, path = lint_docs(tmp_path, fleet, [bogus, removed])
    messages = [f.message for f in findings]
    assert any("unknown field 'color' at $.spec.color" in m for m in messages)
    assert any("unknown/removed API extensions/v1beta1 Deployment: no Kubernetes 1.33.0 schema" in m for m in messages)


def test_not_a_kubernetes_object(tmp_path, fleet):
    findings, _ = lint_docs(tmp_path, fleet, ["- just\n- a list\n", "metadata:\n  name: x\n"])
    assert [("not a Kubernetes object" in f.message or "missing or invalid apiVersion" in f.message)
            for f in findings] == [True, True]


# -- Flux kinds (our schemas) --------------------------------------------------------------------

def test_helmrelease_unknown_spec_field(tmp_path, fleet, shipped):
    doc = sample(shipped, "HelmRelease").replace("  interval: 10m\n", "  interval: 10m\n  bogusField: 1\n", 1)
    findings, path = lint_docs(tmp_path, fleet, [doc])
    (f,) = findings
    assert "HelmRelease" in f.message and "unknown field 'bogusField' at $.spec.bogusField" in f.message
    assert f.source.line == line_of(path, "bogusField")


def test_helmrelease_removed_api_version(tmp_path, fleet, shipped):
    doc = sample(shipped, "HelmRelease").replace("helm.toolkit.fluxcd.io/v2", "helm.toolkit.fluxcd.io/v2beta1")
    findings, path = lint_docs(tmp_path, fleet, [doc])
    (f,) = findings
    assert "unknown/removed API helm.toolkit.fluxcd.io/v2beta1 HelmRelease" in f.message
    assert f.hint == "use apiVersion helm.toolkit.fluxcd.io/v2"
    assert f.source.line == line_of(path, "v2beta1")


def test_helmrelease_chart_and_chartref(tmp_path, fleet, shipped):
    doc = next(o.text for o in shipped if o.kind == "HelmRelease" and "chartRef" in o.obj["spec"])
    both = doc.replace("spec:\n", "spec:\n  chart:\n    spec:\n      chart: gateway-helm\n      version: 1.0.0\n"
                       "      interval: 1h\n      sourceRef:\n        kind: HelmRepository\n        name: x\n", 1)
    findings, _ = lint_docs(tmp_path, fleet, [both])
    assert [f.message.split(": ", 1)[1] for f in findings] == [
        "exactly one of spec.chart or spec.chartRef must be set at $.spec"]


def test_ocirepository_layer_selector_operation(tmp_path, fleet, shipped):
    doc = sample(shipped, "OCIRepository").replace("operation: copy", "operation: move")
    findings, path = lint_docs(tmp_path, fleet, [doc])
    (f,) = findings
    assert "'move' is not allowed at $.spec.layerSelector.operation; expected one of 'extract', 'copy'" in f.message
    assert f.source.line == line_of(path, "operation: move")


def test_kustomization_missing_source_ref(tmp_path, fleet, shipped):
    doc = sample(shipped, "Kustomization")
    doc = doc.replace("  sourceRef:\n    kind: GitRepository\n    name: flux-system\n", "")
    findings, path = lint_docs(tmp_path, fleet, [doc])
    (f,) = findings
    assert "Kustomization flux-system/" in f.message and "missing required field 'sourceRef' at $.spec" in f.message
    assert f.source.line == line_of(path, "spec:")


def test_duration_in_words(tmp_path, fleet, shipped):
    doc = sample(shipped, "Kustomization").replace("  interval: 10m\n", "  interval: 10 minutes\n")
    findings, path = lint_docs(tmp_path, fleet, [doc])
    (f,) = findings
    assert "'10 minutes' is not valid at $.spec.interval" in f.message and "Go duration" in f.message
    assert f.source.line == line_of(path, "10 minutes")


def test_helmrelease_values_must_stay_a_mapping(tmp_path, fleet, shipped):
    """Skeleton reading never hides a values type error: a list is parsed as written."""
    doc = sample(shipped, "HelmRelease")
    head, _, _ = doc.partition("  values:\n")
    findings, _ = lint_docs(tmp_path, fleet, [head + "  values:\n    - a\n"])
    assert any("wrong type: got array" in f.message and "$.spec.values" in f.message for f in findings)


def test_every_flux_kind_the_renderer_emits_has_a_schema(shipped):
    emitted = {(o.api_version, o.kind) for o in shipped if flux.is_flux(o.api_version)}
    assert emitted and emitted <= set(flux.schema_index())


def test_identical_documents_are_validated_once(tmp_path, fleet, shipped):
    doc = sample(shipped, "Namespace").replace("name: ", "name: once-")
    cache = VerdictCache()
    objs = [objects.RenderedObject("f", i, 1, {"apiVersion": "v1", "kind": "Namespace"}, "same", doc, 1)
            for i in range(50)]
    calls = []
    for obj in objs:
        cache.get("k", obj, lambda data: calls.append(1) or [])
    assert (len(calls), cache.hits, cache.misses) == (1, 49, 1)


# -- compiled predicate == jsonschema ------------------------------------------------------------

def _validators(shipped):
    schemas = core.core_schemas("1.33.0")
    out = {}
    for obj in shipped:
        key = (obj.api_version, obj.kind)
        if key not in out and not crd_group(obj.api_version):  # CRD kinds: flux-crds, real CRDs
            validator = (flux.validator(*key) if flux.is_flux(obj.api_version) else
                         cilium.validator(*key) if cilium.is_cilium(obj.api_version) else schemas.validator(*key))
            out[key] = (validator, obj.obj)
    return out


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 70000) | st.floats(allow_nan=False, allow_infinity=False, width=32)
    | st.sampled_from(["", "a", "10m", "10 minutes", "copy", "move", "CreateReplace", "HelmRepository",
                       "OCIRepository", "https://x", "oci://x", "Recreate", "v1", "1.2.3", "-bad-", "a" * 70]),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.sampled_from(["name", "kind", "x", "spec"]),
                                                                 inner, max_size=2),
    max_leaves=4)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(data=st.data())
def test_fast_predicate_agrees_with_jsonschema(shipped, data):
    validators = _validators(shipped)
    key = data.draw(st.sampled_from(sorted(validators)))
    validator, original = validators[key]
    obj = copy.deepcopy(original)
    paths = [p for p in _paths(obj) if p]
    for _ in range(data.draw(st.integers(1, 2))):
        path = data.draw(st.sampled_from(paths))
        parent = obj
        try:
            for part in path[:-1]:
                parent = parent[part]
            action = data.draw(st.sampled_from(["set", "delete", "add"]))
            if action == "delete" and isinstance(parent, dict):
                parent.pop(path[-1], None)
            elif action == "add" and isinstance(parent, dict):
                parent[data.draw(st.sampled_from(["extra", "name", "kind"]))] = data.draw(JSON_VALUES)
            else:
                parent[path[-1]] = data.draw(JSON_VALUES)
        except (KeyError, IndexError, TypeError):
            pass
    predicate = fastcheck.compile_schema(validator.schema, validator._registry)
    event(f"valid={validator.is_valid(obj)}")
    assert predicate(obj) == validator.is_valid(obj), json.dumps(obj)[:500]
    assert (schema_violations(validator, obj) == []) == validator.is_valid(obj)


def test_fast_predicate_refuses_unsupported_keywords():
    with pytest.raises(fastcheck.Unsupported):
        fastcheck.compile_schema({"type": "object", "if": {"required": ["a"]}, "then": {"required": ["b"]}})
    assert fastcheck.compile_schema({"x-anything": 1, "format": "email"})("not an email")


# -- parsing through cluster templates is exact ------------------------------------------------------

CLUSTER_IDS = st.sampled_from(["nyc3-prod-02", "fra1-staging-01", "yes", "on", "123", "0x1f", "1e3", "null",
                               "a-b", "true", "12-34", "c1", "x"])
SCALAR_SLOTS = st.sampled_from([
    "{id}", "'{id}'", '"{id}"', "./rendered/clusters/{id}/stages", "pre-{id}", "{id} tail", "|\n    {id}\n",
    ">-\n    {id}\n    more", "[{id}, b]", "{{k: {id}}}", "\"a\\\\{id}\"", "&{id} x", "!!str {id}", "'{id}''s'",
])


@settings(max_examples=300, deadline=None)
@given(cluster=CLUSTER_IDS, slots=st.lists(SCALAR_SLOTS, min_size=1, max_size=4), as_key=st.booleans())
def test_templated_parse_equals_direct_parse(cluster, slots, as_key):
    import yaml

    lines = ["apiVersion: v1", "kind: ConfigMap", "data:"]
    for i, slot in enumerate(slots):
        lines.append(f"  k{i}: " + slot.format(id=cluster))
    if as_key:
        lines.append(f"  {cluster}: v")
    body = "\n".join(lines) + "\n"
    try:
        direct = yaml.load(body, Loader=objects.FastLoader)
    except yaml.YAMLError:
        direct = "error"
    try:
        templated = objects.parse_templated(body, cluster)
    except (objects._NotExact, yaml.YAMLError):
        event("fallback")
        return  # the reader then parses the document as written
    event("templated")
    assert templated == direct, body


def test_templated_reading_matches_direct_reading(rendered_root, shipped):
    import yaml

    for obj in shipped:
        body = obj.text[objects._LEADING_NOISE.match(obj.text).end():]
        assert yaml.load(body, Loader=objects.FastLoader) == obj.obj, obj.describe()


@pytest.mark.parametrize("text,expected", [
    ("a: 1\n", [(1, "a: 1\n")]),
    ("---\na: 1\n", [(1, ""), (1, "\na: 1\n")]),
    ("a: 1\n---\nb: 2\n--- \nc: 3\n----\n", [(1, "a: 1\n"), (2, "\nb: 2\n"), (4, " \nc: 3\n----\n")]),
    ("a: |\n  ---\n---", [(1, "a: |\n  ---\n"), (3, "")]),
])
def test_document_chunks(text, expected):
    assert list(objects._chunks(text)) == expected


def test_unsupported_kubernetes_version_is_bad_input(fleet):
    from types import SimpleNamespace

    from fleet.errors import InputError

    with pytest.raises(InputError) as info:
        k8s_schema.schemas_for(SimpleNamespace(settings={"kubernetesVersion": "1.99.0"}))
    assert "base/fleet.yaml" in str(info.value) and "kubernetesVersion 1.99.0" in str(info.value)
    assert k8s_schema.schemas_for(fleet).label == f"v{fleet.settings['kubernetesVersion']}-local-strict"


def test_our_helmrelease_schema_keeps_values_opaque():
    """What makes skeleton reading (values replaced by {}) sound for k8s-schema."""
    spec = flux.validator("helm.toolkit.fluxcd.io/v2", "HelmRelease").schema["properties"]["spec"]
    values = spec["properties"]["values"]
    assert values["type"] == "object" and set(values) <= {"type", "description"}
    assert "values" not in json.dumps({k: v for k, v in spec.items() if k not in ("properties", "required")})
