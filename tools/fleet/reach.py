"""A small reachability model of Kubernetes NetworkPolicy and Cilium policies, for lint.

Semantics modelled (Kubernetes NetworkPolicy docs; Cilium's policy language, deny and
enforcement-mode docs):
- Per direction, a pod is in default-allow until a policy puts it in default deny: a
  NetworkPolicy selecting it whose policyTypes include that direction (without policyTypes:
  Ingress always, Egress when it has egress rules); a Cilium policy selecting it with rules in
  that direction (allow or deny) unless its `enableDefaultDeny` says false for it.
- In default deny, traffic passes when any allow rule of any policy selecting the pod matches
  (NetworkPolicy rules are a union; Cilium allows join that union).
- A Cilium deny rule that matches wins over every allow, in any kind of policy.
- A flow passes when the source's egress and, for a pod destination, the destination's ingress
  both let it.
- Peers: a NetworkPolicy podSelector alone means the policy's namespace; a namespaceSelector
  matches namespace labels (kubernetes.io/metadata.name included); an ipBlock, like a Cilium
  CIDR, selects only addresses outside the cluster (Cilium's world identity: not pods, nodes or
  the API server entity). Cilium selectors read pod labels plus `io.kubernetes.pod.namespace`
  and `io.cilium.k8s.namespace.labels.<key>`; in a namespaced CiliumNetworkPolicy a selector
  that does not name a namespace means the policy's own. A rule with no peer matches every peer;
  no ports means every port.
Not modelled: named ports, L7 rules, FQDN selectors, services by name, host policies, reply
traffic (stateful: allowed), `policy-cidr-match-mode: nodes`.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Iterable

NAMESPACE_NAME = "kubernetes.io/metadata.name"
CILIUM_NAMESPACE = "io.kubernetes.pod.namespace"
CILIUM_NAMESPACE_LABELS = "io.cilium.k8s.namespace.labels."
CILIUM_KINDS = ("CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy")
POLICY_KINDS = ("NetworkPolicy", *CILIUM_KINDS)
#: Entities and the endpoint kinds they cover.
ENTITY_KINDS = {
    "all": {"pod", "world", "host", "remote-node", "kube-apiserver"},
    "world": {"world"},
    "cluster": {"pod", "host", "remote-node", "kube-apiserver"},
    "host": {"host"},
    "remote-node": {"remote-node"},
    "kube-apiserver": {"kube-apiserver"},
}


@dataclass(frozen=True)
class Endpoint:
    """One side of a flow: a pod (namespace, labels, its namespace's labels) or a peer outside
    the pod network (`world` with an address, `kube-apiserver`, `host`, `remote-node`)."""

    name: str
    kind: str = "pod"
    namespace: str = ""
    labels: tuple[tuple[str, str], ...] = ()
    namespace_labels: tuple[tuple[str, str], ...] = ()
    ip: str | None = None

    @staticmethod
    def pod(name: str, namespace: str, labels: dict, namespace_labels: dict | None = None) -> "Endpoint":
        ns_labels = {NAMESPACE_NAME: namespace, **(namespace_labels or {})}
        return Endpoint(name, "pod", namespace, tuple(sorted(labels.items())), tuple(sorted(ns_labels.items())))

    @property
    def label_map(self) -> dict:
        return dict(self.labels)

    @property
    def namespace_label_map(self) -> dict:
        return dict(self.namespace_labels)

    def cilium_labels(self) -> dict:
        out = dict(self.labels)
        out[CILIUM_NAMESPACE] = self.namespace
        out.update({CILIUM_NAMESPACE_LABELS + k: v for k, v in self.namespace_labels})
        return out


@dataclass(frozen=True)
class Policy:
    kind: str
    name: str
    namespace: str
    spec: dict
    source: Any        # what findings cite (a SourceRef)

    @property
    def describe(self) -> str:
        return f"{self.kind} {self.namespace + '/' if self.namespace else ''}{self.name}"


@dataclass
class Verdict:
    allowed: bool
    reason: str
    policies: list[Policy] = field(default_factory=list)   # the policies that decided it


# --- selectors ---------------------------------------------------------------------------------

def _key(key: str) -> str:
    """Cilium accepts a source prefix on selector keys (`k8s:`, `any:`)."""
    for prefix in ("k8s:", "any:"):
        if key.startswith(prefix):
            return key[len(prefix):]
    return key


def selector_matches(selector: dict | None, labels: dict) -> bool:
    """A Kubernetes label selector; {} (or None) matches everything."""
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(_key(key)) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = _key(expr["key"]), expr["operator"], expr.get("values") or []
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def _names_namespace(selector: dict) -> bool:
    keys = {_key(k) for k in (selector.get("matchLabels") or {})}
    keys |= {_key(e["key"]) for e in selector.get("matchExpressions") or []}
    return CILIUM_NAMESPACE in keys


def _in_cidr(ip: str | None, cidr: str, excepts: Iterable[str] = ()) -> bool:
    if ip is None:
        return False
    addr = ipaddress.ip_address(ip)
    if addr not in ipaddress.ip_network(cidr, strict=False):
        return False
    return not any(addr in ipaddress.ip_network(e, strict=False) for e in excepts)


# --- NetworkPolicy ------------------------------------------------------------------------------

def _np_types(spec: dict) -> set[str]:
    if spec.get("policyTypes"):
        return set(spec["policyTypes"])
    return {"Ingress"} | ({"Egress"} if spec.get("egress") else set())


def _np_peer(peer: dict, policy: Policy, ep: Endpoint) -> bool:
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        return ep.kind == "world" and _in_cidr(ep.ip, block["cidr"], block.get("except") or [])
    if ep.kind != "pod":
        return False
    if "namespaceSelector" in peer:
        if not selector_matches(peer["namespaceSelector"], ep.namespace_label_map):
            return False
    elif ep.namespace != policy.namespace:
        return False
    return "podSelector" not in peer or selector_matches(peer["podSelector"], ep.label_map)


def _np_port(ports: list | None, port: int, proto: str) -> bool:
    if not ports:
        return True
    for p in ports:
        if p.get("protocol", "TCP") != proto:
            continue
        if "port" not in p:
            return True
        low = p["port"]
        if isinstance(low, int) and (low == port or (p.get("endPort") and low <= port <= p["endPort"])):
            return True
    return False


def _np_rule(rule: dict, peers_key: str, policy: Policy, ep: Endpoint, port: int, proto: str) -> bool:
    peers = rule.get(peers_key)
    if peers and not any(_np_peer(peer, policy, ep) for peer in peers):
        return False
    return _np_port(rule.get("ports"), port, proto)


# --- Cilium -------------------------------------------------------------------------------------

def _cilium_selects_pod(policy: Policy, ep: Endpoint) -> bool:
    if ep.kind != "pod":
        return False
    if policy.kind == "CiliumNetworkPolicy" and ep.namespace != policy.namespace:
        return False
    return selector_matches(policy.spec.get("endpointSelector"), ep.cilium_labels())


def _cilium_peer(rule: dict, direction: str, policy: Policy, ep: Endpoint) -> bool | None:
    """Whether the rule's L3 part selects `ep`; None when the rule has no L3 part."""
    prefix = "to" if direction == "egress" else "from"
    seen = False
    for selector in rule.get(f"{prefix}Endpoints") or []:
        seen = True
        if ep.kind != "pod":
            continue
        if policy.kind == "CiliumNetworkPolicy" and not _names_namespace(selector) and ep.namespace != policy.namespace:
            continue
        if selector_matches(selector, ep.cilium_labels()):
            return True
    for entity in rule.get(f"{prefix}Entities") or []:
        seen = True
        if ep.kind in ENTITY_KINDS.get(entity, set()):
            return True
    for cidr in rule.get(f"{prefix}CIDR") or []:
        seen = True
        if ep.kind == "world" and _in_cidr(ep.ip, cidr):
            return True
    for item in rule.get(f"{prefix}CIDRSet") or []:
        seen = True
        if ep.kind == "world" and _in_cidr(ep.ip, item["cidr"], item.get("except") or []):
            return True
    return False if seen else None


def _cilium_port(to_ports: list | None, port: int, proto: str) -> bool:
    if not to_ports:
        return True
    for item in to_ports:
        for p in item.get("ports") or []:
            if p.get("protocol", "ANY") not in ("ANY", proto):
                continue
            low = int(p["port"]) if str(p.get("port", "0")).isdigit() else None
            if low in (None, 0) or low == port or (p.get("endPort") and low <= port <= int(p["endPort"])):
                return True
    return False


def _cilium_rule(rule: dict, direction: str, policy: Policy, ep: Endpoint, port: int, proto: str) -> bool:
    peer = _cilium_peer(rule, direction, policy, ep)
    return peer is not False and _cilium_port(rule.get("toPorts"), port, proto)


def _cilium_default_deny(policy: Policy, direction: str) -> bool:
    setting = (policy.spec.get("enableDefaultDeny") or {}).get(direction)
    if setting is not None:
        return bool(setting)
    return bool(policy.spec.get(direction) or policy.spec.get(f"{direction}Deny"))


# --- decisions ----------------------------------------------------------------------------------

def selects(policy: Policy, ep: Endpoint) -> bool:
    if policy.kind == "NetworkPolicy":
        return ep.kind == "pod" and ep.namespace == policy.namespace and \
            selector_matches(policy.spec.get("podSelector"), ep.label_map)
    return _cilium_selects_pod(policy, ep)


def direction_verdict(policies: list[Policy], subject: Endpoint, peer: Endpoint, port: int, proto: str,
                      direction: str) -> Verdict:
    """Whether `subject` lets traffic to (egress) or from (ingress) `peer` on port/proto."""
    if subject.kind != "pod":
        return Verdict(True, "not a pod: no policy applies")
    mine = [p for p in policies if selects(p, subject)]
    denies = [p for p in mine if p.kind in CILIUM_KINDS
              and any(_cilium_rule(r, direction, p, peer, port, proto) for r in p.spec.get(f"{direction}Deny") or [])]
    if denies:
        return Verdict(False, f"{direction} denied by a Cilium deny rule", denies)
    enforcing = [p for p in mine if (p.kind == "NetworkPolicy" and direction.capitalize() in _np_types(p.spec))
                 or (p.kind in CILIUM_KINDS and _cilium_default_deny(p, direction))]
    peers_key = "to" if direction == "egress" else "from"
    allows = [p for p in mine if
              (p.kind == "NetworkPolicy" and direction.capitalize() in _np_types(p.spec)
               and any(_np_rule(r, peers_key, p, peer, port, proto) for r in p.spec.get(direction) or []))
              or (p.kind in CILIUM_KINDS
                  and any(_cilium_rule(r, direction, p, peer, port, proto) for r in p.spec.get(direction) or []))]
    if not enforcing:
        return Verdict(True, f"{direction} default-allow at {'the source' if direction == 'egress' else 'the destination'} "
                             f"(no policy puts it in default deny)")
    if allows:
        return Verdict(True, f"{direction} allowed by a policy rule", allows)
    return Verdict(False, f"{direction} default deny, no rule allows it", enforcing)


def flow_verdict(policies: list[Policy], src: Endpoint, dst: Endpoint, port: int, proto: str) -> tuple[Verdict, Verdict]:
    """(egress at src, ingress at dst); the flow passes when both allow it."""
    egress = direction_verdict(policies, src, dst, port, proto, "egress")
    ingress = direction_verdict(policies, dst, src, port, proto, "ingress")
    return egress, ingress


def policy_from_object(obj: dict, source: Any) -> Policy | None:
    if not isinstance(obj, dict) or obj.get("kind") not in POLICY_KINDS:
        return None
    meta = obj.get("metadata") or {}
    return Policy(obj["kind"], meta.get("name", ""), meta.get("namespace", "") or "", obj.get("spec") or {}, source)


def policy_ports(policies: list[Policy]) -> set[tuple[int, str]]:
    """Every (port, protocol) any policy names: the interesting ports to probe."""
    out: set[tuple[int, str]] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            port = node.get("port")
            proto = node.get("protocol", "TCP")
            if port is not None and str(port).isdigit() and proto in ("TCP", "UDP", "SCTP"):
                out.add((int(port), proto))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    for p in policies:
        walk(p.spec)
    return out
