"""Shuttle's ValidatingAdmissionPolicy: its CEL, evaluated with cel-python on admission requests.

RBAC grants Shuttle cluster-wide writes (customer namespaces are created at run time); the
policy is what keeps those writes inside customer namespaces. Evaluated here the way the API
server does: `variables` first, then each validation over request/object/oldObject/namespaceObject.
"""
from __future__ import annotations

from pathlib import Path

import celpy
import pytest

from fleet.render.shuttle import load_manifests

ROOT = Path(__file__).resolve().parents[1]
SHUTTLE = "system:serviceaccount:starform-system:shuttle"


def _policy() -> dict:
    (policy,) = [d for d in load_manifests(ROOT) if d["kind"] == "ValidatingAdmissionPolicy"]
    return policy


def _eval(expression: str, activation: dict) -> object:
    env = celpy.Environment()
    return env.program(env.compile(expression)).evaluate(activation)


def _ns(name: str, **labels: str) -> dict:
    return {"metadata": {"name": name, **({"labels": labels} if labels else {})}}


def admitted(resource: str, operation: str, namespace: dict | None, obj: dict | None = None,
             old: dict | None = None, user: str = SHUTTLE) -> bool:
    """True when the policy lets the request through (not matched, or every validation holds)."""
    spec = _policy()["spec"]
    request = {"resource": {"resource": resource}, "operation": operation, "userInfo": {"username": user}}
    activation = {"request": celpy.json_to_cel(request), "object": celpy.json_to_cel(obj),
                  "oldObject": celpy.json_to_cel(old), "namespaceObject": celpy.json_to_cel(namespace)}
    if not all(bool(_eval(c["expression"], activation)) for c in spec["matchConditions"]):
        return True
    variables = {v["name"]: _eval(v["expression"], activation) for v in spec.get("variables", [])}
    activation["variables"] = celpy.celtypes.MapType({celpy.celtypes.StringType(k): v for k, v in variables.items()})
    results = [_eval(v["expression"], activation) for v in spec["validations"]]
    assert all(isinstance(r, celpy.celtypes.BoolType) for r in results), results  # no evaluation errors
    return all(bool(r) for r in results)


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
