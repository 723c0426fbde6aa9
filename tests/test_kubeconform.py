"""kubeconform (the pinned build, tools/upstream.lock) against the project's own schema checks.

kubeconform runs offline over every rendered object of every cluster, strict, with two schema
locations generated here: kubernetes-validate's bundled strict schemas (the folder k8s-schema
reads, at the fleet's pinned Kubernetes version) for built-in kinds, and the shared CRDs
(`openAPIV3Schema` → JSON Schema by `fleet.k8s.crd`, objects closed as the API server prunes
them) for Flux, Gateway API and Envoy Gateway kinds. Its verdict on each object must be the
project's own (k8s-schema for built-in kinds, flux-crds for CRD kinds): all valid for the shipped
objects, all invalid for broken variants. CEL rules are the project's addition (kubeconform has
none), so the broken variants break the structural schema only.
"""
from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path

import pytest
import yaml

from _binaries import require_binary
from conftest import require_shared
from fleet.checks import flux_crds, k8s_schema
from fleet.k8s import cilium, core, crd
from fleet.k8s.objects import RenderedObject, iter_objects

pytestmark = pytest.mark.binary

CRD_FOLDERS = ("flux", "gateway/standard", "envoy-gateway")
SCHEMAS = Path(__file__).resolve().parents[1] / "tools/fleet/schemas"


@pytest.fixture(scope="module")
def crd_sets() -> list[crd.CrdSet]:
    return [crd.load_crds(require_shared(f"crds/{folder}")) for folder in CRD_FOLDERS]


