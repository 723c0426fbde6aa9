"""Network isolation: the reachability model (table tests of NetworkPolicy + Cilium semantics),
what the renderer emits, and the network-isolation check on passing and failing fleets."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from fleet import model
from fleet.checks import CheckContext, k8s_schema, network_isolation
from fleet.cli import cli
from fleet.reach import Endpoint, Policy, flow_verdict

NETWORK = "base/network/policies.yaml"

# --- the model ----------------------------------------------------------------------------------

WEB = Endpoint.pod("web", "shop", {"app": "web"})
DB = Endpoint.pod("db", "shop", {"app": "db"})
DB_ELSEWHERE = Endpoint.pod("db-other", "other", {"app": "db"})
AGENT = Endpoint.pod("agent", "mon", {"app": "agent"})
CUSTOMER = Endpoint.pod("customer", "p-1", {"app": "agent"}, {"starform.io/project-id": "1"})
STORE = Endpoint("store", "world", ip="10.110.0.5")
PUBLIC = Endpoint("public", "world", ip="198.51.100.10")
APISERVER = Endpoint("apiserver", "kube-apiserver")
NODE = Endpoint("node", "remote-node")


def np(namespace: str, spec: dict, name: str = "p") -> Policy:
    return Policy("NetworkPolicy", name, namespace, spec, name)


def cnp(namespace: str, spec: dict, name: str = "c") -> Policy:
    return Policy("CiliumNetworkPolicy", name, namespace, spec, name)


def ccnp(spec: dict, name: str = "cc") -> Policy:
    return Policy("CiliumClusterwideNetworkPolicy", name, "", spec, name)


DENY_ALL = np("shop", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}, "deny")
DB_FROM_WEB = np("shop", {"podSelector": {"matchLabels": {"app": "db"}}, "policyTypes": ["Ingress"],
                          "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}],
                                       "ports": [{"port": 5432, "protocol": "TCP"}]}]}, "db-from-web")
WEB_TO_DB = np("shop", {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"],
                        "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}]}]}, "web-to-db")
DB_FROM_AGENT_NS_AND_POD = np("shop", {"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [{"from": [
    {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "mon"}},
     "podSelector": {"matchLabels": {"app": "agent"}}}]}]}, "and")
DB_FROM_AGENT_NS_OR_POD = np("shop", {"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [{"from": [
    {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "mon"}}},
    {"podSelector": {"matchLabels": {"app": "agent"}}}]}]}, "or")
WEB_TO_INTERNET = np("shop", {"podSelector": {"matchLabels": {"app": "web"}}, "egress": [{"to": [
    {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}], "ports": [{"port": 443, "protocol": "TCP"}]}]},
    "web-internet")
CUSTOMERS_DENY_MON = ccnp({"endpointSelector": {"matchExpressions": [
    {"key": "io.cilium.k8s.namespace.labels.starform.io/project-id", "operator": "Exists"}]},
    "enableDefaultDeny": {"egress": False, "ingress": False},
    "egressDeny": [{"toEndpoints": [{"matchLabels": {"k8s:io.kubernetes.pod.namespace": "mon"}}]}]}, "deny-mon")
CUSTOMERS_DENY_VPC_DEFAULT = ccnp({"endpointSelector": {"matchExpressions": [
    {"key": "io.cilium.k8s.namespace.labels.starform.io/project-id", "operator": "Exists"}]},
    "egressDeny": [{"toCIDRSet": [{"cidr": "10.110.0.0/20"}]}]}, "deny-vpc")
CUSTOMERS_DENY_VPC = ccnp({**CUSTOMERS_DENY_VPC_DEFAULT.spec, "enableDefaultDeny": {"egress": False, "ingress": False}})
ALLOW_ALL_INGRESS_MON = np("mon", {"podSelector": {}, "ingress": [{}]}, "allow-all")
AGENT_TO_APISERVER = cnp("mon", {"endpointSelector": {"matchLabels": {"app": "agent"}},
                                 "egress": [{"toEntities": ["kube-apiserver"],
                                             "toPorts": [{"ports": [{"port": "443", "protocol": "TCP"}]}]}]})
AGENT_TO_DB_ANY_NS = cnp("mon", {"endpointSelector": {"matchLabels": {"app": "agent"}},
                                 "egress": [{"toEndpoints": [{"matchLabels": {"app": "db"}}]}]})
AGENT_TO_VPC_CIDR = cnp("mon", {"endpointSelector": {}, "egress": [{"toCIDRSet": [{"cidr": "10.0.0.0/8"}]}]})
AGENT_PORTS_ANY = cnp("mon", {"endpointSelector": {}, "egress": [
    {"toPorts": [{"ports": [{"port": "53", "protocol": "ANY"}]}]}]})

CASES = {
    # name: (policies, src, dst, port, proto, allowed)
    "no-policy-allows-everything": ([], WEB, DB, 1234, "TCP", True),
    "default-deny-blocks": ([DENY_ALL], WEB, DB, 5432, "TCP", False),
    "allow-rules-are-a-union": ([DENY_ALL, DB_FROM_WEB, WEB_TO_DB], WEB, DB, 5432, "TCP", True),
    "allowed-port-only": ([DENY_ALL, DB_FROM_WEB, WEB_TO_DB], WEB, DB, 5433, "TCP", False),
    "allowed-protocol-only": ([DENY_ALL, DB_FROM_WEB, WEB_TO_DB], WEB, DB, 5432, "UDP", False),
    "egress-also-needed": ([DENY_ALL, DB_FROM_WEB], WEB, DB, 5432, "TCP", False),
    "pod-selector-alone-is-same-namespace": ([DB_FROM_WEB], Endpoint.pod("w2", "other", {"app": "web"}), DB,
                                             5432, "TCP", False),
    "policy-only-selects-its-namespace": ([DB_FROM_WEB], WEB, DB_ELSEWHERE, 5432, "TCP", True),
    "namespace-and-pod-in-one-peer-is-and": ([DB_FROM_AGENT_NS_AND_POD], Endpoint.pod("x", "mon", {"app": "x"}),
                                              DB, 80, "TCP", False),
    "namespace-and-pod-in-one-peer-match": ([DB_FROM_AGENT_NS_AND_POD], AGENT, DB, 80, "TCP", True),
    "two-peers-are-or": ([DB_FROM_AGENT_NS_OR_POD], Endpoint.pod("x", "mon", {"app": "x"}), DB, 80, "TCP", True),
    "ingress-only-by-default-without-egress-rules": ([DB_FROM_WEB], DB, WEB, 80, "TCP", True),
    "egress-type-implied-by-egress-rules": ([WEB_TO_INTERNET], WEB, PUBLIC, 80, "TCP", False),
    "ipblock-public": ([WEB_TO_INTERNET], WEB, PUBLIC, 443, "TCP", True),
    "ipblock-except": ([WEB_TO_INTERNET], WEB, STORE, 443, "TCP", False),
    "ipblock-never-selects-pods": ([WEB_TO_INTERNET], WEB, DB, 443, "TCP", False),
    "cilium-deny-wins-over-allow": ([CUSTOMERS_DENY_MON, ALLOW_ALL_INGRESS_MON], CUSTOMER, AGENT, 80, "TCP", False),
    "cilium-deny-selects-by-namespace-label": ([CUSTOMERS_DENY_MON], WEB, AGENT, 80, "TCP", True),
    "deny-only-policy-enables-default-deny": ([CUSTOMERS_DENY_VPC_DEFAULT], CUSTOMER, PUBLIC, 443, "TCP", False),
    "enable-default-deny-false-keeps-default-allow": ([CUSTOMERS_DENY_VPC], CUSTOMER, PUBLIC, 443, "TCP", True),
    "cidr-deny": ([CUSTOMERS_DENY_VPC], CUSTOMER, STORE, 8428, "TCP", False),
    "entity-apiserver": ([AGENT_TO_APISERVER], AGENT, APISERVER, 443, "TCP", True),
    "entity-is-not-world": ([AGENT_TO_APISERVER], AGENT, PUBLIC, 443, "TCP", False),
    "entity-port": ([AGENT_TO_APISERVER], AGENT, APISERVER, 6443, "TCP", False),
    "cnp-endpoints-default-to-its-namespace": ([AGENT_TO_DB_ANY_NS], AGENT, DB, 5432, "TCP", False),
    "cilium-cidr-never-selects-nodes": ([AGENT_TO_VPC_CIDR], AGENT, NODE, 10250, "TCP", False),
    "cilium-cidr-selects-outside": ([AGENT_TO_VPC_CIDR], AGENT, STORE, 10250, "TCP", True),
    "cilium-port-any-protocol": ([AGENT_PORTS_ANY], AGENT, PUBLIC, 53, "UDP", True),
    "cilium-port-only-rule-other-port": ([AGENT_PORTS_ANY], AGENT, PUBLIC, 54, "UDP", False),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_reachability_model(case: str) -> None:
    policies, src, dst, port, proto, allowed = CASES[case]
    egress, ingress = flow_verdict(policies, src, dst, port, proto)
    assert (egress.allowed and ingress.allowed) is allowed, (egress, ingress)


# --- rendering ----------------------------------------------------------------------------------

def _objects(repo: Path, cluster: str) -> list[dict]:
    docs = []
    for path in sorted((repo / "rendered/clusters" / cluster / "stages").glob("*/network-policy.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_every_platform_namespace_is_default_deny_and_customers_are_fenced(repo_root: Path) -> None:
    docs = _objects(repo_root, "fra1-prod-01")
    deny_all = {d["metadata"]["namespace"] for d in docs if d["kind"] == "NetworkPolicy"
                and d["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}
    assert deny_all == {"envoy-gateway-system", "starform-metrics", "starform-logging", "starform-alloy", "starform-system"}
    # in kube-system only our own pods are under default deny
    kube_system = [d for d in docs if d["metadata"].get("namespace") == "kube-system"
                   and d["metadata"]["name"].startswith("default-deny")]
    assert [d["spec"]["podSelector"] for d in kube_system] == [{"matchLabels": {"app.kubernetes.io/name": "metrics-server"}}]
    fences = [d for d in docs if d["kind"] == "CiliumClusterwideNetworkPolicy"]
    assert all(d["spec"]["enableDefaultDeny"] == {"egress": False, "ingress": False} for d in fences)
    vpc = [d for d in fences if d["spec"]["egressDeny"] == [{"toCIDRSet": [{"cidr": "10.114.0.0/20"}]}]]
    assert len(vpc) == 1   # the cluster's own region's VPC
    assert all(d["metadata"]["annotations"]["starform.io/fleet-source"].startswith(NETWORK + ":") for d in docs)


# --- the check ----------------------------------------------------------------------------------

def _render(root: Path) -> None:
    result = CliRunner().invoke(cli, ["render", "--root", str(root)])
    assert result.exit_code == 0, result.output


def _findings(root: Path, check=network_isolation) -> list:
    ctx = CheckContext(root=root, fleet=model.load(root), rendered=root / "rendered")
    return list(check.check(ctx))


def _edit(root: Path, old: str, new: str) -> list[str]:
    path = root / NETWORK
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))
    return path.read_text().splitlines()


def _line(lines: list[str], text: str) -> int:
    hits = [i + 1 for i, line in enumerate(lines) if line.startswith(text)]
    assert len(hits) == 1, (text, hits)
    return hits[0]


def test_shipped_fleet_is_isolated_and_every_flow_passes(repo_root: Path) -> None:
    assert _findings(repo_root) == []


def test_store_reachable_without_the_vpc_deny_is_found_at_customer_isolation(fleet_copy: Path) -> None:
    lines = _edit(fleet_copy, "    - region-vpc\n", "")
    _render(fleet_copy)
    found = _findings(fleet_copy)
    assert {(f.source.file, f.source.line) for f in found} == {(NETWORK, _line(lines, "customerIsolation:"))}
    assert sorted(f.details["what"].split(" on ")[0] for f in found) == [
        "a pod in a customer namespace reaches the region VPC 10.110.0.0/20",
        "a pod in a customer namespace reaches the region VPC 10.114.0.0/20"]
    assert all("8428/TCP" in f.message and "24224/TCP" in f.message for f in found)


def test_platform_pod_open_to_anywhere_needs_the_customer_deny(fleet_copy: Path) -> None:
    lines = _edit(fleet_copy, "    - pod: metrics-server\n", "")
    _render(fleet_copy)
    found = _findings(fleet_copy)
    assert [(f.source.line, f.details["what"]) for f in found] == [
        (_line(lines, "  - {from: anywhere, to: metrics-server"),
         "a pod in a customer namespace reaches metrics-server on 10250/TCP")]
    assert "NetworkPolicy kube-system/ingress-metrics-server-from-anywhere" in found[0].message


def test_flow_from_customers_to_a_platform_pod_is_blocked_at_its_line(fleet_copy: Path) -> None:
    lines = _edit(fleet_copy, "  - {from: shuttle, to: internet, ports: [443/TCP]}\n",
                  "  - {from: shuttle, to: internet, ports: [443/TCP]}\n"
                  "  - {from: customer-pods, to: shuttle, ports: [9090/TCP]}\n")
    _render(fleet_copy)
    found = _findings(fleet_copy)
    assert [(f.source.line, f.details["why"]) for f in found] == [
        (_line(lines, "  - {from: customer-pods, to: shuttle"),
         "egress denied by a Cilium deny rule (CiliumClusterwideNetworkPolicy starform-customers-deny-namespaces)")]


def test_hand_edited_policy_that_drops_a_needed_flow_is_found(fleet_copy: Path) -> None:
    _render(fleet_copy)
    lines = (fleet_copy / NETWORK).read_text().splitlines()
    path = fleet_copy / "rendered/clusters/nyc3-prod-01/stages/03-telemetry/network-policy.yaml"
    text = path.read_text()
    assert text.count("    - port: 8428\n") == 1
    path.write_text(text.replace("    - port: 8428\n", "    - port: 8429\n"))
    found = _findings(fleet_copy)
    assert [(f.source.line, f.details["what"], f.details["clusters"]) for f in found] == [
        (_line(lines, "  - {from: vmagent, to: region-vpc"),
         "the flow vmagent → the region VPC 10.110.0.0/20 on 8428/TCP is blocked", ["nyc3-prod-01"])]


def test_cilium_objects_are_validated_against_our_strict_schema(fleet_copy: Path) -> None:
    _render(fleet_copy)
    path = fleet_copy / "rendered/clusters/nyc3-prod-01/stages/01-gateway/network-policy.yaml"
    text = path.read_text()
    path.write_text(text.replace("  egressDeny:\n", "  egressDenied:\n", 1).replace("operator: Exists\n", "operator: Exist\n"))
    found = _findings(fleet_copy, k8s_schema)
    messages = sorted(f.message for f in found)
    assert any("unknown field 'egressDenied'" in m for m in messages), messages
    assert any("$.spec.endpointSelector.matchExpressions[0]" in m for m in messages), messages
    assert all(f.source.file.endswith("01-gateway/network-policy.yaml") for f in found)


@pytest.mark.parametrize("old, new, expected", [
    ("  - {from: alloy, to: vmagent, ports: [8429/TCP]}", "  - {from: alloy, to: vmagnet, ports: [8429/TCP]}",
     "unknown peer 'vmagnet'"),
    ("  - {from: alloy, to: vmagent, ports: [8429/TCP]}", "  - {from: alloy, to: vmagent, ports: [8429/tcp]}",
     "PORT/PROTOCOL"),
    ("  - {from: alloy, to: vmagent, ports: [8429/TCP]}", "  - {from: vmagent, to: anywhere}",
     "`anywhere` is a source only"),
    ("  - {from: alloy, to: fluent-bit, ports: [2020/TCP]}", "  - {from: alloy, to: vmagent, ports: [2020/TCP]}",
     "a second flow from alloy to vmagent"),
])
def test_bad_network_input_is_exit_2_at_its_line(fleet_copy: Path, old: str, new: str, expected: str) -> None:
    lines = _edit(fleet_copy, old + "\n", new + "\n")
    result = CliRunner().invoke(cli, ["render", "--root", str(fleet_copy)])
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert f"{NETWORK}:{_line(lines, new)}" in result.output


def test_nodes_reachable_without_the_nodes_deny_is_found_at_customer_isolation(fleet_copy: Path) -> None:
    lines = _edit(fleet_copy, "    - nodes\n", "")
    _render(fleet_copy)
    found = _findings(fleet_copy)
    assert {(f.source.line, f.details["what"].split(" on ")[0]) for f in found} == {
        (_line(lines, "customerIsolation:"), "a pod in a customer namespace reaches a node"),
        (_line(lines, "customerIsolation:"), "a pod in a customer namespace reaches the local node")}
    assert all("9100/TCP" in f.message and "10250/TCP" in f.message for f in found)


def test_every_platform_scrape_job_has_its_flow_from_alloy(repo_root: Path) -> None:
    """Alloy's platform jobs select pods by namespace and label: each such pod is a pod of the
    network input (same namespace, same label) that Alloy may reach; node-exporter runs in the
    host network, reached as `nodes`."""
    from fleet.render import alloy, network
    net = network.load(repo_root)
    reached = {f.to for f in net.flows if "alloy" in f.sources}
    for job in alloy.platform_jobs(repo_root):
        label = (job["podLabel"]["name"], job["podLabel"]["value"])
        pods = [p.name for p in net.pods.values() if p.namespace in job["namespaces"] and label in p.labels.items()]
        if job["job"] == "node-exporter":
            assert not pods and "nodes" in reached
            continue
        assert pods and set(pods) <= reached, (job["job"], pods)


def test_shuttle_pods_match_the_network_selector(repo_root: Path) -> None:
    from fleet.render import network, shuttle
    (deployment,) = [d for d in shuttle.load_manifests(repo_root) if d["kind"] == "Deployment"]
    pod = network.load(repo_root).pods["shuttle"]
    assert deployment["metadata"]["namespace"] == pod.namespace
    assert pod.labels.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
