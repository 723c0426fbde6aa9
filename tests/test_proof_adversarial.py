"""Red-team cases for the GDPR proof: soundness holes found and closed, and attacks that held.

Ground truth is the engine: a case the proof calls safe is searched concretely (small exhaustive
input grid) for a leaking series; a case with a leak must have one the proof reports.
"""
from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from fleet import yamlio
from fleet.relabel import policy as pol
from fleet.relabel.engine import rule_from_mapping
from fleet.relabel.pipeline import paths_for_file
from fleet.relabel.proof import Pipeline, prove, run_concrete, run_target, scraped_series

ROOT = Path(__file__).resolve().parents[1]
ADV = ROOT / "tests" / "fixtures" / "relabel" / "adversarial"
YAML_CASES = yamlio.plain(yamlio.load_file(ADV / "yaml_cases.yaml"))
CUSTOMER = "cust-42x"


@pytest.fixture(scope="module")
def policy() -> pol.Policy:
    return pol.load_policy(ROOT / "policies" / "gdpr-labeldrop.yaml", "policies/gdpr-labeldrop.yaml")


def external_paths(policy: pol.Policy, name: str):
    paths = [p for p in paths_for_file(ADV / name, name, policy) if p.external]
    assert paths
    return paths


def carries_customer(policy: pol.Policy, out: dict | None) -> bool:
    return out is not None and any(CUSTOMER in v or CUSTOMER in n for n, v in out.items()
                                   if not policy.is_forbidden(n))


def leaks_through_targets(policy: pol.Policy, pipe: Pipeline) -> bool:
    """Ground truth: a pod labelled starform.io/project-id=CUSTOMER, scraped, through the path."""
    target = {"__address__": "10.0.0.1:9100", "__meta_kubernetes_namespace": "starform-system",
              "__meta_kubernetes_pod_label_app_kubernetes_io_name": "shuttle",
              "__meta_kubernetes_pod_label_starform_io_project_id": CUSTOMER,
              "__meta_kubernetes_pod_label_starform_io_service_id": CUSTOMER}
    for chain in pipe.targets:
        labels = run_target(chain, target)
        if labels is None:
            continue
        series = scraped_series(chain, labels, {"__name__": "up", "job": "shuttle"})
        if carries_customer(policy, run_concrete(pipe, series)):
            return True
    return False


# -- found: target labels made by discovery.relabel were not modelled (proof said "safe")


@pytest.mark.parametrize("name, label", [
    ("discovery_target_copy.alloy", "tenant"),
    ("discovery_labelmap.alloy", "starform_io_project_id"),
    ("discovery_chain.alloy", "owner"),
])
def test_target_label_from_pod_label_is_a_leak(policy, name, label):
    (path,) = external_paths(policy, name)
    assert leaks_through_targets(policy, path.pipeline)  # the engine says it leaks
    leaks = prove(path.pipeline, policy)
    assert [lk.label for lk in leaks if lk.kind == "value"] == [label]
    (leak,) = leaks
    assert leak.verified
    assert run_concrete(path.pipeline, leak.witness_input) == leak.witness_output
    assert leak.witness_output[label] == leak.witness_input[label]
    assert "__meta_kubernetes_pod_label_starform_io_project_id" in leak.note
    assert any(r.startswith(name + ":") for r in leak.rules)


def test_target_relabeling_used_only_for_filtering_stays_safe(policy):
    (path,) = external_paths(policy, "discovery_safe.alloy")
    assert prove(path.pipeline, policy) == []
    # ground truth over a small grid of targets and samples
    values = ["", CUSTOMER, "x"]
    for pid, sid, tenant in itertools.product(values, repeat=3):
        target = {k: v for k, v in {
            "__address__": "10.0.0.1:80", "__meta_kubernetes_namespace": "starform-system",
            "__meta_kubernetes_pod_label_starform_io_project_id": pid,
            "__meta_kubernetes_pod_label_starform_io_service_id": sid}.items() if v}
        labels = run_target(path.pipeline.targets[0], target)
        if labels is None:
            continue
        sample = {"__name__": "up", "job": "shuttle", **({"tenant": tenant} if tenant else {})}
        out = run_concrete(path.pipeline, scraped_series(path.pipeline.targets[0], labels, sample))
        assert not (tenant != CUSTOMER and carries_customer(policy, out)), (target, out)


