"""Shuttle's ValidatingAdmissionPolicy: its CEL, evaluated with cel-python on admission requests.

RBAC grants Shuttle cluster-wide writes (customer namespaces are created at run time); the
policy is what keeps those writes inside customer namespaces. Evaluated here the way the API
server does: `variables` first, then each validation over request/object/oldObject/namespaceObject.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from fleet import admission
from fleet.render.shuttle import load_manifests

ROOT = Path(__file__).resolve().parents[1]
SHUTTLE = "system:serviceaccount:starform-system:shuttle"


def _policy() -> dict:
    (policy,) = [d for d in load_manifests(ROOT) if d["kind"] == "ValidatingAdmissionPolicy"]
    return policy


def _ns(name: str, **labels: str) -> dict:
    return {"metadata": {"name": name, **({"labels": labels} if labels else {})}}


def admitted(resource: str, operation: str, namespace: dict | None, obj: dict | None = None,
             old: dict | None = None, user: str = SHUTTLE) -> bool:
    """True when the policy lets the request through (not matched, or every validation holds)."""
    return admission.admitted(_policy()["spec"], admission.Request(resource, operation, user, namespace, obj, old))


PSA = "pod-security.kubernetes.io/enforce"
CUSTOMER = _ns("p-42", **{"starform.io/project-id": "42", PSA: "restricted"})


@pytest.mark.parametrize("resource", ["deployments", "secrets", "services", "httproutes"])
def test_shuttle_writes_in_a_customer_namespace(resource):
    assert admitted(resource, "CREATE", CUSTOMER, obj={"metadata": {"name": "web"}})


@pytest.mark.parametrize("namespace", [_ns("kube-system"), _ns("flux-system"), _ns("starform-system"),
                                       _ns("p-43"), _ns("kube-system", **{"starform.io/project-id": "x"}),
                                       _ns("starform-alloy", **{"starform.io/project-id": "x"})])
def test_shuttle_cannot_write_outside_customer_namespaces(namespace):
    assert not admitted("secrets", "UPDATE", namespace, obj={"metadata": {"name": "s"}})


def test_shuttle_manages_customer_namespaces_but_cannot_claim_platform_ones():
    assert admitted("namespaces", "CREATE", None, obj=CUSTOMER)
    assert admitted("namespaces", "DELETE", None, old=CUSTOMER)
    assert not admitted("namespaces", "CREATE", None, obj=_ns("p-44"))                # unlabelled
    labelled_kube_system = _ns("kube-system", **{"starform.io/project-id": "1", PSA: "baseline"})
    assert not admitted("namespaces", "UPDATE", None, obj=labelled_kube_system, old=_ns("kube-system"))
    assert not admitted("namespaces", "DELETE", None, old=_ns("flux-system"))


def test_other_users_are_not_matched():
    assert admitted("secrets", "UPDATE", _ns("kube-system"), obj={"metadata": {"name": "s"}},
                    user="system:serviceaccount:flux-system:kustomize-controller")


def test_policy_covers_every_kind_the_apply_role_writes():
    """A kind Shuttle may write but the policy does not match would escape the namespace fence."""
    docs = load_manifests(ROOT)
    (role,) = [d for d in docs if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "starform-shuttle-apply"]
    writable = {(g, r) for rule in role["rules"] if set(rule["verbs"]) & {"create", "update", "patch", "delete"}
                for g in rule["apiGroups"] for r in rule["resources"]}
    matched = {(g, r) for rule in _policy()["spec"]["matchConstraints"]["resourceRules"]
               for g in rule["apiGroups"] for r in rule["resources"]}
    assert writable <= matched, writable - matched
    (binding,) = [d for d in docs if d["kind"] == "ValidatingAdmissionPolicyBinding"]
    assert binding["spec"]["policyName"] == _policy()["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]


@pytest.mark.parametrize("old, new", [
    (CUSTOMER, _ns("p-42", **{"starform.io/project-id": "42", PSA: "baseline"})),        # relax to baseline
    (CUSTOMER, _ns("p-42", **{"starform.io/project-id": "42", PSA: "restricted", "team": "a"})),
])
def test_shuttle_updates_its_customer_namespaces(old, new):
    assert admitted("namespaces", "UPDATE", None, obj=new, old=old)


@pytest.mark.parametrize("old, new", [
    # an existing namespace nobody labelled (a platform or a hand-made one) claimed by labelling it
    (_ns("monitoring"), _ns("monitoring", **{"starform.io/project-id": "42", PSA: "restricted"})),
    (_ns("p-7", team="x"), _ns("p-7", **{"starform.io/project-id": "7", PSA: "baseline"})),
    # a customer namespace handed to another project
    (CUSTOMER, _ns("p-42", **{"starform.io/project-id": "43", PSA: "restricted"})),
    # Pod Security dropped or weakened on update
    (CUSTOMER, _ns("p-42", **{"starform.io/project-id": "42"})),
    (CUSTOMER, _ns("p-42", **{"starform.io/project-id": "42", PSA: "privileged"})),
])
def test_shuttle_cannot_relabel_into_a_customer_namespace_or_drop_pod_security(old, new):
    assert not admitted("namespaces", "UPDATE", None, obj=new, old=old)


@pytest.mark.parametrize("labels", [
    {"starform.io/project-id": "42"},                                     # no Pod Security label
    {"starform.io/project-id": "42", PSA: "privileged"},
    {"starform.io/project-id": "42", PSA: "Restricted"},                  # values are case-sensitive
    {"starform.io/project-id": "42", "pod-security.kubernetes.io/warn": "restricted"},  # warn is not enforce
])
def test_shuttle_creates_customer_namespaces_only_under_pod_security(labels):
    assert not admitted("namespaces", "CREATE", None, obj=_ns("p-42", **labels))


@pytest.mark.parametrize("level", ["baseline", "restricted"])
def test_baseline_or_stricter_is_enough(level):
    assert admitted("namespaces", "CREATE", None, obj=_ns("p-42", **{"starform.io/project-id": "42", PSA: level}))


def test_deleting_a_customer_namespace_needs_no_pod_security_label():
    assert admitted("namespaces", "DELETE", None, old=_ns("p-42", **{"starform.io/project-id": "42"}))


# --- the lint check (shuttle-admission) ----------------------------------------------------------

def _check(root):
    from click.testing import CliRunner
    from fleet import model
    from fleet.checks import CheckContext, shuttle_admission
    from fleet.cli import cli
    assert CliRunner().invoke(cli, ["render", "--root", str(root)]).exit_code == 0
    ctx = CheckContext(root=root, fleet=model.load(root), rendered=root / "rendered")
    return list(shuttle_admission.check(ctx))


def _manifest_line(root, text: str) -> int:
    lines = (root / "base/components/shuttle/manifests.yaml").read_text().splitlines()
    hits = [i + 1 for i, line in enumerate(lines) if line.strip() == text]
    assert len(hits) == 1, hits
    return hits[0]


def test_shipped_policy_decides_every_required_request(repo_root):
    assert _check(repo_root) == []


def test_policy_without_the_old_object_rule_is_found_at_its_validations(fleet_copy):
    path = fleet_copy / "base/components/shuttle/manifests.yaml"
    text = path.read_text()
    old = '        request.resource.resource != "namespaces" || request.operation != "UPDATE"\n'
    assert old in text
    path.write_text(text.replace(old, '        true || request.resource.resource != "namespaces" || request.operation != "UPDATE"\n'))
    found = _check(fleet_copy)
    assert {(f.source.file, f.source.line) for f in found} == {
        ("base/components/shuttle/manifests.yaml", _manifest_line(fleet_copy, "validations:"))}
    messages = sorted(f.message.split(";")[0] for f in found)
    assert messages == [
        "starform-shuttle-customer-namespaces: labelling an existing unlabelled namespace into a customer one "
        "must be denied but is admitted",
        "starform-shuttle-customer-namespaces: moving a customer namespace to another project must be denied but is admitted"]


def test_policy_that_denies_too_much_is_found_at_the_denying_validation(fleet_copy):
    path = fleet_copy / "base/components/shuttle/manifests.yaml"
    text = path.read_text()
    old = '&& object.metadata.labels["pod-security.kubernetes.io/enforce"] in ["baseline", "restricted"])'
    assert old in text
    path.write_text(text.replace(old, old.replace('"baseline", ', "")))
    found = _check(fleet_copy)
    lines = path.read_text().splitlines()
    psa_item = max(i + 1 for i, line in enumerate(lines) if line.strip().startswith("- expression:")
                   and i < next(j for j, l in enumerate(lines) if "pod-security.kubernetes.io/enforce\" in" in l))
    assert [(f.source.line, f.message.split(";")[0]) for f in found] == [
        (psa_item, "starform-shuttle-customer-namespaces: updating a customer namespace must be admitted but is denied")]
