"""Component graph of an Alloy config (fleet.alloy.graph)."""
from __future__ import annotations

from pathlib import Path

import pytest

from fleet.alloy.graph import (
    Graph, build_graph, endpoint_url, relabel_rules, scrape_job, scrape_jobs, write_relabel_rules,
)
from fleet.alloy.syntax import NotLiteral, parse, parse_file
from fleet.errors import InputError, SourceRef

FIXTURES = Path(__file__).parent / "fixtures" / "alloy"

SCRAPE = "prometheus.scrape.platform"
RELABEL = "prometheus.relabel.platform"
GRAFANA = "prometheus.remote_write.grafana"


def graph_of(text: str) -> Graph:
    return build_graph(parse(text, "c.alloy"), "c.alloy")


def error_of(text: str) -> InputError:
    with pytest.raises(InputError) as info:
        graph_of(text)
    return info.value


@pytest.fixture(scope="module")
def pipelines() -> Graph:
    return build_graph(parse_file(FIXTURES / "pipelines.alloy", "p.alloy"), "p.alloy")


def test_seed002_fixed_is_scrape_relabel_remote_write():
    g = build_graph(parse_file(FIXTURES / "seed002_fixed.alloy", "c.alloy"), "c.alloy")
    assert set(g.components) == {"discovery.kubernetes.pods", SCRAPE, RELABEL, GRAFANA}
    assert [(a, b) for a, b, _ in g.edges] == [(SCRAPE, RELABEL), (RELABEL, GRAFANA)]
    assert g.edges[0][2] == SourceRef("c.alloy", 9, 17)
    assert g.sources() == [SCRAPE] and g.sinks() == [GRAFANA]
    assert g.paths(SCRAPE, GRAFANA) == [[SCRAPE, RELABEL, GRAFANA]]
    comp = g.components[RELABEL]
    assert (comp.kind, comp.label, comp.id) == ("prometheus.relabel", "platform", RELABEL)
    rules = relabel_rules(comp)
    assert [{k: v for k, v in r.items() if not k.startswith("__")} for r in rules] == [
        {"source_labels": ["job"], "regex": "shuttle|node-exporter|kube-state-metrics|envoy-self", "action": "keep"},
        {"regex": "project_id|service_id|workspace_id", "action": "labeldrop"},
    ]
    assert rules[0]["__pos__"] == SourceRef("c.alloy", 16, 3)
    assert rules[1]["__source__"] == SourceRef("base/relabel/platform.yaml", 7)


def test_multi_stage_chain_fan_out_and_bypass(pipelines):
    g = pipelines
    assert g.sources() == ["prometheus.scrape.platform", "prometheus.scrape.node"]
    assert g.sinks() == [GRAFANA, "prometheus.remote_write.backup"]
    assert g.successors("prometheus.relabel.stage2") == [GRAFANA, "prometheus.remote_write.backup"]
    assert g.predecessors(GRAFANA) == ["prometheus.scrape.node", "prometheus.relabel.stage2"]
    chain = ["prometheus.relabel.stage1", "prometheus.relabel.stage2"]
    assert g.paths("prometheus.scrape.node", GRAFANA) == [
        ["prometheus.scrape.node", *chain, GRAFANA],
        ["prometheus.scrape.node", GRAFANA],  # the bypass
    ]
    assert g.paths("prometheus.scrape.platform", "prometheus.remote_write.backup") == [
        ["prometheus.scrape.platform", *chain, "prometheus.remote_write.backup"]]
    assert g.paths(GRAFANA, "prometheus.scrape.node") == []
    assert g.edge_positions("prometheus.scrape.node", GRAFANA) == [SourceRef("p.alloy", 30, 5)]
    # Neither discovery nor exporters carry series: they are not on data-flow edges.
    assert "prometheus.exporter.unix.node" not in g.sources()


def test_relabel_rules_keep_every_prometheus_key(pipelines):
    rules = relabel_rules(pipelines.components["prometheus.relabel.stage2"])
    assert rules[0]["__source__"] == SourceRef("base/relabel/platform.yaml", 12)
    assert "__source__" not in rules[1]
    assert {k: v for k, v in rules[1].items() if k != "__pos__"} == {
        "source_labels": ["__name__", "instance"], "separator": "@", "regex": "(.*)@(.*)",
        "target_label": "name_at", "replacement": "$1", "action": "replace"}


