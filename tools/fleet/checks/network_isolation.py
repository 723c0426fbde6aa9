"""network-isolation: from the rendered policies alone, customers reach no store and no platform pod,
and every flow the platform needs passes.

For each cluster, the rendered NetworkPolicy, CiliumNetworkPolicy and
CiliumClusterwideNetworkPolicy objects are replayed by the reachability model in `fleet.reach`
over a population built from base/network/policies.yaml and the cluster's region:
- the platform pods, as their charts label them;
- a pod in a customer namespace under several label sets: none, the starform.io/* IDs, and each
  platform pod's own labels (a customer chooses its pod labels; only the namespace is Shuttle's);
- the region's VPC (its first and last address: the stores), a public address, the API server
  and the nodes (Cilium's host and remote-node: kubelets, host-network agents).
Isolation: every (customer pod, platform pod, store or node, port) must be blocked, but for the
`customerIsolation.reachable` exceptions (the public listeners). The ports probed are every port
a policy names plus one it does not name per protocol: with no port ranges in the policies, every
unnamed port behaves like that one. Findings point at the input line that let the flow through:
the flow whose allow rule admitted it, the pod entry of a pod outside default deny, or the
customerIsolation block when no deny rule covers a store.
Needs: every flow of base/network/policies.yaml must pass, else a finding at that flow's line.
"""
from __future__ import annotations

import hashlib
import ipaddress
from typing import Iterable

from .. import reach
from ..cache import ResultCache, code_key, digest
from ..errors import Finding, Severity, SourceRef
from ..k8s.objects import rendered_objects
from ..reach import POLICY_KINDS, Endpoint, Policy, Verdict, flow_verdict, policy_from_object, policy_ports
from ..render import network
from . import CheckContext

NAME = "network-isolation"
DESCRIPTION = "Rendered network policies keep customer pods away from stores and platform pods, and let every platform flow through"
ORDER = 47
SCOPE = "cluster"

CUSTOMER_NAMESPACE = "customer-probe"
PUBLIC_IP = "198.51.100.10"        # TEST-NET-2: an address on the internet
OUTSIDE_CLIENT_IP = "203.0.113.50"  # TEST-NET-3: a client outside the cluster
UNNAMED_PORTS = ((1, "TCP"), (1, "UDP"))
ANY_PORT_SAMPLES = ((8080, "TCP"), (5353, "UDP"))
_MEMO: dict[str, list[tuple[SourceRef, str, str]]] = {}


def _source(obj) -> SourceRef:
    """The input line the rendered policy was made from (its annotation), else the rendered line."""
    text = ((obj.obj.get("metadata") or {}).get("annotations") or {}).get(network.SOURCE_ANNOTATION, "")
    file, _, line = text.rpartition(":")
    if file and line.isdigit():
        return SourceRef(file, int(line))
    return obj.source(("metadata",))


def customer_pods(net: network.Network) -> list[Endpoint]:
    """A pod in a customer namespace, under every label set worth trying."""
    ns_labels = {net.namespace_label: "probe", "pod-security.kubernetes.io/enforce": "restricted"}
    label_sets = [("no labels", {}),
                  ("starform.io/* labels", {"starform.io/project-id": "probe", "starform.io/service-id": "s",
                                            "starform.io/workspace-id": "w"})]
    label_sets += [(f"the labels of {pod.name}", dict(pod.labels)) for pod in net.pods.values()]
    return [Endpoint.pod(f"customer pod with {what}", CUSTOMER_NAMESPACE, labels, ns_labels)
            for what, labels in label_sets]


def store_endpoints(vpc_cidr: str) -> list[Endpoint]:
    vpc = ipaddress.ip_network(vpc_cidr, strict=False)
    hosts = [vpc.network_address + 1, vpc.broadcast_address - 1] if vpc.num_addresses > 2 else [vpc.network_address]
    return [Endpoint(f"the region VPC {vpc_cidr}", "world", ip=str(ip)) for ip in hosts]


def peer_endpoints(net: network.Network, peer: str, vpc_cidr: str) -> list[Endpoint]:
    """Representative endpoints of a flow's peer name."""
    if peer in net.pods:
        pod = net.pods[peer]
        return [Endpoint.pod(peer, pod.namespace, pod.labels)]
    return {
        "customer-pods": lambda: customer_pods(net)[1:2],
        "region-vpc": lambda: store_endpoints(vpc_cidr)[:1],
        "internet": lambda: [Endpoint("the internet", "world", ip=PUBLIC_IP)],
        "kube-apiserver": lambda: [Endpoint("the API server", "kube-apiserver")],
        "nodes": lambda: [Endpoint("a node", "remote-node"), Endpoint("the local node", "host")],
        "anywhere": lambda: [Endpoint("a client outside the cluster", "world", ip=OUTSIDE_CLIENT_IP),
                             Endpoint("the API server", "kube-apiserver"), Endpoint("a node", "remote-node")],
    }[peer]()


def _blame(net: network.Network, target: str, ingress: Verdict) -> SourceRef:
    if ingress.policies:
        return sorted((p.source for p in ingress.policies), key=lambda s: (s.file, s.line))[0]
    pod = net.pods.get(target)
    return pod.source if pod else net.isolation_source