# -- found: external labels whose names are not literal were taken as "none"


def test_unreadable_external_labels_are_not_assumed_empty(policy):
    (path,) = external_paths(policy, "external_labels_unknown.alloy")
    leaks = prove(path.pipeline, policy)
    assert {"project_id", "label_starform_io_project_id"} <= {lk.label for lk in leaks if lk.kind == "label"}


def test_hidden_target_relabeling_of_operator_sources_is_opaque(policy):
    (path,) = external_paths(policy, "podmonitors.alloy")
    assert any(lk.kind == "value" for lk in prove(path.pipeline, policy))


# -- attacks on the rule transfer functions that held


def _pipe(case: dict) -> Pipeline:
    flavor = case.get("flavor", "prometheus")
    return Pipeline([([rule_from_mapping(r, flavor=flavor) for r in case["rules"]], flavor)], name=case["name"])


_NAMES = ["project_id", "label_starform_io_project_id", "job", "a", "__tmp", "exported_job", "PROJECT_ID"]
_VALUES = ["", "shuttle", "p", "x", "x\n", "a;b", "shuttle\n", "\u212a", "project"]


def _concrete_leak(policy: pol.Policy, pipe: Pipeline) -> dict | None:
    """A leaking input from a grid of 3-label series (names x values), else None."""
    for names in itertools.combinations(_NAMES, 3):
        for values in itertools.product(_VALUES, repeat=3):
            series = {"__name__": "up", **{n: v for n, v in zip(names, values) if v}}
            out = run_concrete(pipe, series)
            if out is None:
                continue
            if any(policy.is_forbidden(n) for n in out) or not policy.job_allowed(out.get("job")):
                return series
            swapped = {n: ("zz" + v if policy.is_forbidden(n) else v) for n, v in series.items()}
            other = run_concrete(pipe, swapped)
            if other is None:  # dropped: an implicit flow, out of scope by design (policies/README.md)
                continue
            if any(other.get(n) != v for n, v in out.items() if not policy.is_forbidden(n)):
                return series
    return None


@pytest.mark.parametrize("case", YAML_CASES, ids=[c["name"] for c in YAML_CASES])
def test_yaml_attack(case, policy):
    pipe = _pipe(case)
    leaks = prove(pipe, policy)
    if case["expect"] == "safe":
        assert leaks == []
        assert _concrete_leak(policy, pipe) is None
    else:
        assert leaks
        assert _concrete_leak(policy, pipe) is not None  # the grid itself finds the leak


# -- found: a target label named like a customer id renames the scraped one to exported_<name>


def test_target_label_shadowing_a_customer_id_leaks_it_as_exported(policy):
    (path,) = external_paths(policy, "discovery_exported.alloy")
    leaks = prove(path.pipeline, policy)
    assert [(lk.kind, lk.label) for lk in leaks] == [("value", "exported_project_id")]
    (leak,) = leaks
    assert leak.verified and leak.witness_output["exported_project_id"] == leak.witness_input["exported_project_id"]
    chain = path.pipeline.targets[0]
    series = scraped_series(chain, {"job": "shuttle", "project_id": "platform"},
                            {"__name__": "up", "project_id": CUSTOMER})
    assert series["project_id"] == "platform" and series["exported_project_id"] == CUSTOMER
    assert carries_customer(policy, run_concrete(path.pipeline, series))


def test_honored_target_label_keeps_the_scraped_id_where_the_gate_drops_it(policy):
    (path,) = external_paths(policy, "discovery_exported_honored.alloy")
    assert prove(path.pipeline, policy) == []
    chain = path.pipeline.targets[0]
    series = scraped_series(chain, {"job": "shuttle", "project_id": "platform"},
                            {"__name__": "up", "project_id": CUSTOMER})
    assert series == {"__name__": "up", "job": "shuttle", "project_id": CUSTOMER}


def test_exported_renames_take_the_next_free_name():
    from fleet.relabel.proof import TargetChain
    series = scraped_series(TargetChain([]), {"job": "j", "a": "t"},
                            {"__name__": "up", "a": "s", "exported_a": "e", "job": "sj"})
    assert series == {"__name__": "up", "a": "t", "exported_a": "e", "exported_exported_a": "s",
                      "exported_job": "sj", "job": "j"}


