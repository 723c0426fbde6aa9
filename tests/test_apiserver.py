"""The rendered fleet on a real API server: the pinned kube-apiserver on Debian's etcd (tests/_apiserver.py).

Server-side dry-run: every rendered object of every cluster is applied with `dryRun=All` the way
Flux's kustomize-controller applies it — server-side apply, forced, strict field validation —
cluster by cluster and folder by folder in Flux's order: the cluster's root (flux-system/ and
stages.yaml), then each stage after the one it `dependsOn`, each folder built by `kubectl
kustomize` as Flux builds it (so the configMapGenerator's ConfigMap is applied too). Before that
the shared CRDs are installed for real (Flux; Gateway API, standard channel, what DOKS manages;
Envoy Gateway) and the bootstrap's namespaces created (flux-system by `flux install`, the ones
README's "Bootstrap a cluster" creates). A folder's Namespaces are applied for real first (Flux
applies Namespaces before the rest, and a namespaced dry-run needs its namespace); since they then
outlive the cluster, every namespaced object must name a namespace its own cluster creates in the
same or an earlier stage, or the bootstrap does — checked from the rendered objects.

Any rejection fails with the file and line of the object. Exception, explicit and reported:
Cilium's policies (`cilium.io`), whose CRDs are not in ../shared/crds (its README says why); the
objects of a kind no installed CRD serves fail unless their group is listed in NO_CRD.

Shuttle's ValidatingAdmissionPolicy: its rendered policy, binding, ServiceAccount and RBAC are
applied for real, then each request of the shuttle-admission lint table (the one cel-python
judges) is made for real, with a TokenRequest token of the identity it names (dry-run, on a
state the admin prepares: the namespace's labels, the existing object). The server's verdict must
be the table's and cel-python's, and a denial must come from the policy with the message of the
validation cel-python says fails first. Then Shuttle creates an object of every namespaced kind its
RBAC lets it write, in kube-system and in a customer namespace: the policy's matchConstraints,
which cel-python does not model, must fence each.
"""
from __future__ import annotations

import copy
import re
import shutil
import subprocess
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest
import yaml

import _apiserver
from _apiserver import Client, Resource
from _binaries import require_binary
from conftest import require_shared
from fleet import admission, upstream
from fleet.checks import shuttle_admission
from fleet.k8s.objects import iter_objects

pytestmark = [pytest.mark.binary, pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[1]
CRD_FOLDERS = ("flux", "gateway/standard", "envoy-gateway")
#: API groups whose objects are rendered but cannot be applied: no real CRD is available.
NO_CRD = {"cilium.io": "Cilium's CRDs are not in ../shared/crds (see its README, 'Not here: Cilium CRDs')"}
#: Namespaces every cluster has before Flux runs: the API server's own, and `flux install`'s.
BUILTIN_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease", "flux-system")


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0]


def _key(obj: dict) -> tuple[str, str, str, str]:
    meta = obj.get("metadata") or {}
    return (_group(str(obj.get("apiVersion", ""))), str(obj.get("kind", "")), str(meta.get("namespace") or ""),
            str(meta.get("name", "")))


