"""route-admission: the rendered HTTPRoute policy admits exactly the routes Envoy's figures can attribute.

Envoy Gateway names the Envoy cluster of each HTTPRoute rule `httproute/<ns>/<route>/rule/<n>`,
and the customer L7 recording rules (base/rules/recording/20-envoy.yaml) attribute a cluster to
the Service named like the route in the route's namespace. The ValidatingAdmissionPolicy of
base/components/gateway-dataplane/httproute-policy.yaml enforces that shape in customer
namespaces. Each rendered copy is evaluated with cel-python (fleet.admission) on the table of
routes below (several naming variants); a wrong decision is reported at the policy's
`validations:` (at the validation that denied, for a wrong denial). Findings list their
clusters ("; cluster(s): a, b"), so `lint --changed` checks only the affected clusters.
"""
from __future__ import annotations

from typing import Iterable

from ..admission import Request, record_wrong_decisions, validation_lines, wrong_decisions
from ..errors import Finding, Severity, SourceRef
from ..k8s.objects import rendered_objects
from ..render.gateway import ROUTE_POLICY
from . import CheckContext

NAME = "route-admission"
DESCRIPTION = "The HTTPRoute admission policy admits only routes named after their one Service in their namespace (cel-python)"
ORDER = 48
SCOPE = "cluster"  # each cluster's rendered policy copy, and whether it runs the data plane
#: The policy source (for the finding's lines) and the component definitions and values that
#: decide which clusters run gateway-dataplane (overlays and regions: the render index's inputs).
READS = ("base/*", "overlays/*", "regions/*")

SHUTTLE = "system:serviceaccount:starform-system:shuttle"
DATAPLANE_FILE = "/gateway-dataplane.yaml"
CUSTOMER = {"metadata": {"name": "p-42", "labels": {"starform.io/project-id": "42",
                                                   "pod-security.kubernetes.io/enforce": "restricted"}}}
PLATFORM = {"metadata": {"name": "starbase"}}


def ref(name: str, **fields) -> dict:
    """An HTTPRoute backendRef (port 8080 unless given)."""
    return {"name": name, "port": 8080, **fields}


def route(name: str, *rules: dict) -> dict:
    """An HTTPRoute in p-42 attached to the shared Gateway."""
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": "p-42"},
            "spec": {"parentRefs": [{"name": "starform", "namespace": "envoy-gateway-system"}],
                     "rules": list(rules)}}


def rule(*refs: dict, **fields) -> dict:
    return {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}], **({"backendRefs": list(refs)} if refs else {}),
            **fields}


MIRROR = {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "web-shadow", "port": 8080}}}