def test_write_relabel_config_inside_endpoint(pipelines):
    endpoints = write_relabel_rules(pipelines.components[GRAFANA])
    assert len(endpoints) == 2
    (first, rules), (second, none) = endpoints
    assert endpoint_url(first) == "https://prometheus-prod-NN.grafana.net/api/prom/push"
    assert endpoint_url(second) is None  # sys.env(...) is not a literal
    assert [(r["regex"], r["action"], r["__source__"]) for r in rules] == [
        ("label_starform_io_.*", "labeldrop", SourceRef("base/relabel/write.yaml", 2))]
    assert none == []


def test_scrape_jobs_and_target_pipeline(pipelines):
    platform, node = scrape_jobs(pipelines)
    assert (platform.job_name, platform.job_name_explicit, platform.honor_labels) == ("platform", True, False)
    assert platform.target_sources == ["discovery.relabel.platform_pods", "discovery.kubernetes.pods"]
    # The default job name is the component's id (Alloy docs).
    assert (node.job_name, node.job_name_explicit, node.honor_labels) == ("prometheus.scrape.node", False, True)
    assert node.target_sources == ["prometheus.exporter.unix.node"]
    assert node.forward_to == ["prometheus.relabel.stage1", GRAFANA]
    rules = relabel_rules(pipelines.components["discovery.relabel.platform_pods"])
    assert rules[0]["target_label"] == "job" and rules[0]["__source__"].line == 4
    ref = next(r for r in pipelines.references if r.src == "prometheus.scrape.platform" and r.attribute == "targets")
    assert (ref.dst, ref.export, ref.pos) == ("discovery.relabel.platform_pods", "output", SourceRef("p.alloy", 19, 16))


def test_config_and_service_blocks_are_not_components():
    g = graph_of('logging {\n  level = "debug"\n}\nhttp {\n}\nprometheus.exporter.self "a" {}\n')
    assert list(g.components) == ["prometheus.exporter.self.a"]


def test_otelcol_output_blocks_are_edges():
    g = graph_of(
        'otelcol.receiver.otlp "in" {\n  output {\n    metrics = [otelcol.exporter.prometheus.conv.input]\n  }\n}\n'
        'otelcol.exporter.prometheus "conv" {\n  forward_to = [prometheus.remote_write.out.receiver]\n}\n'
        'prometheus.remote_write "out" {}\n')
    assert g.sources() == ["otelcol.receiver.otlp.in"]
    assert g.sinks() == ["prometheus.remote_write.out"]
    assert g.paths("otelcol.receiver.otlp.in", "prometheus.remote_write.out") == [
        ["otelcol.receiver.otlp.in", "otelcol.exporter.prometheus.conv", "prometheus.remote_write.out"]]


def test_unknown_receiver_kind_counts_as_a_sink_and_a_dead_end_relabel_does_not():
    g = graph_of(
        'prometheus.scrape "s" {\n  targets = []\n  forward_to = [vendor.thing.x.receiver, prometheus.relabel.r.receiver]\n}\n'
        'vendor.thing "x" {}\nprometheus.relabel "r" {\n  forward_to = []\n}\n')
    assert g.sinks() == ["vendor.thing.x"]