def bootstrap_namespaces() -> tuple[str, ...]:
    """The namespaces README's bootstrap creates before Flux applies anything, plus the built-in ones."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Bootstrap a cluster", 1)[1].split("\n## ", 1)[0]
    return BUILTIN_NAMESPACES + tuple(re.findall(r"kubectl create namespace ([a-z0-9-]+)", section))


@dataclass
class Server:
    """The real API server, with the shared CRDs installed, and what discovery says it serves."""

    admin: Client
    served: dict[tuple[str, str], Resource]
    kubectl: str


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Server:
    kubectl = require_binary("kubectl")
    crd_files = sorted(f for folder in CRD_FOLDERS for f in require_shared(f"crds/{folder}").glob("*.yaml"))
    server = _apiserver.start(tmp_path_factory.mktemp("apiserver"))
    try:
        admin = server.admin
        served = admin.discovery()
        crds = [doc for f in crd_files for doc in yaml.safe_load_all(f.read_text()) if doc]
        crd_api = served[("apiextensions.k8s.io/v1", "CustomResourceDefinition")]
        for crd in crds:
            done = admin.apply(crd_api, crd, dry_run=False)
            assert done.ok, f"CRD {crd['metadata']['name']}: {done.status} {done.message}"
        _wait_established(admin, crd_api, [c["metadata"]["name"] for c in crds])
        wanted = {(f"{c['spec']['group']}/{v['name']}", c["spec"]["names"]["kind"])
                  for c in crds for v in c["spec"]["versions"] if v.get("served")}
        deadline = time.monotonic() + 60
        while not wanted <= served.keys() and time.monotonic() < deadline:
            time.sleep(0.5)
            served = admin.discovery()
        assert wanted <= served.keys(), f"not served after install: {sorted(wanted - served.keys())}"
        ns_api = served[("v1", "Namespace")]
        for name in bootstrap_namespaces():
            made = admin.apply(ns_api, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
                               dry_run=False)
            assert made.ok, f"namespace {name}: {made.message}"
        yield Server(admin, served, kubectl)
    except Exception:
        print(server.log_tail())
        raise
    finally:
        server.stop()


def _wait_established(admin: Client, crd_api: Resource, names: list[str], timeout: float = 60) -> None:
    pending = set(names)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for name in sorted(pending):
            got = admin.request("GET", crd_api.path(name)).body
            conditions = {c["type"]: c["status"] for c in (got.get("status") or {}).get("conditions") or []}
            if conditions.get("Established") == "True":
                pending.discard(name)
        if pending:
            time.sleep(0.5)
    assert not pending, f"CRDs not Established after {timeout} s: {sorted(pending)}"


# --- every rendered object, server-side dry-run ----------------------------------------------------

def flux_folders(root: Path, cluster_id: str) -> list[Path]:
    """The folders Flux applies for a cluster, in order: the root, then the stages by `dependsOn`."""
    base = root / "rendered" / "clusters" / cluster_id
    stages = {d["metadata"]["name"]: d for d in yaml.safe_load_all((base / "stages.yaml").read_text())
              if d and d.get("kind") == "Kustomization"}
    ordered: list[str] = []
    while len(ordered) < len(stages):
        ready = sorted(n for n, d in stages.items() if n not in ordered
                       and all(dep["name"] in ordered for dep in d["spec"].get("dependsOn") or []))
        assert ready, f"{base / 'stages.yaml'}: dependsOn cycle or unknown stage among {sorted(set(stages) - set(ordered))}"
        ordered.append(ready[0])
    return [base] + [root / stages[n]["spec"]["path"] for n in ordered]


@dataclass
class DryRun:
    applied: int = 0
    failures: list[str] = field(default_factory=list)
    no_crd: Counter = field(default_factory=Counter)


def kustomize(kubectl: str, folder: Path) -> list[dict]:
    built = subprocess.run([kubectl, "kustomize", str(folder)], capture_output=True, text=True)
    assert built.returncode == 0, f"kubectl kustomize {folder}: {built.stderr}"
    return [d for d in yaml.safe_load_all(built.stdout) if d]


def dry_run_cluster(server: Server, root: Path, cluster_id: str) -> DryRun:
    """Apply one cluster's rendered objects in Flux's order: Namespaces for real, the rest dry-run."""
    result = DryRun()
    sources = {_key(o.obj): f"{o.path}:{o.line}" for o in iter_objects(root / "rendered", root=root)
               if o.cluster == cluster_id and isinstance(o.obj, dict) and o.kind}
    unapplied = set(sources)
    namespaces = set(bootstrap_namespaces())
    for folder in flux_folders(root, cluster_id):
        objects = kustomize(server.kubectl, folder)
        objects.sort(key=lambda o: o.get("kind") != "Namespace")
        namespaces |= {o["metadata"]["name"] for o in objects if o.get("kind") == "Namespace"}
        for obj in objects:
            key = _key(obj)
            unapplied.discard(key)
            where = sources.get(key) or f"{(folder / 'kustomization.yaml').relative_to(root)} (generated)"
            what = f"{where}: {obj.get('kind')} {key[2] + '/' if key[2] else ''}{key[3]}"
            api = server.served.get((obj.get("apiVersion"), obj.get("kind")))
            if api is None:
                if key[0] in NO_CRD:
                    result.no_crd[(obj["apiVersion"], obj["kind"])] += 1
                else:
                    result.failures.append(f"{what}: no installed API serves {obj.get('apiVersion')} {obj.get('kind')}")
                continue
            if api.namespaced and (key[2] or "default") not in namespaces:
                result.failures.append(f"{what}: namespace {key[2] or 'default'} is created by no stage up to "
                                       f"{folder.name} of this cluster nor by the bootstrap")
            done = server.admin.apply(api, obj, dry_run=obj.get("kind") != "Namespace")
            if done.ok:
                result.applied += 1
            else:
                result.failures.append(f"{what}: {done.status} {done.message}")
    result.failures += [f"{sources[k]}: {k[1]} {k[3]} is in no folder Flux applies" for k in sorted(unapplied)]
    return result


def test_pinned_apiserver_is_the_fleet_kubernetes_version() -> None:
    """The API server judging the objects is the release lint's schemas are (base/fleet.yaml)."""
    fleet_yaml = yaml.safe_load((REPO / "base/fleet.yaml").read_text())
    assert upstream.version("kube-apiserver") == f"v{fleet_yaml['kubernetesVersion']}"


