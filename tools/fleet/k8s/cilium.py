"""Our strict schemas of the Cilium policies fleet render emits (fleet/schemas/cilium-<kind>.schema.json).

Cilium's CRDs are not in the shared reference data, so these are written from Cilium's policy
documentation for exactly the fields we emit (closed objects, Cilium's enums: entities,
protocols, selector operators). Any other apiVersion/kind in the cilium.io group is unknown.
"""
from __future__ import annotations

from jsonschema import Draft202012Validator

from .. import schema as fleet_schema

GROUP = "cilium.io"
KINDS = {("cilium.io/v2", "CiliumNetworkPolicy"): "cilium-ciliumnetworkpolicy",
         ("cilium.io/v2", "CiliumClusterwideNetworkPolicy"): "cilium-ciliumclusterwidenetworkpolicy"}


def is_cilium(api_version: str) -> bool:
    return isinstance(api_version, str) and api_version.split("/", 1)[0] == GROUP


def validator(api_version: str, kind: str) -> Draft202012Validator | None:
    name = KINDS.get((api_version, kind))
    return fleet_schema.validator(name) if name else None