def _go_patterns(node):
    """Patterns as kubeconform (Go) reads them: our schemas spell Go's end-of-text `$` for
    Python's `re.search` (`$(?!\\n)`, `\\Z`), which Go's regexp does not compile."""
    if isinstance(node, list):
        return [_go_patterns(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _go_patterns(v) for k, v in node.items()}
    if isinstance(node.get("pattern"), str):
        out["pattern"] = node["pattern"].replace("$(?!\\n)", "$").replace("\\Z", "$")
    return out


def _standalone(node, base: str = ""):
    """A fleet schema with its `other.schema.json#/$defs/x` references inlined (kubeconform reads
    one file per kind from a local folder and cannot follow them)."""
    if isinstance(node, list):
        return [_standalone(n, base) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        file, _, pointer = node["$ref"].partition("#")
        file = file or base
        target = json.loads((SCHEMAS / file).read_text())
        for part in pointer.strip("/").split("/") if pointer.strip("/") else []:
            target = target[part]
        rest = {k: v for k, v in node.items() if k != "$ref"}
        return _standalone({**target, **rest}, file)
    return {k: _standalone(v, base) for k, v in node.items() if k != "$defs"}


@pytest.fixture(scope="module")
def schema_locations(shipped, crd_sets, fleet, tmp_path_factory) -> list[str]:
    """kubeconform -schema-location templates: the core schemas, then the CRDs'.

    The bundled core files point into `/api/_definitions.json` by absolute `$ref`, which
    kubeconform cannot follow from a local folder, so each built-in kind rendered here is
    written standalone: the same schema with its references inlined (k8s-schema's own form).
    """
    folder = tmp_path_factory.mktemp("kubeconform-schemas")
    for crds in crd_sets:
        for (group, kind, version), served in crds.versions.items():
            path = folder / "crds" / group / f"{kind.lower()}_{version}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(_go_patterns(crd.to_json_schema(served.openapi, root=True))))
    schemas = k8s_schema.schemas_for(fleet)
    (folder / "core").mkdir()
    for api_version, kind in {(o.api_version, o.kind) for o in shipped}:
        if any(crds.defines_group(api_version) for crds in crd_sets):
            continue
        if cilium.is_cilium(api_version):  # our strict schemas of the Cilium fields we emit
            text = json.dumps(_go_patterns(_standalone(cilium.validator(api_version, kind).schema)))
        else:
            validator = schemas.validator(api_version, kind)
            assert validator is not None, (api_version, kind)
            text = json.dumps(validator.schema)
        assert '"$ref"' not in text, (api_version, kind)  # standalone: nothing left to resolve
        (folder / "core" / core.schema_file_name(api_version, kind)).write_text(text)
    return [f"{folder}/core/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json",
            f"{folder}/crds/{{{{ .Group }}}}/{{{{ .ResourceKind }}}}_{{{{ .ResourceAPIVersion }}}}.json"]


@pytest.fixture(scope="module")
def shipped(rendered_root) -> list[RenderedObject]:
    objects = list(iter_objects(rendered_root / "rendered", root=rendered_root))
    assert len(objects) > 50
    return objects


def project_valid(obj: RenderedObject, crd_sets: list[crd.CrdSet], fleet) -> bool:
    """The project's verdict: flux-crds for a kind some shared CRD defines, else k8s-schema."""
    for crds in crd_sets:
        if crds.defines_group(obj.api_version):
            return not flux_crds.violations(obj, crds)
    return not k8s_schema.violations(obj, k8s_schema.schemas_for(fleet))


def kubeconform_valid(docs: list[dict], locations: list[str], workdir: Path) -> list[bool]:
    """kubeconform's verdict per document (one file each), in one run."""
    workdir.mkdir(parents=True, exist_ok=True)
    for i, doc in enumerate(docs):
        (workdir / f"{i:05d}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    args = [require_binary("kubeconform"), "-strict", "-output", "json", "-verbose", "-n", "2"]
    for location in locations:
        args += ["-schema-location", location]
    proc = subprocess.run([*args, str(workdir)], capture_output=True, text=True, timeout=300)
    resources = json.loads(proc.stdout)["resources"]
    status = {Path(r["filename"]).stem: r["status"] for r in resources}
    unexpected = {s for s in status.values()} - {"statusValid", "statusInvalid"}
    assert not unexpected, [r for r in resources if r["status"] in unexpected][:5]  # no missing schema
    assert len(status) == len(docs), (len(status), len(docs))
    return [status[f"{i:05d}"] == "statusValid" for i in range(len(docs))]


def _object(obj: RenderedObject, doc: dict) -> RenderedObject:
    text = yaml.safe_dump(doc, sort_keys=False)
    return RenderedObject(obj.path, obj.index, obj.line, doc, f"broken:{hash(text)}", text, obj.line)


def test_every_rendered_object_gets_the_same_verdict(shipped, crd_sets, schema_locations, fleet, tmp_path):
    verdicts = kubeconform_valid([o.obj for o in shipped], schema_locations, tmp_path / "shipped")
    disagree = [(o.path, o.kind, o.metadata.get("name"), ok) for o, ok in zip(shipped, verdicts)
                if ok != project_valid(o, crd_sets, fleet)]
    assert not disagree, disagree
    assert all(verdicts), [o.path for o, ok in zip(shipped, verdicts) if not ok]
    assert {o.kind for o in shipped} >= {"Deployment", "HelmRelease", "Kustomization", "Namespace"}


def _set(doc: dict, path: tuple, value) -> dict:
    out = copy.deepcopy(doc)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


def _drop(doc: dict, path: tuple) -> dict:
    out = copy.deepcopy(doc)
    node = out
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return out


BROKEN = [  # (kind, how it is broken, mutation)
    ("Deployment", "string replicas", lambda d: _set(d, ("spec", "replicas"), "two")),
    ("Deployment", "unknown spec field", lambda d: _set(d, ("spec", "replicass"), 2)),
    ("Deployment", "no selector (required)", lambda d: _drop(d, ("spec", "selector"))),
    ("Namespace", "integer label value", lambda d: _set(d, ("metadata", "labels"), {"a": 1})),
    ("HelmRelease", "integer interval", lambda d: _set(d, ("spec", "interval"), 5)),
    ("HelmRelease", "unknown spec field", lambda d: _set(d, ("spec", "intervall"), "5m")),
    ("Kustomization", "prune not a boolean", lambda d: _set(d, ("spec", "prune"), "yes")),
]


def test_broken_objects_are_rejected_by_both(shipped, crd_sets, schema_locations, fleet, tmp_path):
    first = {}
    for obj in shipped:
        if obj.api_version.startswith("kustomize.config.k8s.io"):
            continue
        first.setdefault(obj.kind, obj)
    broken = [(kind, what, _object(first[kind], mutate(first[kind].obj))) for kind, what, mutate in BROKEN]
    verdicts = kubeconform_valid([b.obj for _, _, b in broken], schema_locations, tmp_path / "broken")
    for (kind, what, obj), ok in zip(broken, verdicts):
        assert not ok, f"kubeconform accepts a {kind} with {what}"
        assert not project_valid(obj, crd_sets, fleet), f"the project accepts a {kind} with {what}"