# -- found by the second red team


def test_external_labels_come_before_the_write_rules(policy):
    """Prometheus' queue adds external labels, then runs write_relabel_configs: a write rule that
    drops `job` leaves the series without one, whatever external_labels says."""
    (path,) = external_paths(policy, "external_labels_before_write_rules.alloy")
    leaks = prove(path.pipeline, policy)
    assert [lk.kind for lk in leaks] == ["job"] and leaks[0].verified
    assert "job" not in leaks[0].witness_output
    out = run_concrete(path.pipeline, {"__name__": "up", "job": "shuttle"})
    assert out == {"__name__": "up"}


def test_an_external_label_a_write_rule_drops_does_not_leave(policy):
    (path,) = external_paths(policy, "external_label_dropped_by_write_rule.alloy")
    assert prove(path.pipeline, policy) == []
    assert run_concrete(path.pipeline, {"__name__": "up", "job": "shuttle"}) == {"__name__": "up", "job": "shuttle"}


def test_a_customer_id_in_the_address_reaches_instance(policy):
    (path,) = external_paths(policy, "discovery_address_to_instance.alloy")
    leaks = prove(path.pipeline, policy)
    assert [(lk.kind, lk.label) for lk in leaks] == [("value", "instance")] and leaks[0].verified
    (chain,) = path.pipeline.targets
    labels = run_target(chain, {"__address__": "10.0.0.1:9100", "__meta_kubernetes_pod_label_app": "shuttle",
                                "__meta_kubernetes_pod_label_starform_io_project_id": CUSTOMER})
    assert labels == {"instance": f"{CUSTOMER}.customers.svc:9100"}
    series = scraped_series(chain, {**labels, "job": "shuttle"}, {"__name__": "up"})
    assert carries_customer(policy, run_concrete(path.pipeline, series))


def test_a_dot_that_misses_a_newline_on_some_agents_is_not_trusted(policy):
    """Alloy's relabel config (and Prometheus 2.x) anchor `^(?:re)$`: `.+` misses a value with a
    newline, so `drop project_id=~".+"` lets such a series keep its project_id there. Current
    Prometheus anchors `^(?s:re)$`. The proof holds for both; `(?s).+` is safe on every agent."""
    def verdict(regex: str) -> list:
        rules = [{"action": "drop", "source_labels": ["project_id"], "regex": regex},
                 {"action": "keep", "source_labels": ["job"], "regex": "shuttle"},
                 {"action": "labeldrop", "regex": "service_id|workspace_id|label_starform_io_.+"}]
        return prove(_pipe({"name": regex, "rules": rules}), policy)
    assert [(lk.kind, lk.label) for lk in verdict(".+")] == [("label", "project_id")]
    assert verdict("(?s).+") == []


# -- found by the third red team: destinations and what the graph followed


@pytest.mark.parametrize("url", [
    "http://victoria-metrics@evil.example?.nyc3.starform.internal/api/v1/write",
    "http://victoria-metrics@evil.example#.nyc3.starform.internal/api/v1/write",
    "http://victoria-metrics:x@evil.example:80?.a.starform.internal",
    "http://vminsert@203.0.113.66?.a.starform.internal:8480/insert",
    "https://victoria-metrics.nyc3.starform.internal.evil.example/api/v1/write",
    "http://victoria-metrics.nyc3.starform.internal:99999/api/v1/write",
])
def test_a_url_that_names_another_host_is_not_in_region(policy, url):
    """userinfo (`user@host` sends to host), a query or fragment a pattern's tail could match:
    only a plain URL under the region's host pattern is in-region (real Prometheus sent the first
    one to the host after `@`)."""
    assert policy.classify_url(url)[0] == pol.EXTERNAL
    assert policy.classify_url("http://victoria-metrics.nyc3.starform.internal:8428/api/v1/write")[0] == pol.IN_REGION


