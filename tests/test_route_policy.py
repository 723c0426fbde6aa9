"""The HTTPRoute admission policy (Envoy attribution contract), evaluated with cel-python.

Envoy Gateway names each rule's Envoy cluster `httproute/<ns>/<route>/rule/<n>`; the customer L7
figures attribute it to the Service named like the route in its namespace. The policy in
base/components/gateway-dataplane/httproute-policy.yaml admits only routes of that shape in
customer namespaces; here it is evaluated as the API server would (matchConstraints, then each
validation), on the rendered copy and through the `route-admission` lint check.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from fleet import admission, model
from fleet.checks import CheckContext, route_admission
from fleet.checks.route_admission import CUSTOMER, MIRROR, ROUTES, SHUTTLE, ref, request, route, rule
from fleet.cli import cli

from conftest import require_shared

POLICY = "base/components/gateway-dataplane/httproute-policy.yaml"
RENDERED = "rendered/clusters/nyc3-prod-01/stages/01-gateway/custom-resources/gateway-dataplane.yaml"


def _rendered_policy(root: Path) -> dict:
    docs = [d for d in yaml.safe_load_all((root / RENDERED).read_text()) if d]
    (policy,) = [d for d in docs if d["kind"] == "ValidatingAdmissionPolicy"]
    (binding,) = [d for d in docs if d["kind"] == "ValidatingAdmissionPolicyBinding"]
    assert binding["spec"] == {"policyName": policy["metadata"]["name"], "validationActions": ["Deny"]}
    return policy["spec"]


@pytest.fixture(scope="module")
def spec(rendered_root) -> dict:
    return _rendered_policy(rendered_root)


def failed(spec: dict, route_obj: dict, operation: str = "CREATE", namespace: dict = CUSTOMER,
           user: str = SHUTTLE) -> list[int] | None:
    return admission.failed_validations(spec, request(route_obj, namespace, operation, user))


@pytest.mark.parametrize("what, route_obj, namespace, operation, user, expected", ROUTES, ids=[r[0] for r in ROUTES])
def test_policy_decides_every_route_of_the_table(spec, what, route_obj, namespace, operation, user, expected):
    verdict = failed(spec, route_obj, operation, namespace, user)
    assert (verdict is None or verdict == []) is expected, verdict


# Which rule of the contract each broken variant breaks (validation index in the policy file).
ONE_BACKEND, CORE_SERVICE, SAME_NAMESPACE, SAME_NAME, NO_MIRROR = range(5)


@pytest.mark.parametrize("route_obj, broken", [
    (route("web-public", rule(ref("web"))), {SAME_NAME}),
    (route("web", rule(ref("Web"))), {SAME_NAME}),                                   # names are case-sensitive
    (route("web", rule(ref("web")), rule(ref("web-admin"))), {SAME_NAME}),
    (route("web", rule(ref("web", weight=90), ref("web-canary", weight=10))), {ONE_BACKEND, SAME_NAME}),
    (route("web", rule(ref("web"), ref("web"))), {ONE_BACKEND}),                     # the same Service twice
    (route("web", rule(ref("web", namespace="p-43"))), {SAME_NAMESPACE}),
    (route("web", rule(ref("web", kind="Backend", group="gateway.envoyproxy.io"))), {CORE_SERVICE}),
    (route("web", rule(ref("web", kind="ServiceImport", group="multicluster.x-k8s.io"))), {CORE_SERVICE}),
    (route("web", rule(ref("web", group="core"))), {CORE_SERVICE}),
    (route("web", rule(ref("web")), rule(requestRedirect={"scheme": "https"})), {ONE_BACKEND}),
    (route("web", rule(ref("web"), filters=[MIRROR])), {NO_MIRROR}),
    (route("web", rule(ref("web", filters=[MIRROR]))), {NO_MIRROR}),
])
def test_each_broken_variant_is_denied_by_the_rule_it_breaks(spec, route_obj, broken):
    assert set(failed(spec, route_obj)) == broken


@pytest.mark.parametrize("route_obj", [
    route("web", rule(ref("web"))),
    route("a", rule(ref("a"))),
    route("api-v2", rule(ref("api-v2", group="", kind="Service", namespace="p-42"))),
    route("shop", rule(ref("shop"), name="pages"), rule(ref("shop"), name="api.v1"),
          rule(ref("shop", port=9090), filters=[{"type": "URLRewrite",
                                                  "urlRewrite": {"path": {"type": "ReplacePrefixMatch",
                                                                          "replacePrefixMatch": "/"}}}])),
])
def test_routes_named_after_their_service_are_admitted(spec, route_obj):
    assert failed(spec, route_obj) == []
    assert failed(spec, route_obj, operation="UPDATE") == []


def test_only_customer_namespaces_and_writes_are_judged(spec):
    misnamed = route("web-public", rule(ref("web")))
    assert failed(spec, misnamed, namespace={"metadata": {"name": "starbase"}}) is None
    assert failed(spec, misnamed, operation="DELETE") is None
    # every user, not only Shuttle: the contract is about the route, whoever writes it
    assert failed(spec, misnamed, user="system:serviceaccount:p-42:deployer") == [SAME_NAME]
    status = admission.Request("httproutes/status", "UPDATE", "envoy-gateway", CUSTOMER, misnamed, misnamed)
    assert admission.failed_validations(spec, status) is None        # Envoy Gateway's status writes pass


def test_rule_names_are_the_crds_and_do_not_enter_the_cluster_name(spec):
    """Rule names (`spec.rules[].name`, standard channel) are DNS subdomains: never a `/`, so the
    `httproute/<ns>/<route>/rule/<n>` split of the recording rules holds; Envoy Gateway numbers
    the cluster by the rule's index anyway."""
    crd = yaml.safe_load((require_shared("crds") / "gateway/standard/gateway.networking.k8s.io_httproutes.yaml").read_text())
    (v1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    item = v1["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["rules"]["items"]
    assert "/" not in item["properties"]["name"]["pattern"].replace("\\.", "")
    backend = item["properties"]["backendRefs"]["items"]["properties"]
    assert (backend["group"]["default"], backend["kind"]["default"]) == ("", "Service")   # what "unset" means


# --- the lint check (route-admission) ---------------------------------------------------------------

def _check(root: Path) -> list:
    assert CliRunner().invoke(cli, ["render", "--root", str(root)]).exit_code == 0
    return list(route_admission.check(CheckContext(root=root, fleet=model.load(root), rendered=root / "rendered")))


def _line(root: Path, startswith: str) -> int:
    lines = (root / POLICY).read_text().splitlines()
    hits = [i + 1 for i, line in enumerate(lines) if line.strip().startswith(startswith)]
    assert len(hits) == 1, hits
    return hits[0]


def test_shipped_policy_decides_every_route(repo_root):
    assert _check(repo_root) == []


def test_policy_that_admits_misnamed_routes_is_found_at_its_validations(fleet_copy):
    path = fleet_copy / POLICY
    text = path.read_text()
    old = "ref.name == object.metadata.name))"
    assert text.count(old) == 1
    path.write_text(text.replace(old, "ref.name.startsWith(object.metadata.name)))"))
    found = _check(fleet_copy)
    assert {(f.source.file, f.source.line) for f in found} == {(POLICY, _line(fleet_copy, "validations:"))}
    assert sorted(f.message.split(";")[0] for f in found) == [
        "starform-httproute-attribution: a route whose Service name only extends the route's must be denied but is admitted"]
    assert "nyc3-prod-01" in found[0].message


def test_policy_that_denies_a_good_route_is_found_at_the_denying_validation(fleet_copy):
    path = fleet_copy / POLICY
    text = path.read_text()
    old = '(!has(ref.kind) || ref.kind == "Service")'
    assert text.count(old) == 1
    path.write_text(text.replace(old, 'ref.kind == "Service"'))               # unset kind is the CRD default
    found = _check(fleet_copy)
    second = sorted(i + 1 for i, line in enumerate(path.read_text().splitlines())
                    if line.strip().startswith("- expression:"))[CORE_SERVICE]
    assert sorted({(f.source.line, f.message.split(";")[0]) for f in found}) == [
        (second, "starform-httproute-attribution: a route named like its one Service must be admitted but is denied"),
        (second, "starform-httproute-attribution: a route with several named rules to the same Service "
                 "must be admitted but is denied")]


def test_cluster_without_the_policy_is_found(fleet_copy):
    path = fleet_copy / POLICY
    path.write_text(path.read_text().replace("kind: ValidatingAdmissionPolicy\n", "kind: ValidatingAdmissionPolicyX\n", 1))
    found = [f for f in _check(fleet_copy) if "no HTTPRoute admission policy" in f.message]
    assert len(found) == 1 and "nyc3-prod-01" in found[0].message
