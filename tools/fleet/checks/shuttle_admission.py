"""shuttle-admission: the rendered ValidatingAdmissionPolicy of Shuttle decides a table of requests right.

RBAC lets Shuttle write cluster-wide (customer namespaces are created at run time); its admission
policy is what keeps those writes inside customer namespaces. Each rendered policy is evaluated
with cel-python (fleet.admission) on the requests below, which it must admit or deny: writes in
customer namespaces only, no platform namespace claimed by (re)labelling, the project of a
namespace fixed once set, and a Pod Security `enforce` label (baseline or restricted) on every
namespace Shuttle creates or updates. A wrong decision is reported at the policy's `validations`
in base/components/shuttle/manifests.yaml (at the validation that denied, for a wrong denial).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from ..admission import Request, record_wrong_decisions, validation_lines, wrong_decisions
from ..errors import Finding, Severity, SourceRef
from ..k8s.objects import rendered_objects
from ..render.shuttle import MANIFESTS
from . import CheckContext

NAME = "shuttle-admission"
DESCRIPTION = "Shuttle's admission policy admits writes in customer namespaces and denies the rest (cel-python)"
ORDER = 48
SCOPE = "cluster"

SHUTTLE = "system:serviceaccount:starform-system:shuttle"
PROJECT = "starform.io/project-id"
PSA = "pod-security.kubernetes.io/enforce"
#: Rendered file of the data plane, whose route policy `route-admission` judges with its own table.
DATAPLANE_FILE = "/gateway-dataplane.yaml"


def _ns(name: str, **labels: str) -> dict:
    return {"metadata": {"name": name, **({"labels": labels} if labels else {})}}


CUSTOMER = _ns("p-42", **{PROJECT: "42", PSA: "restricted"})
OBJ = {"metadata": {"name": "web"}}

#: (what, request, must be admitted)
REQUIREMENTS: tuple[tuple[str, Request, bool], ...] = (
    ("a Deployment in a customer namespace", Request("deployments", "CREATE", SHUTTLE, CUSTOMER, OBJ), True),
    ("a Secret in kube-system", Request("secrets", "UPDATE", SHUTTLE, _ns("kube-system"), OBJ), False),
    ("a Secret in starform-system", Request("secrets", "CREATE", SHUTTLE, _ns("starform-system"), OBJ), False),
    ("a Secret in an unlabelled namespace", Request("secrets", "CREATE", SHUTTLE, _ns("p-43"), OBJ), False),
    ("a Secret in kube-system labelled with a project",
     Request("secrets", "CREATE", SHUTTLE, _ns("kube-system", **{PROJECT: "1", PSA: "baseline"}), OBJ), False),
    ("creating a customer namespace under Pod Security", Request("namespaces", "CREATE", SHUTTLE, obj=CUSTOMER), True),
    ("creating a customer namespace without a Pod Security enforce label",
     Request("namespaces", "CREATE", SHUTTLE, obj=_ns("p-44", **{PROJECT: "44"})), False),
    ("creating a customer namespace with enforce=privileged",
     Request("namespaces", "CREATE", SHUTTLE, obj=_ns("p-44", **{PROJECT: "44", PSA: "privileged"})), False),
    ("labelling an existing unlabelled namespace into a customer one",
     Request("namespaces", "UPDATE", SHUTTLE, obj=_ns("monitoring", **{PROJECT: "9", PSA: "restricted"}),
             old=_ns("monitoring")), False),
    ("moving a customer namespace to another project",
     Request("namespaces", "UPDATE", SHUTTLE, obj=_ns("p-42", **{PROJECT: "43", PSA: "restricted"}), old=CUSTOMER),
     False),
    ("updating a customer namespace", Request("namespaces", "UPDATE", SHUTTLE,
                                              obj=_ns("p-42", **{PROJECT: "42", PSA: "baseline"}), old=CUSTOMER), True),
    ("deleting a customer namespace", Request("namespaces", "DELETE", SHUTTLE, old=CUSTOMER), True),
    ("deleting flux-system", Request("namespaces", "DELETE", SHUTTLE, old=_ns("flux-system")), False),
    ("another user's write in kube-system (not Shuttle: not matched)",
     Request("secrets", "UPDATE", "system:serviceaccount:flux-system:kustomize-controller", _ns("kube-system"), OBJ),
     True),
)


def _lines(root: Path) -> tuple[int, list[int]]:
    """Line of the policy's `validations:` in the manifests, and of each validation item."""
    return validation_lines((root / MANIFESTS).read_text(encoding="utf-8"))


def problems(spec: dict) -> list[tuple[str, bool, list[int] | None]]:
    """(what, expected admission, failed validation indexes) of every wrong decision."""
    return wrong_decisions(spec, REQUIREMENTS)


def check(ctx: CheckContext) -> Iterable[Finding]:
    at, items = _lines(ctx.root)
    seen: dict[str, list] = {}
    found: dict[tuple, list[str]] = {}
    for obj in rendered_objects(ctx):
        if obj.kind != "ValidatingAdmissionPolicy" or not obj.cluster or obj.path.endswith(DATAPLANE_FILE):
            continue
        if obj.digest not in seen:
            seen[obj.digest] = problems(obj.obj.get("spec") or {})
        record_wrong_decisions(found, obj.name, obj.cluster, seen[obj.digest], at, items)
    for (line, message), clusters in sorted(found.items()):
        yield Finding(NAME, Severity.ERROR, SourceRef(MANIFESTS.as_posix(), line),
                      f"{message}; cluster(s): {', '.join(sorted(set(clusters)))}",
                      details={"clusters": sorted(set(clusters))})