def test_server_reports_the_pinned_version(server: Server) -> None:
    assert server.admin.request("GET", "/version").body["gitVersion"] == upstream.version("kube-apiserver")


def test_every_rendered_object_passes_server_side_dry_run(server: Server) -> None:
    clusters = sorted(p.name for p in (REPO / "rendered" / "clusters").iterdir() if p.is_dir())
    assert clusters
    failures, no_crd, applied = [], Counter(), 0
    for cluster_id in clusters:
        result = dry_run_cluster(server, REPO, cluster_id)
        assert result.applied > 0, cluster_id
        failures += result.failures
        no_crd += result.no_crd
        applied += result.applied
    assert not failures, "the API server rejects:\n" + "\n".join(failures)
    if no_crd:
        warnings.warn(f"server-side dry-run: {applied} objects applied; not applied for want of a CRD: "
                      + ", ".join(f"{n} {kind} ({api})" for (api, kind), n in sorted(no_crd.items()))
                      + f" — {'; '.join(NO_CRD.values())}", stacklevel=1)


def test_rejections_are_reported_at_their_file_and_line(server: Server, tmp_path: Path) -> None:
    """A broken copy of one cluster: each kind of failure names the object's file and line, and
    the rest of the cluster still applies."""
    cluster_id = "fra1-prod-01"
    rel = f"rendered/clusters/{cluster_id}"
    shutil.copytree(REPO / rel, tmp_path / rel)
    breaks = [  # file, text, replacement, the object's `kind:` line, what the failure must say
        ("stages.yaml", "  interval: 10m\n", "  interval: ten minutes\n", "kind: Kustomization",
         "spec.interval"),                                              # out of the Flux CRD's schema
        ("stages/04-shuttle/shuttle.yaml", "  replicas: 1\n", "  replicas: -1\n", "kind: Deployment",
         "spec.replicas"),                                              # the API's own validation
        ("stages/02-cluster-metrics/network-policy.yaml", "  namespace: starform-metrics\n",
         "  namespace: p-nowhere\n", "kind: NetworkPolicy",
         "namespace p-nowhere is created by no stage up to 02-cluster-metrics"),
        ("stages/01-gateway/custom-resources/gateway-dataplane.yaml", "apiVersion: gateway.networking.k8s.io/v1\n",
         "apiVersion: gateway.networking.k8s.io/v9\n", "kind: GatewayClass", "no installed API serves"),
    ]
    expected = []
    for file, old, new, kind_line, says in breaks:
        path = tmp_path / rel / file
        text = path.read_text()
        assert old in text, (file, old)
        text = text.replace(old, new, 1)
        path.write_text(text)
        # the object's line is its first, `apiVersion:`, just above `kind:` (0-based index = line - 1)
        expected.append((f"{rel}/{file}:{text.splitlines().index(kind_line)}", says))
    (tmp_path / rel / "stages/04-shuttle/stray.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: stray\n  namespace: starform-system\n")
    expected.append((f"{rel}/stages/04-shuttle/stray.yaml:1", "ConfigMap stray is in no folder Flux applies"))
    result = dry_run_cluster(server, tmp_path, cluster_id)
    for where, says in expected:
        assert any(f.startswith(where + ": ") and says in f for f in result.failures), (where, says, result.failures)
    assert {f.split(": ")[0] for f in result.failures} == {where for where, _ in expected}, result.failures
    assert result.applied > 20