#: (what, route, namespace, operation, user, must be admitted) — the contract's naming variants.
ROUTES: tuple[tuple[str, dict, dict, str, str, bool], ...] = (
    ("a route named like its one Service", route("web", rule(ref("web"))), CUSTOMER, "CREATE", SHUTTLE, True),
    ("a route spelling out the defaults (group \"\", kind Service, its own namespace)",
     route("api-v2", rule(ref("api-v2", group="", kind="Service", namespace="p-42", weight=1))),
     CUSTOMER, "UPDATE", SHUTTLE, True),
    ("a route with several named rules to the same Service",
     route("shop", rule(ref("shop"), name="pages"), rule(ref("shop", port=9090), name="api")),
     CUSTOMER, "CREATE", SHUTTLE, True),
    ("a route named otherwise than its Service", route("web-public", rule(ref("web"))),
     CUSTOMER, "CREATE", SHUTTLE, False),
    ("a route whose Service name only extends the route's", route("web", rule(ref("web-v2"))),
     CUSTOMER, "CREATE", SHUTTLE, False),
    ("a second rule to another Service", route("shop", rule(ref("shop")), rule(ref("cart"))),
     CUSTOMER, "CREATE", SHUTTLE, False),
    ("a weighted split over two Services", route("web", rule(ref("web", weight=90), ref("web-canary", weight=10))),
     CUSTOMER, "CREATE", SHUTTLE, False),
    ("a backendRef in another namespace", route("web", rule(ref("web", namespace="p-43"))),
     CUSTOMER, "CREATE", SHUTTLE, False),
    ("a backendRef to an Envoy Gateway Backend",
     route("web", rule(ref("web", group="gateway.envoyproxy.io", kind="Backend"))), CUSTOMER, "CREATE", SHUTTLE, False),
    ("a backendRef to a multi-cluster ServiceImport",
     route("web", rule(ref("web", group="multicluster.x-k8s.io", kind="ServiceImport"))),
     CUSTOMER, "CREATE", SHUTTLE, False),
    ("a rule without a backendRef", route("web", rule(ref("web")), rule()), CUSTOMER, "CREATE", SHUTTLE, False),
    ("a route without rules", {**route("web"), "spec": {"parentRefs": []}}, CUSTOMER, "CREATE", SHUTTLE, False),
    ("a rule mirroring requests", route("web", rule(ref("web"), filters=[MIRROR])), CUSTOMER, "CREATE", SHUTTLE, False),
    ("a backendRef mirroring requests", route("web", rule(ref("web", filters=[MIRROR]))),
     CUSTOMER, "CREATE", SHUTTLE, False),
    ("another user's misnamed route in a customer namespace", route("web-public", rule(ref("web"))),
     CUSTOMER, "CREATE", "alice@example.com", False),
    ("a misnamed route in a platform namespace (not a customer's: not judged)",
     route("web-public", rule(ref("web"))), PLATFORM, "CREATE", SHUTTLE, True),
    ("deleting a misnamed route (not judged)", route("web-public", rule(ref("web"))),
     CUSTOMER, "DELETE", SHUTTLE, True),
)


def request(route_obj: dict, namespace: dict, operation: str, user: str) -> Request:
    """The admission request of writing `route_obj` (DELETE carries it as oldObject)."""
    if operation == "DELETE":
        return Request("httproutes", operation, user, namespace, None, route_obj)
    return Request("httproutes", operation, user, namespace, route_obj, route_obj if operation == "UPDATE" else None)


def problems(spec: dict) -> list[tuple[str, bool, list[int] | None]]:
    """(what, expected admission, failed validation indexes) of every wrong decision."""
    return wrong_decisions(spec, ((what, request(route_obj, namespace, operation, user), expected)
                                  for what, route_obj, namespace, operation, user, expected in ROUTES))


def check(ctx: CheckContext) -> Iterable[Finding]:
    at, items = validation_lines((ctx.root / ROUTE_POLICY).read_text(encoding="utf-8"))
    seen: dict[str, list] = {}
    found: dict[tuple, list[str]] = {}
    guarded: set[str] = set()
    for obj in rendered_objects(ctx):
        if obj.kind != "ValidatingAdmissionPolicy" or not obj.cluster or not ctx.wants(obj.cluster) or not obj.path.endswith(DATAPLANE_FILE):
            continue
        guarded.add(obj.cluster)
        if obj.digest not in seen:
            seen[obj.digest] = problems(obj.obj.get("spec") or {})
        record_wrong_decisions(found, obj.name, obj.cluster, seen[obj.digest], at, items)
    clusters_with_gateway = [c.id for c in (ctx.fleet.clusters.values() if ctx.fleet else [])
                             if "gateway-dataplane" in c.components and ctx.wants(c.id)]
    for cluster in sorted(set(clusters_with_gateway) - guarded):
        found.setdefault((at, "no HTTPRoute admission policy rendered with the data plane: customer routes "
                              "that break the naming contract would be admitted"), []).append(cluster)
    for (line, message), clusters in sorted(found.items()):
        yield Finding(NAME, Severity.ERROR, SourceRef(ROUTE_POLICY.as_posix(), line),
                      f"{message}; cluster(s): {', '.join(sorted(set(clusters)))}",
                      details={"clusters": sorted(set(clusters))})