@pytest.mark.parametrize("text, message, line, col", [
    ('prometheus.scrape "s" {\n  forward_to = [prometheus.relabel.nope.receiver]\n}\n',
     'component "prometheus.relabel.nope" does not exist or is out of scope', 2, 17),
    ('prometheus.scrape "s" {\n  targets = discovery.kubernetes.nope.targets\n  forward_to = []\n}\n',
     'component "discovery.kubernetes.nope" does not exist or is out of scope', 2, 13),
    ('prometheus.scrape "s" {\n  targets = nope\n  forward_to = []\n}\n', 'identifier "nope" does not exist', 2, 13),
    ('prometheus.scrape "s" {\n  targets = [{"a" = unknown_fn("x")}]\n  forward_to = []\n}\n',
     'identifier "unknown_fn" does not exist', 2, 21),
    ('prometheus.scrape "s" {\n  forward_to = [prometheus.relabel.r.rules]\n}\nprometheus.relabel "r" {\n  forward_to = []\n}\n',
     "forward_to element prometheus.relabel.r.rules is not a component's .receiver", 2, 17),
    ('prometheus.scrape "s" {\n  forward_to = [prometheus.relabel.r]\n}\nprometheus.relabel "r" {\n  forward_to = []\n}\n',
     "forward_to element prometheus.relabel.r is not a component's .receiver", 2, 17),
    ('prometheus.scrape "s" {\n  forward_to = [sys.env("X")]\n}\n',
     "forward_to element must be a reference to a component's receiver, got a call to sys.env()", 2, 17),
    ('prometheus.scrape "s" {\n  forward_to = ["prometheus.relabel.r.receiver"]\n}\n',
     "forward_to element must be a reference to a component's receiver, got a string", 2, 17),
    ('prometheus.scrape "s" {\n  forward_to = concat([], [])\n}\n',
     "forward_to must be a list of references to component receivers, got a call to concat()", 2, 16),
    ('prometheus.scrape {\n  forward_to = []\n}\n', 'component "prometheus.scrape" must have a label', 1, 1),
    ('prometheus.relabel "a" {\n  forward_to = []\n}\n\nprometheus.relabel "a" {\n  forward_to = []\n}\n',
     "block prometheus.relabel.a already declared at c.alloy:1:1", 5, 1),
    ('prometheus.relabel "a" {\n  forward_to = []\n  forward_to = []\n}\n',
     'attribute "forward_to" may only be provided once', 3, 3),
    ('prometheus.relabel "a" {\n  forward_to = []\n  rule {\n    action = "keep"\n    action = "drop"\n  }\n}\n',
     'attribute "action" may only be provided once', 5, 5),
    ("x = 1\n", 'unsupported statement type: attribute "x" at the top level', 1, 1),
    ('declare "m" {\n}\n', "declare blocks are not supported", 1, 1),
])
def test_graph_errors(text, message, line, col):
    err = error_of(text)
    assert message in err.message
    assert err.source == SourceRef("c.alloy", line, col)


def test_forward_to_cycle_is_detected():
    err = error_of(
        'prometheus.relabel "a" {\n  forward_to = [prometheus.relabel.b.receiver]\n}\n'
        'prometheus.relabel "b" {\n  forward_to = [prometheus.relabel.c.receiver]\n}\n'
        'prometheus.relabel "c" {\n  forward_to = [prometheus.relabel.a.receiver]\n}\n')
    assert err.message == ("cycle detected: prometheus.relabel.a -> prometheus.relabel.b -> "
                           "prometheus.relabel.c -> prometheus.relabel.a")
    assert err.source == SourceRef("c.alloy", 8, 17)


def test_self_reference_is_a_cycle():
    err = error_of('prometheus.relabel "a" {\n  forward_to = [prometheus.relabel.a.receiver]\n}\n')
    assert err.message == "cycle detected: prometheus.relabel.a -> prometheus.relabel.a"


def test_diamond_is_not_a_cycle():
    g = graph_of(
        'prometheus.scrape "s" {\n  targets = []\n  forward_to = [prometheus.relabel.a.receiver, prometheus.relabel.b.receiver]\n}\n'
        'prometheus.relabel "a" {\n  forward_to = [prometheus.remote_write.w.receiver]\n}\n'
        'prometheus.relabel "b" {\n  forward_to = [prometheus.remote_write.w.receiver]\n}\n'
        'prometheus.remote_write "w" {}\n')
    assert len(g.paths("prometheus.scrape.s", "prometheus.remote_write.w")) == 2


@pytest.mark.parametrize("rule, message", [
    ('acton = "keep"', 'unrecognized attribute name "acton"'),
    ('action = "Keep"', 'unknown relabel action "Keep"'),
    ("source_labels = \"job\"", "source_labels: expected list(string), got str"),
    ("modulus = \"8\"", "modulus: expected number, got str"),
    ("nested {\n    }", 'unrecognized block name "nested"'),
])
def test_bad_relabel_rules(rule, message):
    g = graph_of(f'prometheus.relabel "a" {{\n  forward_to = []\n  rule {{\n    {rule}\n  }}\n}}\n')
    with pytest.raises(InputError) as info:
        relabel_rules(g.components["prometheus.relabel.a"])
    assert info.value.message == message
    assert info.value.source.line == 4


def test_non_literal_rule_value_is_not_literal():
    g = graph_of('prometheus.relabel "a" {\n  forward_to = []\n  rule {\n    regex = sys.env("R")\n  }\n}\n')
    with pytest.raises(NotLiteral):
        relabel_rules(g.components["prometheus.relabel.a"])


def test_scrape_job_defaults():
    g = graph_of('prometheus.scrape "s" {\n  targets = [{"__address__" = "x:1"}]\n  forward_to = []\n}\n')
    job = scrape_job(g, "prometheus.scrape.s")
    assert (job.job_name, job.honor_labels, job.target_sources, job.forward_to) == (
        "prometheus.scrape.s", False, [], [])
