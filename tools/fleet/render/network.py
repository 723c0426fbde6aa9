"""Network isolation, rendered from base/network/policies.yaml (format documented there).

Per cluster: a default-deny NetworkPolicy in every platform namespace; for each flow an egress
policy at its source and an ingress policy at its destination (NetworkPolicy for pods and IP
blocks, CiliumNetworkPolicy where the peer is a Cilium entity: the API server, the nodes); and,
per deny entry of `customerIsolation`, a CiliumClusterwideNetworkPolicy selecting every pod in a
customer namespace. Every object carries `starform.io/fleet-source: FILE:LINE`, the input line it
was made from, so the network-isolation check reports at the line a reviewer edits.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import schema, yamlio
from ..errors import InputError, InputErrors, SourceRef

NETWORK = Path("base/network/policies.yaml")
NP_API = "networking.k8s.io/v1"
CILIUM_API = "cilium.io/v2"
SOURCE_ANNOTATION = "starform.io/fleet-source"
LABELS = {"app.kubernetes.io/managed-by": "starform-fleet"}
#: Cilium's label for a pod's namespace, and the prefix of its namespace's labels.
CILIUM_NAMESPACE = "io.kubernetes.pod.namespace"
CILIUM_NAMESPACE_LABELS = "io.cilium.k8s.namespace.labels."
#: Peers that are not pods (see the input file's comment).
ENTITIES = {"kube-apiserver": ["kube-apiserver"], "nodes": ["host", "remote-node"]}
PEERS = ("customer-pods", "region-vpc", "internet", "anywhere", *ENTITIES)
#: Not public: RFC 1918, RFC 6598 (DigitalOcean's VPCs and pod networks live in these).
PRIVATE_RANGES = ("10.0.0.0/8", "100.64.0.0/10", "172.16.0.0/12", "192.168.0.0/16")


@dataclass(frozen=True)
class Pod:
    name: str
    component: str | None
    namespace: str
    labels: dict
    source: SourceRef


@dataclass(frozen=True)
class Flow:
    sources: tuple[str, ...]
    to: str
    ports: tuple[tuple[int, str], ...]    # empty: every port
    source: SourceRef


@dataclass(frozen=True)
class Deny:
    """One deny entry of customerIsolation: region-vpc, namespaces, a namespace but some pods, a pod."""

    name: str
    kind: str
    namespaces: tuple[str, ...] = ()
    except_label: tuple[str, str] | None = None
    pod: str | None = None
    ports: tuple[tuple[int, str], ...] = ()
    source: SourceRef = field(default_factory=lambda: SourceRef(NETWORK.as_posix()))


@dataclass(frozen=True)
class Network:
    namespaces: dict[str, SourceRef]
    pods: dict[str, Pod]
    flows: tuple[Flow, ...]
    namespace_label: str
    denies: tuple[Deny, ...]
    reachable: tuple[tuple[str, tuple[tuple[int, str], ...], SourceRef], ...]
    isolation_source: SourceRef


def _ports(items: list | None) -> tuple[tuple[int, str], ...]:
    out = []
    for item in items or []:
        port, proto = item.split("/")
        out.append((int(port), proto))
    return tuple(out)


def load(root: Path) -> Network:
    """The validated network input; unknown names and clashing policy names are input errors."""
    name = NETWORK.as_posix()
    ix = yamlio.load_indexed_file(root / NETWORK, name)
    problems = schema.validate(ix, "network", name)
    if problems:
        raise InputErrors(problems)
    d = ix.data
    pods = {p: Pod(p, v.get("component"), v["namespace"], dict(v["labels"]), ix.key_ref(("pods", p)))
            for p, v in d["pods"].items()}
    errors: list[InputError] = []
    known = set(pods) | set(PEERS)
    flows, seen = [], set()
    for i, f in enumerate(d["flows"]):
        sources = tuple([f["from"]] if isinstance(f["from"], str) else f["from"])
        for j, peer in enumerate(sources + (f["to"],)):
            where = ("flows", i, "from", j) if isinstance(f["from"], list) and j < len(sources) else \
                    ("flows", i, "from" if j < len(sources) else "to")
            if peer not in known:
                errors.append(InputError(f"unknown peer {peer!r}", ix.value_ref(where),
                                         expected=f"a pod of `pods` or one of {list(PEERS)}"))
        if f["to"] == "anywhere":
            errors.append(InputError("`anywhere` is a source only", ix.value_ref(("flows", i, "to")),
                                     expected="a pod, customer-pods, region-vpc, internet, kube-apiserver or nodes"))
        for src in sources:
            if (src, f["to"]) in seen:
                errors.append(InputError(f"a second flow from {src} to {f['to']}", ix.key_ref(("flows", i)),
                                         expected="one flow per pair (list its ports together)"))
            seen.add((src, f["to"]))
        flows.append(Flow(sources, f["to"], _ports(f.get("ports")), ix.key_ref(("flows", i))))
    iso = d["customerIsolation"]
    denies = []
    for i, entry in enumerate(iso["denyEgressTo"]):
        ref = ix.key_ref(("customerIsolation", "denyEgressTo", i))
        if entry in ("region-vpc", "nodes"):
            denies.append(Deny(entry, entry, source=ref))
        elif "namespaces" in entry:
            denies.append(Deny("namespaces", "namespaces", tuple(entry["namespaces"]), source=ref))
        elif "exceptPods" in entry:
            if len(entry["exceptPods"]) != 1:
                errors.append(InputError("exceptPods takes one label (Cilium selects `key NotIn [value]`)", ref))
                continue
            (key, value), = entry["exceptPods"].items()
            denies.append(Deny(entry["namespace"], "namespace", (entry["namespace"],), (key, value), source=ref))
        else:
            if entry["pod"] not in pods:
                errors.append(InputError(f"unknown pod {entry['pod']!r}", ref, expected="a pod of `pods`"))
                continue
            denies.append(Deny(entry["pod"] + ("-ports" if entry.get("ports") else ""), "pod",
                               pod=entry["pod"], ports=_ports(entry.get("ports")), source=ref))
    names = [x.name for x in denies]
    for x in denies:
        if names.count(x.name) > 1:
            errors.append(InputError(f"two deny entries would both be named {x.name!r}", x.source))
    reachable = []
    for i, entry in enumerate(iso.get("reachable") or []):
        ref = ix.key_ref(("customerIsolation", "reachable", i))
        if entry["pod"] not in pods:
            errors.append(InputError(f"unknown pod {entry['pod']!r}", ref, expected="a pod of `pods`"))
        reachable.append((entry["pod"], _ports(entry["ports"]), ref))
    if errors:
        raise InputErrors(errors)
    namespaces = {ns: ix.value_ref(("namespaces", i)) for i, ns in enumerate(d["namespaces"])}
    return Network(namespaces, pods, tuple(flows), iso["namespaceLabel"], tuple(denies), tuple(reachable),
                   ix.key_ref(("customerIsolation",)))


# --- objects ------------------------------------------------------------------------------------

def _meta(name: str, namespace: str | None, source: SourceRef) -> dict:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta["labels"] = dict(LABELS)
    meta["annotations"] = {SOURCE_ANNOTATION: f"{source.file}:{source.line}"}
    return meta


def _np(name: str, namespace: str, source: SourceRef, spec: dict) -> dict:
    return {"apiVersion": NP_API, "kind": "NetworkPolicy", "metadata": _meta(name, namespace, source), "spec": spec}


def _cnp(kind: str, name: str, namespace: str | None, source: SourceRef, spec: dict) -> dict:
    return {"apiVersion": CILIUM_API, "kind": kind, "metadata": _meta(name, namespace, source), "spec": spec}


def _np_ports(ports: tuple) -> list[dict]:
    return [{"port": port, "protocol": proto} for port, proto in ports]


def _cilium_ports(ports: tuple) -> list[dict]:
    return [{"ports": [{"port": str(port), "protocol": proto} for port, proto in ports]}] if ports else []


def internet_block(vpc_cidr: str) -> dict:
    """0.0.0.0/0 but private ranges and the VPC (if it is outside them)."""
    except_ = list(PRIVATE_RANGES)
    vpc = ipaddress.ip_network(vpc_cidr, strict=False)
    if not any(vpc.subnet_of(ipaddress.ip_network(r)) for r in PRIVATE_RANGES):
        except_.append(str(vpc))
    return {"cidr": "0.0.0.0/0", "except": except_}


def _np_peer(net: Network, peer: str, vpc_cidr: str) -> dict | None:
    """The NetworkPolicy peer for `peer` (None: any source, i.e. no `from`)."""
    if peer in net.pods:
        pod = net.pods[peer]
        return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": pod.namespace}},
                "podSelector": {"matchLabels": dict(pod.labels)}}
    if peer == "customer-pods":
        return {"namespaceSelector": {"matchExpressions": [{"key": net.namespace_label, "operator": "Exists"}]}}
    if peer == "region-vpc":
        return {"ipBlock": {"cidr": vpc_cidr}}
    if peer == "internet":
        return {"ipBlock": internet_block(vpc_cidr)}
    return None


def _egress(net: Network, flow: Flow, src: Pod, vpc_cidr: str) -> dict:
    name = f"egress-{src.name}-to-{flow.to}"
    if flow.to in ENTITIES:
        rule = {"toEntities": ENTITIES[flow.to], **({"toPorts": _cilium_ports(flow.ports)} if flow.ports else {})}
        return _cnp("CiliumNetworkPolicy", name, src.namespace, flow.source,
                    {"endpointSelector": {"matchLabels": dict(src.labels)}, "egress": [rule]})
    rule: dict[str, Any] = {"to": [_np_peer(net, flow.to, vpc_cidr)]}
    if flow.ports:
        rule["ports"] = _np_ports(flow.ports)
    return _np(name, src.namespace, flow.source,
               {"podSelector": {"matchLabels": dict(src.labels)}, "policyTypes": ["Egress"], "egress": [rule]})


def _ingress(net: Network, flow: Flow, dst: Pod, peer: str, vpc_cidr: str) -> dict:
    name = f"ingress-{dst.name}-from-{peer}"
    if peer in ENTITIES:
        rule = {"fromEntities": ENTITIES[peer], **({"toPorts": _cilium_ports(flow.ports)} if flow.ports else {})}
        return _cnp("CiliumNetworkPolicy", name, dst.namespace, flow.source,
                    {"endpointSelector": {"matchLabels": dict(dst.labels)}, "ingress": [rule]})
    rule = {}
    source = _np_peer(net, peer, vpc_cidr)
    if source is not None:
        rule["from"] = [source]
    if flow.ports:
        rule["ports"] = _np_ports(flow.ports)
    return _np(name, dst.namespace, flow.source,
               {"podSelector": {"matchLabels": dict(dst.labels)}, "policyTypes": ["Ingress"], "ingress": [rule]})


def _deny_rule(net: Network, deny: Deny, vpc_cidr: str) -> dict:
    if deny.kind == "region-vpc":
        return {"toCIDRSet": [{"cidr": vpc_cidr}]}
    if deny.kind == "nodes":
        return {"toEntities": list(ENTITIES["nodes"])}
    if deny.kind == "namespaces":
        return {"toEndpoints": [{"matchExpressions": [
            {"key": CILIUM_NAMESPACE, "operator": "In", "values": sorted(deny.namespaces)}]}]}
    if deny.kind == "namespace":
        key, value = deny.except_label
        return {"toEndpoints": [{"matchLabels": {CILIUM_NAMESPACE: deny.namespaces[0]},
                                 "matchExpressions": [{"key": key, "operator": "NotIn", "values": [value]}]}]}
    pod = net.pods[deny.pod]
    rule: dict[str, Any] = {"toEndpoints": [{"matchLabels": {CILIUM_NAMESPACE: pod.namespace, **pod.labels}}]}
    if deny.ports:
        rule["toPorts"] = _cilium_ports(deny.ports)
    return rule


def customer_isolation(net: Network, vpc_cidr: str) -> list[dict]:
    """One CiliumClusterwideNetworkPolicy per deny entry: every pod in a customer namespace, deny
    only (enableDefaultDeny false both ways: customers keep default-allow for the rest)."""
    selector = {"matchExpressions": [{"key": CILIUM_NAMESPACE_LABELS + net.namespace_label, "operator": "Exists"}]}
    return [_cnp("CiliumClusterwideNetworkPolicy", f"starform-customers-deny-{deny.name}", None, deny.source, {
        "description": "Pods in customer namespaces never reach the region's stores or platform pods",
        "endpointSelector": selector,
        "enableDefaultDeny": {"egress": False, "ingress": False},
        "egressDeny": [_deny_rule(net, deny, vpc_cidr)],
    }) for deny in net.denies]


def component_policies(net: Network, component: str, owned_namespaces: list[str], vpc_cidr: str,
                       isolation: bool) -> list[dict]:
    """The policies that belong in `component`'s stage: default deny for the namespaces it owns
    (and for its own pods outside them), the flows of its pods, the customer isolation if asked."""
    docs = []
    for ns in owned_namespaces:
        if ns in net.namespaces:
            docs.append(_np("default-deny", ns, net.namespaces[ns],
                            {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}))
    own = [p for p in net.pods.values() if p.component == component]
    for pod in own:
        if pod.namespace not in net.namespaces:   # e.g. kube-system: deny for our pods only
            docs.append(_np(f"default-deny-{pod.name}", pod.namespace, pod.source,
                            {"podSelector": {"matchLabels": dict(pod.labels)}, "policyTypes": ["Ingress", "Egress"]}))
    for flow in net.flows:
        for src in flow.sources:
            if src in net.pods and net.pods[src].component == component:
                docs.append(_egress(net, flow, net.pods[src], vpc_cidr))
            dst = net.pods.get(flow.to)
            if dst is not None and dst.component == component:
                docs.append(_ingress(net, flow, dst, src, vpc_cidr))
    if isolation:
        docs += customer_isolation(net, vpc_cidr)
    return docs