# --- Shuttle's admission policy, as Shuttle ---------------------------------------------------------

@dataclass(frozen=True)
class Body:
    api_version: str
    kind: str
    spec: dict


BODIES = {
    "secrets": Body("v1", "Secret", {"type": "Opaque", "stringData": {"k": "v"}}),
    "deployments": Body("apps/v1", "Deployment", {"spec": {
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}},
                     "spec": {"containers": [{"name": "web", "image": "registry.example/web:1"}]}}}}),
}


def _token(admin: Client, username: str) -> str:
    """A TokenRequest token for `system:serviceaccount:<ns>:<name>` (the ServiceAccount must exist)."""
    _, _, namespace, name = username.split(":")
    made = admin.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
                         {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                          "spec": {"expirationSeconds": 3600}})
    assert made.ok, f"token for {username}: {made.message}"
    return made.body["status"]["token"]


def _set_namespace(admin: Client, name: str, labels: dict) -> None:
    """Make namespace `name` exist with exactly `labels` (plus the API server's own name label)."""
    got = admin.request("GET", f"/api/v1/namespaces/{name}")
    if got.status == 404:
        done = admin.request("POST", "/api/v1/namespaces",
                             {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
    else:
        got.body["metadata"]["labels"] = dict(labels)
        done = admin.request("PUT", f"/api/v1/namespaces/{name}", got.body)
    assert done.ok, f"namespace {name}: {done.message}"


def _remove_namespace(admin: Client, name: str, timeout: float = 30) -> None:
    """Delete namespace `name` and finalize it as the namespace controller would (none runs here)."""
    path = f"/api/v1/namespaces/{name}"
    got = admin.request("GET", path)
    if got.status == 404:
        return
    admin.request("DELETE", path)
    deadline = time.monotonic() + timeout
    while (got := admin.request("GET", path)).ok and time.monotonic() < deadline:
        got.body["spec"]["finalizers"] = []
        admin.request("PUT", f"{path}/finalize", got.body)
        time.sleep(0.2)
    assert got.status == 404, f"namespace {name} not removed: {got.status}"


def _labels(obj: dict | None) -> dict:
    return dict(((obj or {}).get("metadata") or {}).get("labels") or {})


def real_request(server: Server, user: Client, request: admission.Request):
    """Prepare the state `request` assumes (as admin), then make it as `user`, dry-run."""
    admin, dry = server.admin, {"dryRun": "All"}
    if request.resource == "namespaces":
        name = (request.obj or request.old)["metadata"]["name"]
        path = f"/api/v1/namespaces/{name}"
        if request.operation == "CREATE":
            _remove_namespace(admin, name)
            return user.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                               "metadata": request.obj["metadata"]}, query=dry)
        _set_namespace(admin, name, _labels(request.old))
        if request.operation == "DELETE":
            return user.request("DELETE", path, query=dry)
        current = admin.request("GET", path).body
        current["metadata"]["labels"] = _labels(request.obj)
        return user.request("PUT", path, current, query=dry)
    body = BODIES.get(request.resource)
    assert body, f"no request body for {request.resource}: add one to BODIES"
    namespace = request.namespace["metadata"]["name"]
    _set_namespace(admin, namespace, _labels(request.namespace))
    name = request.obj["metadata"]["name"]
    api = server.served[(body.api_version, body.kind)]
    obj = {"apiVersion": body.api_version, "kind": body.kind, "metadata": {"name": name, "namespace": namespace},
           **copy.deepcopy(body.spec)}
    exists = admin.request("GET", api.path(name, namespace)).ok
    if request.operation == "CREATE":
        if exists:
            assert admin.request("DELETE", api.path(name, namespace)).ok
        return user.request("POST", api.path(None, namespace), obj, query=dry)
    if not exists:
        assert admin.request("POST", api.path(None, namespace), obj).ok
    if request.operation == "DELETE":
        return user.request("DELETE", api.path(name, namespace), query=dry)
    return user.request("PUT", api.path(name, namespace), admin.request("GET", api.path(name, namespace)).body,
                        query=dry)