@pytest.mark.parametrize("name, label", [
    ("rt3_proxy.alloy", "project_id"),        # proxy_url: the write goes to the proxy
    ("rt3_loki.alloy", "project_id"),         # logs to Grafana Cloud are analysed, not skipped
    ("rt3_pyro.alloy", "project_id"),         # profiles likewise
    ("rt3_lokimetrics.alloy", None),          # stage.metrics puts log labels into Alloy's own metrics
])
def test_paths_the_graph_once_skipped_are_leaks(policy, name, label):
    leaks = [lk for path in external_paths(policy, name) for lk in prove(path.pipeline, policy)]
    assert leaks
    assert label is None or any(lk.label == label for lk in leaks)


def test_remotecfg_is_refused(policy):
    from fleet.errors import InputError
    with pytest.raises(InputError, match="remotecfg blocks are not supported"):
        paths_for_file(ADV / "rt3_remotecfg.alloy", "rt3_remotecfg.alloy", policy)


# -- issue 15, class 4: Alloy's discovery.relabel renames again what a labelmap adds to added labels


def test_alloy_labelmap_may_rename_an_added_label_again(policy):
    from fleet.relabel.engine import apply

    (path,) = external_paths(policy, "alloy_labelmap_revisit.alloy")
    chain = path.pipeline.targets[0]
    target = {"__address__": "10.0.0.1:9100", "__meta_kubernetes_pod_label_starform_io_project_id": CUSTOMER}
    # snapshot semantics (Prometheus) would not leak; Alloy's target builder can
    (rules, _), = chain.stages
    assert "tmp_p" not in apply(rules, target)
    assert run_target(chain, target)["tmp_p"] == CUSTOMER
    (leak,) = prove(path.pipeline, policy)
    assert (leak.kind, leak.label, leak.verified) == ("value", "tmp_p", True)
    assert leak.witness_output["tmp_p"] in leak.note


def test_alloy_labelmap_revisit_covered_by_the_drop_is_safe(policy):
    (path,) = external_paths(policy, "alloy_labelmap_revisit_safe.alloy")
    assert prove(path.pipeline, policy) == []
    assert not leaks_through_targets(policy, path.pipeline)


# -- issue 15, class 1: a write sends more than the relabeled series


QUIET = "    send_exemplars = false\n    metadata_config {\n      send = false\n    }\n"


@pytest.mark.parametrize("drop, kinds", [  # drop: the setting removed from the endpoint
    ("", set()),                                                   # both switched off: safe
    ("    send_exemplars = false\n", {"exemplar"}),
    ("    metadata_config {\n      send = false\n    }\n", {"metadata"}),
    (QUIET, {"exemplar", "metadata"}),                             # Alloy's defaults: both sent
])
def test_every_part_of_a_write_is_a_path(policy, tmp_path, drop, kinds):
    text = (ADV / "discovery_safe.alloy").read_text()
    assert QUIET in text
    path = tmp_path / "w.alloy"
    path.write_text(text.replace(QUIET, QUIET.replace(drop, "", 1) if drop else QUIET))
    (p,) = [p for p in paths_for_file(path, "w.alloy", policy) if p.external]
    leaks = prove(p.pipeline, policy)
    assert {lk.kind for lk in leaks} == kinds
    for lk in leaks:  # not replayed (the engine models labels only), so never called verified
        assert not lk.verified and lk.rules[0].startswith("w.alloy:") and "false" in lk.note


def test_exemplars_switched_off_only_by_a_literal_false(policy, tmp_path):
    text = (ADV / "discovery_safe.alloy").read_text().replace(
        "send_exemplars = false", 'send_exemplars = sys.env("SEND_EXEMPLARS") == "true"')
    path = tmp_path / "w.alloy"
    path.write_text(text)
    (p,) = [p for p in paths_for_file(path, "w.alloy", policy) if p.external]
    assert {lk.kind for lk in prove(p.pipeline, policy)} == {"exemplar"}


def test_a_sink_other_than_remote_write_sends_an_unmodelled_payload(policy):
    leaks = [lk for p in external_paths(policy, "rt3_loki.alloy") for lk in prove(p.pipeline, policy)]
    assert "payload" in {lk.kind for lk in leaks}


# -- issue 15, class 5: every way Alloy itself emits is a path


