"""Label-flow analysis of PromQL (fleet.rules.promql): what a result is sure to carry."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st

from fleet.rules import promql

LABELS = ["project_id", "service_id", "workspace_id", "cluster_id", "namespace", "pod", "le"]


def flow(expr: str, known=("cluster_id",), open_=True) -> promql.LabelFlow:
    analyzer = promql.FlowAnalyzer(lambda use: (frozenset(known), open_))
    return analyzer.flow(promql.parse(expr))


def test_matchers_guarantee_labels():
    f = flow('x{project_id!="", a="v", b=~".+", c=~".*", d!="v", e=""}')
    assert {"project_id", "a", "b"} <= f.known
    assert not {"c", "d", "e"} & f.known


def test_sum_by_keeps_only_listed_and_known_labels():
    f = flow('sum by (project_id, pod) (x{project_id!=""})')
    assert f.known == {"project_id"} and not f.open


def test_sum_without_project_id_records_the_loss():
    f = flow('sum without (project_id) (x{project_id!=""})')
    assert "project_id" not in f.known
    assert f.losses and "without" in f.losses[0].why


def test_aggregation_without_modifier_drops_everything():
    f = flow('sum(x{project_id!=""})')
    assert f.known == frozenset() and f.losses


def test_group_left_copies_labels_from_the_one_side():
    f = flow('rate(a[5m]) * on (cluster_id, namespace, pod) group_left (project_id) b{project_id!=""}')
    assert "project_id" in f.known and "cluster_id" in f.known


def test_group_left_from_a_side_without_the_label_does_not_guarantee_it():
    f = flow('a * on (pod) group_left (project_id) b')
    assert "project_id" not in f.known


def test_one_to_one_on_keeps_only_matching_labels():
    f = flow('a{project_id!=""} / on (cluster_id) b{project_id!=""}')
    assert f.known == {"cluster_id"}
    assert f.losses and "one-to-one" in f.losses[0].why


def test_label_replace_from_a_known_label():
    f = flow('label_replace(x{label_starform_io_project_id!=""}, "project_id", "$1", "label_starform_io_project_id", "(.+)")')
    assert "project_id" in f.known
    g = flow('label_replace(x, "project_id", "$1", "label_starform_io_project_id", "(.+)")')
    assert "project_id" not in g.known


def test_histogram_quantile_drops_le():
    f = flow('histogram_quantile(0.9, x{le!="", project_id!=""})')
    assert "le" not in f.known and "project_id" in f.known


def test_scalar_comparisons_keep_the_vector_side():
    assert "project_id" in flow('x{project_id!=""} > 0').known
    assert "project_id" in flow('time() - x{project_id!=""}').known


def test_or_keeps_only_labels_both_sides_carry():
    assert "project_id" not in flow('x{project_id!=""} or y').known
    assert "project_id" in flow('x{project_id!=""} or y{project_id!=""}').known


def test_label_mentions_cover_every_position():
    expr = promql.parse(
        'sum by (project_id) (a{service_id="x"}) * on (workspace_id) group_left (label_starform_io_project_id) '
        'label_replace(b, "dst", "$1", "src", "(.*)")')
    names = {label for label, _where in promql.label_mentions(expr)}
    assert {"project_id", "service_id", "workspace_id", "label_starform_io_project_id", "dst", "src"} <= names


@settings(max_examples=60, deadline=None)
@given(st.sets(st.sampled_from(LABELS), max_size=len(LABELS)), st.sampled_from(["sum", "max", "avg", "count"]))
def test_by_clause_keeps_project_id_exactly_when_listed(by, op):
    """For any `by` list: project_id survives iff listed; a drop is always reported as a loss."""
    by_text = ", ".join(sorted(by))
    f = flow(f'{op} by ({by_text}) (x{{project_id!="", namespace!=""}})')
    assert ("project_id" in f.known) == ("project_id" in by)
    assert bool(f.losses) == ("project_id" not in by)
    assert f.known <= frozenset(by)