def _denial(response, policy: str, binding: str) -> str | None:
    """The policy's message when `response` is this policy's denial, else None."""
    prefix = f"ValidatingAdmissionPolicy '{policy}' with binding '{binding}' denied request: "
    message = response.message
    if response.status == 403 and prefix in message:
        return message.split(prefix, 1)[1]
    return None


def _shuttle_stages() -> dict[str, list[dict]]:
    """Each distinct set of Shuttle's policy and RBAC objects, by the first cluster rendering it."""
    found: dict[str, list[dict]] = {}
    for folder in sorted((REPO / "rendered" / "clusters").glob("*/stages/*-shuttle")):
        docs = [d for f in sorted(folder.glob("*.yaml")) if f.name != "kustomization.yaml"
                for d in yaml.safe_load_all(f.read_text()) if d]
        kept = [d for d in docs if d["kind"] in ("Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
                                                 "Role", "RoleBinding", "ValidatingAdmissionPolicy",
                                                 "ValidatingAdmissionPolicyBinding")]
        if any(d["kind"] == "ValidatingAdmissionPolicy" for d in kept) and kept not in found.values():
            found[folder.parent.parent.name] = kept
    return found


def _await_policy(user: Client, server: Server, policy: str, binding: str, *, present: bool = True,
                  timeout: float = 60) -> None:
    """Policies and RBAC take effect through informers: wait until the policy itself denies a write
    in an unlabelled kube-system (a row of the table), not RBAC — or, `present=False`, until it no
    longer does (it was deleted)."""
    _set_namespace(server.admin, "kube-system", {})
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "canary", "namespace": "kube-system"}}
    api = server.served[("v1", "Secret")]
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        last = user.request("POST", api.path(None, "kube-system"), secret, query={"dryRun": "All"})
        if (_denial(last, policy, binding) is not None) == present:
            return
        time.sleep(0.5)
    state = "in effect" if present else "gone"
    pytest.fail(f"Shuttle's policy not {state} after {timeout} s: last answer {last.status} {last.message}")


FLUX_USER = "system:serviceaccount:flux-system:kustomize-controller"


@dataclass(frozen=True)
class Shuttle:
    """One cluster's Shuttle policy installed on the server, with a client per identity."""

    cluster_id: str
    policy: dict
    names: tuple[str, str]            # the policy's and its binding's
    users: dict[str, Client]          # username → client with a TokenRequest token


POLICY_KINDS = ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")