@pytest.mark.parametrize("name, kinds", [
    ("self_logging_external.alloy", {"payload"}),   # logging.write_to a Grafana Cloud loki.write
    ("self_tracing_external.alloy", {"payload"}),   # tracing.write_to an external OTLP exporter
    ("self_metrics_file_path.alloy", {"value"}),    # loki.source.file labels Alloy's metrics with paths
    ("rt3_lokimetrics.alloy", {"value"}),           # stage.metrics: log labels in Alloy's metrics
    ("self_logging_local.alloy", set()),            # logs stay on stderr
    ("self_metrics_config_only.alloy", set()),      # every component labels its metrics from config
])
def test_alloy_own_output(policy, name, kinds):
    paths = [p for p in paths_for_file(ADV / name, name, policy) if p.external]
    leaks = [lk for p in paths for lk in prove(p.pipeline, policy)]
    assert {lk.kind for lk in leaks} == kinds, [lk.to_json() for lk in leaks]
    if "payload" in kinds:
        assert any("own" in p.description and p.stage_names[-1].endswith("write_to") for p in paths)
        assert all(name + ":" in lk.rules[0] for lk in leaks)


def test_self_output_write_to_must_be_references(policy, tmp_path):
    from fleet.errors import InputError

    path = tmp_path / "l.alloy"
    path.write_text('logging {\n  write_to = concat([])\n}\n')
    with pytest.raises(InputError, match="logging.write_to must be a list"):
        paths_for_file(path, "l.alloy", policy)


# -- issue 15, class 2: a YAML scrape job is two programs with a scrape between them

SCRAPE = ROOT / "tests" / "fixtures" / "relabel" / "scrape"


@pytest.mark.parametrize("flavor", ["prometheus", "vmagent"])
def test_scrape_job_is_two_programs(policy, flavor):
    from fleet.relabel.loader import rules_under

    name = "job_two_programs_leak.yaml"
    path, report = paths_for_file(SCRAPE / name, name, policy, flavor)
    assert path.external and path.pipeline.targets and not path.pipeline.targets[0].alloy
    assert "report series" in report.description
    # read as one rule list (the old model) it looked safe
    (job,) = yamlio.load_file(SCRAPE / name)["scrape_configs"]
    one_list = [r for key in ("relabel_configs", "metric_relabel_configs") for r in rules_under(job, key, name, flavor)]
    assert prove(Pipeline([(one_list, flavor)]), policy) == []
    assert leaks_through_targets(policy, path.pipeline)  # the engine, target then series, leaks
    leaks = prove(path.pipeline, policy)
    by_label = {lk.label: lk for lk in leaks}
    assert by_label["tenant"].kind == "value" and by_label["project_id"].kind == "label"
    for lk in leaks:
        assert lk.verified and run_concrete(path.pipeline, lk.witness_input) == lk.witness_output


@pytest.mark.parametrize("flavor", ["prometheus", "vmagent"])
def test_scrape_job_filtering_on_pod_labels_is_safe(policy, flavor):
    name = "job_two_programs_safe.yaml"
    path, report = paths_for_file(SCRAPE / name, name, policy, flavor)
    assert prove(path.pipeline, policy) == [] and prove(report.pipeline, policy) == []
    assert not leaks_through_targets(policy, path.pipeline)


@pytest.mark.parametrize("flavor", ["prometheus", "vmagent"])
def test_scrape_report_series_skip_metric_relabel_configs(policy, flavor):
    name = "report_series_leak.yaml"
    path, report = paths_for_file(SCRAPE / name, name, policy, flavor)
    assert prove(path.pipeline, policy) == []  # every scraped series is cleaned
    (leak,) = prove(report.pipeline, policy)   # but `up` carries the target labels as they are
    assert (leak.kind, leak.label, leak.verified) == ("value", "tenant", True)
    assert leak.witness_output["__name__"] == "up" and leak.witness_output["job"] == "shuttle"
    pod_label = leak.witness_input["__meta_kubernetes_pod_label_starform_io_project_id"]
    assert leak.witness_output["tenant"] == pod_label


def test_scrape_configs_must_be_a_list(policy, tmp_path):
    from fleet.errors import InputError

    bad = tmp_path / "s.yaml"
    bad.write_text("scrape_configs: {job_name: x}\n")
    with pytest.raises(InputError, match="scrape_configs must be a list"):
        paths_for_file(bad, "s.yaml", policy)