def _ports_text(ports: Iterable[tuple[int, str]]) -> str:
    return ", ".join(f"{p}/{proto}" for p, proto in sorted(ports))


def isolation_problems(net: network.Network, policies: list[Policy], vpc_cidr: str) -> list[tuple[SourceRef, str, str]]:
    """(source, what, why) for every way a customer pod reaches a store or a platform pod."""
    ports = sorted(policy_ports(policies) | set(UNNAMED_PORTS))
    reachable = {(pod, p) for pod, ps, _ in net.reachable for p in ps}
    targets = [(pod.name, Endpoint.pod(pod.name, pod.namespace, pod.labels)) for pod in net.pods.values() if pod.component]
    targets += [("region-vpc", ep) for ep in store_endpoints(vpc_cidr)]
    targets += [("nodes", ep) for ep in peer_endpoints(net, "nodes", vpc_cidr)]
    found: dict[tuple, set] = {}
    for customer in customer_pods(net):
        for name, target in targets:
            for port in ports:
                if (name, port) in reachable:
                    continue
                egress, ingress = flow_verdict(policies, customer, target, *port)
                if egress.allowed and ingress.allowed:
                    why = egress.reason + ("" if target.kind != "pod" else "; " + ingress.reason + (
                        f" ({', '.join(sorted(p.describe for p in ingress.policies))})" if ingress.policies else ""))
                    found.setdefault((_blame(net, name, ingress), target.name, why), set()).add(port)
    return [(source, f"a pod in a customer namespace reaches {target} on {_ports_text(ps)}", why)
            for (source, target, why), ps in found.items()]


def needed_flow_problems(net: network.Network, policies: list[Policy], vpc_cidr: str) -> list[tuple[SourceRef, str, str]]:
    """(source, what, why) for every flow of the input the policies block."""
    out = []
    for flow in net.flows:
        for src_name in flow.sources:
            for src in peer_endpoints(net, src_name, vpc_cidr):
                for dst in peer_endpoints(net, flow.to, vpc_cidr):
                    for port in flow.ports or ANY_PORT_SAMPLES:
                        egress, ingress = flow_verdict(policies, src, dst, *port)
                        if egress.allowed and ingress.allowed:
                            continue
                        verdict = egress if not egress.allowed else ingress
                        by = f" ({', '.join(sorted(p.describe for p in verdict.policies))})" if verdict.policies else ""
                        out.append((flow.source, f"the flow {src.name} → {dst.name} on {port[0]}/{port[1]} is blocked",
                                    verdict.reason + by))
    return out


def analyse(net: network.Network, policies: list[Policy], vpc_cidr: str) -> list[tuple[SourceRef, str, str]]:
    return isolation_problems(net, policies, vpc_cidr) + needed_flow_problems(net, policies, vpc_cidr)


def _digest(net_file: bytes, object_digests: list[str], vpc_cidr: str) -> str:
    """Key of one cluster's analysis: the input, its region's VPC, its rendered policies' texts."""
    return hashlib.sha256(b"\0".join([net_file, vpc_cidr.encode(), *sorted(d.encode() for d in object_digests)])).hexdigest()


#: Cached analyses (.cache/network-isolation.json) are keyed by the analysing code too.
_CODE = code_key(__file__, reach.__file__, network.__file__, packages=("PyYAML",))


def _analysed(net: network.Network, objects: list, vpc_cidr: str) -> list:
    """analyse() of one cluster's rendered policy objects, as JSON ([[file, line, col], what, why])."""
    policies = [Policy(p.kind, p.name, p.namespace, p.spec, _source(o))
                for o in objects for p in [policy_from_object(o.obj, None)] if p is not None]
    return [[[s.file, s.line, s.col], what, why] for s, what, why in analyse(net, policies, vpc_cidr)]


def check(ctx: CheckContext) -> Iterable[Finding]:
    net = network.load(ctx.root)
    net_file = (ctx.root / network.NETWORK).read_bytes()
    by_cluster: dict[str, list] = {}
    for obj in rendered_objects(ctx):
        if obj.cluster and obj.kind in POLICY_KINDS:
            by_cluster.setdefault(obj.cluster, []).append(obj)
    found: dict[tuple, list[str]] = {}
    store = ResultCache(ctx.root, "network-isolation")
    for cid, cluster in sorted(ctx.fleet.clusters.items()):
        objects = by_cluster.get(cid, [])
        key = _digest(net_file, [o.digest for o in objects], cluster.region.vpc_cidr)
        if key not in _MEMO:
            _MEMO[key] = [(SourceRef(*ref), what, why) for ref, what, why in store.get_or_compute(
                digest(_CODE, key), lambda: _analysed(net, objects, cluster.region.vpc_cidr))]
        for source, what, why in _MEMO[key]:
            found.setdefault((source, what, why), []).append(cid)
    store.save()
    for (source, what, why), clusters in sorted(found.items(), key=lambda kv: (kv[0][0].file, kv[0][0].line, kv[0][1])):
        yield Finding(NAME, Severity.ERROR, source, f"{what}: {why}; cluster(s): {', '.join(sorted(clusters))}",
                      details={"clusters": sorted(clusters), "what": what, "why": why})