def installed_shuttles(server: Server) -> Iterator[Shuttle]:
    """Apply each distinct rendered Shuttle stage (ServiceAccount, RBAC, policy, binding) for real,
    plus Flux's kustomize-controller (cluster-admin, as `flux install` binds it), and yield it once
    its policy is in effect. A policy of the same name left by an earlier stage or test is deleted
    first and seen gone, so the policy in effect is the one yielded."""
    stages = _shuttle_stages()
    assert stages, "no cluster renders Shuttle's ValidatingAdmissionPolicy"
    admin = server.admin
    flux = ({"apiVersion": "v1", "kind": "ServiceAccount",
             "metadata": {"name": "kustomize-controller", "namespace": "flux-system"}},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
             "metadata": {"name": "cluster-reconciler-flux-system"},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
             "subjects": [{"kind": "ServiceAccount", "name": "kustomize-controller", "namespace": "flux-system"}]})
    for cluster_id, objects in stages.items():
        rest = [o for o in objects if o["kind"] not in POLICY_KINDS]
        policies = [next(o for o in objects if o["kind"] == kind) for kind in POLICY_KINDS]
        names = tuple(o["metadata"]["name"] for o in policies)
        for obj in (*flux, *rest):
            done = admin.apply(server.served[(obj["apiVersion"], obj["kind"])], obj, dry_run=False)
            assert done.ok, f"{cluster_id}: {obj['kind']} {obj['metadata']['name']}: {done.message}"
        users = {u: admin.as_token(_token(admin, u)) for u in (shuttle_admission.SHUTTLE, FLUX_USER)}
        for kind, name in zip(POLICY_KINDS, names):
            gone = admin.request("DELETE", server.served[("admissionregistration.k8s.io/v1", kind)].path(name))
            assert gone.ok or gone.status == 404, gone.message
        _await_policy(users[shuttle_admission.SHUTTLE], server, *names, present=False)
        for obj in policies:
            done = admin.apply(server.served[(obj["apiVersion"], obj["kind"])], obj, dry_run=False)
            assert done.ok, f"{cluster_id}: {obj['kind']} {obj['metadata']['name']}: {done.message}"
        _await_policy(users[shuttle_admission.SHUTTLE], server, *names)
        yield Shuttle(cluster_id, policies[0], names, users)


def _verdict(response, shuttle: Shuttle) -> tuple[str, str | None]:
    """("admitted" | "denied" | "other", the policy's denial message or the error)."""
    denial = _denial(response, *shuttle.names)
    if response.ok:
        return "admitted", None
    if denial is not None:
        return "denied", denial
    return "other", f"{response.status} {response.message}"


def _disagreement(what: str, shuttle: Shuttle, request: admission.Request, response, expected: bool) -> str | None:
    """Why the server, cel-python and the expectation do not all agree on `request`, or None."""
    failed = admission.failed_validations(shuttle.policy["spec"], request)
    cel_admits = failed is None or not failed
    real, detail = _verdict(response, shuttle)
    want = "admitted" if expected else "denied"
    if real == "other":
        return f"{what}: neither admitted nor denied by the policy: {detail}"
    if real != want or cel_admits != expected:
        return (f"{what}: expected {want}, cel-python {'admitted' if cel_admits else 'denied'}, "
                f"kube-apiserver {real}" + (f" ({detail})" if detail else ""))
    if detail is not None and detail != shuttle.policy["spec"]["validations"][failed[0]]["message"]:
        return f"{what}: kube-apiserver denies with {detail!r}, cel-python's first failing validation is #{failed[0]}"
    return None


def test_shuttle_admission_policy_on_the_real_server_agrees_with_cel_python(server: Server) -> None:
    """Every row of the shuttle-admission lint table, made for real."""
    for shuttle in installed_shuttles(server):
        disagreements = []
        for what, request, expected in shuttle_admission.REQUIREMENTS:
            assert request.username in shuttle.users, f"{what}: no identity for {request.username}"
            response = real_request(server, shuttle.users[request.username], request)
            disagreements.append(_disagreement(what, shuttle, request, response, expected))
        disagreements = [d for d in disagreements if d]
        assert not disagreements, f"{shuttle.cluster_id}:\n" + "\n".join(disagreements)


#: A minimal valid object of each namespaced kind Shuttle's RBAC lets it write (see the test below).
WRITABLE = {
    ("", "services"): Body("v1", "Service", {"spec": {"ports": [{"port": 80}]}}),
    ("", "configmaps"): Body("v1", "ConfigMap", {"data": {"k": "v"}}),
    ("", "secrets"): BODIES["secrets"],
    ("", "resourcequotas"): Body("v1", "ResourceQuota", {"spec": {"hard": {"pods": "10"}}}),
    ("", "limitranges"): Body("v1", "LimitRange", {"spec": {"limits": [{"type": "Container",
                                                                         "default": {"cpu": "100m"}}]}}),
    ("apps", "deployments"): BODIES["deployments"],
    ("apps", "statefulsets"): Body("apps/v1", "StatefulSet", {"spec": {
        "serviceName": "web", **copy.deepcopy(BODIES["deployments"].spec["spec"])}}),
    ("autoscaling", "horizontalpodautoscalers"): Body("autoscaling/v2", "HorizontalPodAutoscaler", {"spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "maxReplicas": 2}}),
    ("policy", "poddisruptionbudgets"): Body("policy/v1", "PodDisruptionBudget", {"spec": {
        "minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}}),
    ("gateway.networking.k8s.io", "httproutes"): Body("gateway.networking.k8s.io/v1", "HTTPRoute", {"spec": {
        "parentRefs": [{"name": "starform", "namespace": "envoy-gateway-system"}]}}),
}


def test_policy_fences_every_kind_shuttle_may_write(server: Server) -> None:
    """RBAC lets Shuttle create every namespaced kind of its apply role cluster-wide; the policy's
    matchConstraints (which cel-python does not model) must catch each, so the real server must
    deny a create in kube-system and admit one in a customer namespace. Namespaces themselves are
    the table's rows."""
    for shuttle in installed_shuttles(server):
        (role,) = [o for o in _shuttle_stages()[shuttle.cluster_id]
                   if o["kind"] == "ClusterRole" and o["metadata"]["name"] == "starform-shuttle-apply"]
        creatable = {(g, r) for rule in role["rules"] if "create" in rule["verbs"]
                     for g in rule["apiGroups"] for r in rule["resources"]} - {("", "namespaces")}
        assert creatable <= WRITABLE.keys(), f"add a body to WRITABLE for {sorted(creatable - WRITABLE.keys())}"
        customer = {"metadata": {"name": "p-42", "labels": {shuttle_admission.PROJECT: "42",
                                                            shuttle_admission.PSA: "restricted"}}}
        disagreements = []
        for group, resource in sorted(creatable):
            body = WRITABLE[(group, resource)]
            for namespace, expected in ((customer, True), ({"metadata": {"name": "kube-system"}}, False)):
                name = namespace["metadata"]["name"]
                _set_namespace(server.admin, name, _labels(namespace))
                obj = {"apiVersion": body.api_version, "kind": body.kind,
                       "metadata": {"name": "shuttle-probe", "namespace": name}, **copy.deepcopy(body.spec)}
                api = server.served[(body.api_version, body.kind)]
                response = shuttle.users[shuttle_admission.SHUTTLE].request(
                    "POST", api.path(None, name), obj, query={"dryRun": "All"})
                request = admission.Request(resource, "CREATE", shuttle_admission.SHUTTLE, namespace, obj)
                disagreements.append(_disagreement(f"create {resource} in {name}", shuttle, request, response,
                                                   expected))
        disagreements = [d for d in disagreements if d]
        assert not disagreements, f"{shuttle.cluster_id}:\n" + "\n".join(disagreements)
