"""Hostile and broken input, by class: every loader and every input kind refuses it with exit 2,
file:line, a bounded message and no traceback — and `rendered/` stays untouched.

Each class is parametrised over the places it can occur (every YAML loader, every input file
kind, every command that reads it), so a new loader or input kind cannot quietly miss a guard.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from fleet import schema, yamlio
from fleet.alloy import syntax as alloy_syntax
from fleet.cli import cli
from fleet.errors import InputError
from fleet.rules import promql
from fleet.writer import read_tree

from conftest import REPO


def _run(args: list[str], cwd: Path | None = None):
    old = os.getcwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        return CliRunner().invoke(cli, args)
    finally:
        os.chdir(old)


def _bomb(levels: int = 9) -> str:
    """A flow sequence whose last element expands to 9**levels scalars ("billion laughs")."""
    parts = ['&a0 ["x","x","x","x","x","x","x","x","x"]']
    parts += [f"&a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels + 1)]
    return "[" + ", ".join(parts) + "]"


#: Hostile YAML values, each written where any YAML value may go.
HOSTILE = {
    "alias-bomb": (_bomb(), "aliases expand to more than"),
    "deep-flow-nesting": ("[" * 100_000 + "]" * 100_000, "nesting deeper than"),
    "deep-block-nesting": None,   # built per indentation by _with_value
    "recursive-alias": ("&loop [1, *loop]", "recursive YAML alias"),
    "python-tag-on-mapping": ("!!python/object:os.system {args: [id]}", "unsupported YAML tag"),
    "python-tag-on-scalar": ("!!python/name:os.system ''", "unsupported YAML tag"),
    "local-tag-on-sequence": ("!shuttle [a]", "unsupported YAML tag"),
}


def _deep_block(indent: str, depth: int = 1000) -> str:
    lines = []
    for level in range(depth):
        lines.append(f"{indent}{'  ' * level}k{level}:")
    return "\n" + "\n".join(lines) + " x"


def _with_value(text: str, case: str) -> tuple[str, int]:
    """`text` with a hostile value added at its end (a new key, or a new list item), and the line
    the hostile part starts on (0: deep in it)."""
    lines = text.rstrip("\n").split("\n")
    body = [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    is_list = body[0].startswith("- ")
    line = len(lines) + 1
    if case == "deep-block-nesting":
        indent = "  " if is_list else ""
        value = _deep_block(indent + "  ")
        line = 0   # somewhere ~MAX_DEPTH lines below
    else:
        value = " " + HOSTILE[case][0]
    key = "- zz_hostile:" if is_list else "zz_hostile:"
    return "\n".join(lines) + f"\n{key}{value}\n", line


def _expected(case: str) -> str:
    return "nesting deeper than" if case == "deep-block-nesting" else HOSTILE[case][1]


# --- every loader -------------------------------------------------------------------------------

LOADERS = {
    "ruamel round-trip (rules, relabel, policy, tests)": yamlio.load_text,
    "ruamel multi-document (manifests, rendered)": yamlio.load_all_text,
    "indexed (fleet inputs)": yamlio.load_indexed,
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_every_loader_refuses_hostile_yaml(loader: str, case: str) -> None:
    text, line = _with_value("a: 1\nb: [2]\n", case)
    with pytest.raises(InputError) as info:
        LOADERS[loader](text, "x.yaml")
    message = info.value.render()
    assert re.match(rf"x\.yaml:{line if line else '[0-9]+'}:", message), message
    assert _expected(case) in message
    assert len(message) < 500


def test_anchors_that_reuse_a_little_are_fine() -> None:
    doc = yamlio.load_indexed("a: &x {k: [1, 2]}\nb: *x\nc: !!str 010\n", "x.yaml")
    assert doc.data == {"a": {"k": [1, 2]}, "b": {"k": [1, 2]}, "c": "010"}


def test_no_other_yaml_loader_in_tools() -> None:
    """One loader module for everything (inputs, rendered output, reference CRDs): a direct
    yaml.load / safe_load / YAML() elsewhere would skip the guards."""
    offenders = []
    for path in (REPO / "tools/fleet").rglob("*.py"):
        rel = path.relative_to(REPO).as_posix()
        if rel == "tools/fleet/yamlio.py":
            continue
        text = path.read_text(encoding="utf-8")
        if re.search(r"yaml\.(safe_load|load|load_all|compose|full_load|unsafe_load)\(|\bYAML\(", text):
            offenders.append(rel)
    assert offenders == []


# --- every input kind, through the command that reads it ----------------------------------------

#: input file (and a note) → the command that reads it (argv; the fleet root is appended or is the cwd).
INPUT_KINDS = {
    "base/fleet.yaml": ["render"],
    "base/components/vmagent/component.yaml": ["render"],
    "base/components/vmagent/values.yaml": ["render"],
    "base/components/alloy/platform-jobs.yaml": ["render"],
    "base/components/shuttle/manifests.yaml": ["render"],
    "base/relabel/customer.yaml": ["render"],
    "overlays/production/overlay.yaml": ["render"],
    "regions/nyc3/region.yaml": ["render"],
    "clusters/nyc3-prod-01/cluster.yaml": ["render"],
    "base/rules/recording/10-resources.yaml": ["render"],
    "base/rules/producers.yaml": ["lint", "--only", "producers-sync"],
    "tests/rules/customer-resources.test.yaml": ["lint", "--only", "rules-tests"],
    "tests/rules/customer-resources.test.yaml (rules-vm)": ["lint", "--only", "rules-vm"],
    "policies/gdpr-labeldrop.yaml": ["policy", "check", "base/relabel/customer.yaml"],
    "base/relabel/platform.yaml (policy check)": ["policy", "check", "base/relabel/platform.yaml"],
    "base/relabel/platform.yaml (explain)": ["explain", "base/relabel/platform.yaml", "--series", "up"],
    "tests/relabel/customer.test.yaml": ["test-relabel", "tests/relabel/customer.test.yaml"],
}


@pytest.fixture
def hostile_fleet(fleet_copy: Path) -> Path:
    """The example fleet with tests/ beside it, rendered once (so lint has a tree to read)."""
    for sub in ("tests/rules", "tests/relabel"):
        (fleet_copy / sub).mkdir(parents=True)
        for path in (REPO / sub).iterdir():
            (fleet_copy / sub / path.name).write_bytes(path.read_bytes())
    assert _run(["render", "--root", str(fleet_copy)]).exit_code == 0
    return fleet_copy


def _invoke(root: Path, rel: str):
    argv = INPUT_KINDS[rel]
    if argv[0] in ("render", "lint"):
        return _run(argv + ["--root", str(root)])
    return _run(argv, cwd=root)


def _assert_refused(result, rel: str, line: int | None, expected: str, root: Path, before: dict) -> None:
    output = result.output
    assert result.exit_code == 2, output[-3000:]
    assert "Traceback" not in output and not isinstance(result.exception, (RecursionError, MemoryError))
    where = rf"{re.escape(rel)}:{line if line else '[0-9]+'}:" if line is not None else rf"{re.escape(rel)}\b"
    assert re.search(where, output), output[-3000:]
    assert expected in output, output[-3000:]
    assert len(output) < 5000, len(output)
    assert read_tree(root / "rendered") == before


@pytest.mark.parametrize("case", sorted(HOSTILE))
@pytest.mark.parametrize("rel", sorted(INPUT_KINDS))
def test_every_input_kind_refuses_hostile_yaml(hostile_fleet: Path, rel: str, case: str) -> None:
    before = read_tree(hostile_fleet / "rendered")
    file = rel.split(" ")[0]
    path = hostile_fleet / file
    text, line = _with_value(path.read_text(encoding="utf-8"), case)
    path.write_text(text, encoding="utf-8")
    _assert_refused(_invoke(hostile_fleet, rel), file, line, _expected(case), hostile_fleet, before)


@pytest.mark.parametrize("rel", sorted(INPUT_KINDS))
def test_every_input_kind_refuses_non_utf8(hostile_fleet: Path, rel: str) -> None:
    before = read_tree(hostile_fleet / "rendered")
    file = rel.split(" ")[0]
    path = hostile_fleet / file
    path.write_bytes(path.read_bytes() + b"# caf\xe9\n")
    lines = path.read_bytes().count(b"\n")
    _assert_refused(_invoke(hostile_fleet, rel), file, lines, "not UTF-8", hostile_fleet, before)


def test_new_non_utf8_rule_and_test_files(hostile_fleet: Path) -> None:
    """A new file (not only an edited one) in rules/recording/ and tests/rules/."""
    before = read_tree(hostile_fleet / "rendered")
    (hostile_fleet / "base/rules/recording/99-new.yaml").write_bytes(b"groups: []\n# \xff\n")
    _assert_refused(_run(["render", "--root", str(hostile_fleet)]), "base/rules/recording/99-new.yaml", 2,
                    "not UTF-8", hostile_fleet, before)
    (hostile_fleet / "base/rules/recording/99-new.yaml").unlink()
    (hostile_fleet / "tests/rules/new.test.yaml").write_bytes(b"rule_files: []\n# \xff\n")
    _assert_refused(_run(["lint", "--only", "rules-tests", "--root", str(hostile_fleet)]),
                    "tests/rules/new.test.yaml", 2, "not UTF-8", hostile_fleet, before)


# --- symlinks out of the repository ---------------------------------------------------------------

SYMLINKED = ["clusters/nyc3-prod-01/cluster.yaml", "regions/nyc3/region.yaml", "base/components/vmagent/values.yaml",
             "base/rules/recording/10-resources.yaml", "base/components/alloy/config.alloy.j2"]


@pytest.mark.parametrize("rel", SYMLINKED)
def test_symlinked_file_outside_the_repo_is_refused_unread(fleet_copy: Path, tmp_path: Path, rel: str) -> None:
    assert _run(["render", "--root", str(fleet_copy)]).exit_code == 0
    before = read_tree(fleet_copy / "rendered")
    outside = tmp_path / "outside" / Path(rel).name
    outside.parent.mkdir()
    outside.write_text((fleet_copy / rel).read_text() + "\n# SECRET-CONTENT-ROOT:x:0:0\n")
    (fleet_copy / rel).unlink()
    (fleet_copy / rel).symlink_to(outside)
    result = _run(["render", "--root", str(fleet_copy)])
    _assert_refused(result, rel, None, "resolves outside the repository", fleet_copy, before)
    assert "SECRET-CONTENT" not in result.output and str(outside) not in result.output


def test_symlinked_cluster_folder_outside_the_repo_is_refused(fleet_copy: Path, tmp_path: Path) -> None:
    assert _run(["render", "--root", str(fleet_copy)]).exit_code == 0
    before = read_tree(fleet_copy / "rendered")
    outside = tmp_path / "elsewhere" / "nyc3-prod-07"
    outside.mkdir(parents=True)
    (outside / "cluster.yaml").write_text((fleet_copy / "clusters/nyc3-prod-01/cluster.yaml").read_text()
                                          .replace("nyc3-prod-01", "nyc3-prod-07"))
    (fleet_copy / "clusters/nyc3-prod-07").symlink_to(outside, target_is_directory=True)
    result = _run(["render", "--root", str(fleet_copy)])
    _assert_refused(result, "clusters/nyc3-prod-07", None, "resolves outside the repository", fleet_copy, before)


def test_symlink_inside_the_repo_is_fine(fleet_copy: Path) -> None:
    target = fleet_copy / "clusters/nyc3-prod-01/cluster.yaml"
    kept = fleet_copy / "base/kept-cluster.yaml"
    kept.write_text(target.read_text())
    target.unlink()
    target.symlink_to(kept)
    assert _run(["render", "--root", str(fleet_copy)]).exit_code == 0


# --- `$` accepts a final newline: every schema pattern, every code regex --------------------------

def _input_documents() -> list[tuple[str, str, object]]:
    """(kind, file, data) of every example input validated by an input schema."""
    docs = [("fleet", "base/fleet.yaml"), ("platform-jobs", "base/components/alloy/platform-jobs.yaml"),
            ("policy", "policies/gdpr-labeldrop.yaml"), ("producers", "base/rules/producers.yaml")]
    docs += [("component", p.relative_to(REPO).as_posix()) for p in sorted(REPO.glob("base/components/*/component.yaml"))]
    docs += [("overlay", p.relative_to(REPO).as_posix()) for p in sorted(REPO.glob("overlays/*/overlay.yaml"))]
    docs += [("region", p.relative_to(REPO).as_posix()) for p in sorted(REPO.glob("regions/*/region.yaml"))]
    docs += [("cluster", p.relative_to(REPO).as_posix()) for p in sorted(REPO.glob("clusters/*/cluster.yaml"))]
    return [(kind, rel, yamlio.load_indexed_file(REPO / rel, rel).data) for kind, rel in docs]


def _strings(data: object, path: tuple = ()):
    if isinstance(data, str):
        yield path
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from _strings(value, path + (key,))
    elif isinstance(data, list):
        for i, item in enumerate(data):
            yield from _strings(item, path + (i,))


def _replaced(data: object, path: tuple, value: str) -> object:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(data, dict):
        return {k: (_replaced(v, rest, value) if k == head else v) for k, v in data.items()}
    return [(_replaced(v, rest, value) if i == head else v) for i, v in enumerate(data)]


def _patterned_strings() -> list[tuple[str, str, tuple, str]]:
    """Every string of the example inputs that a schema `pattern` governs (found by probing: an
    invalid value there gives a pattern error at that path)."""
    found = []
    for kind, rel, data in _input_documents():
        validator = schema.validator(kind)
        for path in _strings(data):
            probe = _replaced(data, path, "\x00 ?")
            if any(e.validator == "pattern" and tuple(e.absolute_path) == path for e in validator.iter_errors(probe)):
                value = data
                for part in path:
                    value = value[part]
                found.append((kind, rel, path, value))
    return found


PATTERNED = _patterned_strings()


def test_patterned_strings_cover_the_issue_fields() -> None:
    fields = {(kind, path) for kind, _rel, path, _v in PATTERNED}
    for wanted in [("cluster", ("id",)), ("cluster", ("shuttle", "tokenSecretName")), ("region", ("vpcCidr",)),
                   ("fleet", ("platformMonitoring", "remoteWriteUrl")), ("overlay", ("environment",))]:
        assert wanted in fields


@pytest.mark.parametrize("kind,rel,path,value", PATTERNED, ids=[f"{r}:{'.'.join(map(str, p))}" for _k, r, p, _v in PATTERNED])
def test_no_schema_pattern_accepts_a_trailing_newline(kind: str, rel: str, path: tuple, value: str) -> None:
    data = next(d for k, r, d in _input_documents() if r == rel)
    assert not list(schema.validator(kind).iter_errors(data))
    errors = list(schema.validator(kind).iter_errors(_replaced(data, path, value + "\n")))
    assert errors, f"{rel} {path}: {value!r} + newline accepted"


def test_every_schema_pattern_is_end_anchored_safely() -> None:
    """Structural guard for patterns no example input exercises (e.g. Flux output schemas)."""
    for path in sorted((REPO / "tools/fleet/schemas").glob("*.json")):
        for pattern in re.findall(r'"pattern": "((?:[^"\\]|\\.)*)"', path.read_text()):
            assert not re.search(r"(?<!\\)\$(?!\(\?!\\\\n\))", pattern), f"{path.name}: {pattern}"


def test_cluster_folder_with_a_trailing_newline_is_refused(fleet_copy: Path) -> None:
    src = fleet_copy / "clusters/nyc3-prod-01"
    src.rename(fleet_copy / "clusters/nyc3-prod-01\n")
    result = _run(["render", "--root", str(fleet_copy)])
    assert result.exit_code == 2 and "is not a DNS-1123 label" in result.output


@pytest.mark.parametrize("name", ["a:b:c\n", "ab\n"])
def test_rule_names_with_a_trailing_newline_are_refused(name: str) -> None:
    from fleet.rules import static
    assert not static.RECORD_NAME.match(name) and not static.ALERT_NAME.match(name.upper())
    assert not static._DURATION.match("5m\n")


# --- addresses and URLs validated as such ---------------------------------------------------------

BAD_ADDRESSES = {
    "cidr-octet": ("regions/nyc3/region.yaml", "vpcCidr", "10.999.0.0/20", "ipv4-cidr"),
    "cidr-host-bits": ("regions/nyc3/region.yaml", "vpcCidr", "10.116.0.1/20", "host bits"),
    "vm-ip-octet": ("regions/nyc3/region.yaml", "victoriaMetrics", "http://10.300.0.5:8428", "not a valid IP"),
    "vm-port": ("regions/nyc3/region.yaml", "victoriaMetrics", "http://vm.nyc3.internal:99999", "not a valid URL"),
    "clickhouse-ip": ("regions/nyc3/region.yaml", "clickhouse", "http://1.2.3.999:8123", "not a valid IP"),
    "remote-write-host": ("base/fleet.yaml", "remoteWriteUrl", "https://-bad-.grafana.net/api/prom/push",
                          "not a valid host name"),
    "chart-repo-host": ("base/components/vmagent/component.yaml", "repository", "https://exa_mple.com/charts",
                        "not a valid host name"),
}


def _set_line_value(path: Path, key: str, value: str) -> int:
    """Replace the value of the first line whose key (or nested `url:` under it) is `key`."""
    lines = path.read_text().split("\n")
    for i, line in enumerate(lines):
        if line.strip().startswith(f"{key}:"):
            if line.rstrip().endswith(":"):       # the URL is on the next line (`victoriaMetrics:\n  url:`)
                i += 1
                line = lines[i]
            head = line.split(":", 1)[0]
            lines[i] = f"{head}: {value}"
            path.write_text("\n".join(lines))
            return i + 1
    raise AssertionError(f"{key} not in {path}")


@pytest.mark.parametrize("case", sorted(BAD_ADDRESSES))
def test_addresses_are_validated_as_addresses(fleet_copy: Path, case: str) -> None:
    assert _run(["render", "--root", str(fleet_copy)]).exit_code == 0
    before = read_tree(fleet_copy / "rendered")
    rel, key, value, words = BAD_ADDRESSES[case]
    line = _set_line_value(fleet_copy / rel, key, value)
    result = _run(["render", "--root", str(fleet_copy)])
    expected = "CIDR" if words == "ipv4-cidr" else words
    _assert_refused(result, rel, line, expected, fleet_copy, before)


# --- credentials in URLs ---------------------------------------------------------------------------

#: How a credential rides in a URL: (userinfo, query) around a field's host and path.
CREDENTIAL_URLS = {
    "userinfo-password": ("user:glc_s3cr3t@", ""),
    "userinfo-token": ("glc_s3cr3t@", ""),
    "query-token": ("", "?access_token=glc_s3cr3t"),
}
#: URL field → (file, key, host and path of a valid value).
URL_FIELDS = {
    "remote-write": ("base/fleet.yaml", "remoteWriteUrl", "prometheus-prod-24-prod-eu-west-2.grafana.net/api/prom/push"),
    "git": ("base/fleet.yaml", "url", "github.com/starform/fleet.git"),
    "region-vm": ("regions/fra1/region.yaml", "victoriaMetrics", "victoria-metrics.fra1.starform.internal:8428/"),
    "region-clickhouse": ("regions/fra1/region.yaml", "clickhouse", "clickhouse.fra1.starform.internal:8123/"),
    "chart-repository": ("base/components/alloy/component.yaml", "repository", "grafana.github.io/helm-charts"),
}


@pytest.mark.parametrize("url_case", sorted(CREDENTIAL_URLS))
@pytest.mark.parametrize("field", sorted(URL_FIELDS))
def test_credentials_in_any_input_url_are_refused(fleet_copy: Path, field: str, url_case: str) -> None:
    assert _run(["render", "--root", str(fleet_copy)]).exit_code == 0
    before = read_tree(fleet_copy / "rendered")
    rel, key, host_path = URL_FIELDS[field]
    userinfo, query = CREDENTIAL_URLS[url_case]
    line = _set_line_value(fleet_copy / rel, key, f"https://{userinfo}{host_path}{query}")
    result = _run(["render", "--root", str(fleet_copy)])
    _assert_refused(result, rel, line, "", fleet_copy, before)
    if userinfo:
        assert "userinfo" in result.output and "glc_s3cr3t" not in result.output, result.output


@pytest.mark.parametrize("url_case", sorted(CREDENTIAL_URLS))
@pytest.mark.parametrize("layer", ["base/components/vmagent/values.yaml", "overlays/production/overlay.yaml",
                                   "clusters/nyc3-prod-02/cluster.yaml"])
def test_secrets_check_reads_urls_in_values(fleet_copy: Path, layer: str, url_case: str) -> None:
    """A URL with a credential in free-form Helm values: the secrets check reports it at its line."""
    from conftest import patch_components
    userinfo, query = CREDENTIAL_URLS[url_case]
    url = f"https://{userinfo}vm.example.com/api/v1/write{query}"
    values = {"podAnnotations": {"example.com/mirror": url}}
    if layer.endswith("values.yaml"):
        path = fleet_copy / layer
        path.write_text(path.read_text() + f"podAnnotations:\n  example.com/mirror: {url}\n")
        lines = path.read_text().splitlines()
    else:
        lines = patch_components(fleet_copy, layer, {"vmagent": {"values": values}})
    line = next(i for i, text in enumerate(lines, 1) if url in text)
    assert _run(["render", "--root", str(fleet_copy)]).exit_code == 0
    result = _run(["lint", "--only", "secrets", "--root", str(fleet_copy)])
    assert result.exit_code == 1, result.output
    assert f"{layer}:{line}" in result.output and "a URL with" in result.output, result.output


def test_secrets_check_passes_urls_without_credentials(fleet_copy: Path) -> None:
    path = fleet_copy / "base/components/vmagent/values.yaml"
    path.write_text(path.read_text() + "podAnnotations:\n  example.com/mirror: https://vm.example.com/write?extra_label=a\n")
    assert _run(["render", "--root", str(fleet_copy)]).exit_code == 0
    result = _run(["lint", "--only", "secrets", "--root", str(fleet_copy)])
    assert result.exit_code == 0, result.output


# --- bounded messages --------------------------------------------------------------------------------

HUGE = "a" * 1_000_000
HUGE_FIELDS = {
    "cluster-id": ("clusters/nyc3-prod-01/cluster.yaml", "id: nyc3-prod-01", f"id: {HUGE}"),
    "cluster-region": ("clusters/nyc3-prod-01/cluster.yaml", "region: nyc3", f"region: {HUGE}"),
    "token-secret": ("clusters/nyc3-prod-01/cluster.yaml", "tokenSecretName: shuttle-registration",
                     f"tokenSecretName: {HUGE}-"),
    # YAML's implicit keys stop at 1,024 characters: a huge key is written explicitly (`? key`).
    "unknown-key": ("clusters/nyc3-prod-01/cluster.yaml", "region: nyc3", f"region: nyc3\n? {HUGE}\n: 1"),
    "patch-component": ("clusters/nyc3-prod-02/cluster.yaml", "  vmagent:", f"  ? {HUGE}\n  :"),
    "wrong-type": ("regions/nyc3/region.yaml", "port: 24224", f"port: [{HUGE}]"),
    "vpc-cidr": ("regions/nyc3/region.yaml", "vpcCidr: 10.", f"vpcCidr: 1{HUGE}10."),
    "relabel-regex": ("base/relabel/customer.yaml", "regex: id|image_id|uid|container_id", f"regex: '({HUGE}'"),
}


@pytest.mark.parametrize("case", sorted(HUGE_FIELDS))
def test_error_messages_are_bounded(fleet_copy: Path, case: str) -> None:
    rel, old, new = HUGE_FIELDS[case]
    path = fleet_copy / rel
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    result = _run(["render", "--root", str(fleet_copy)])
    assert result.exit_code == 2, result.output[:2000]
    assert rel in result.output
    assert len(result.output) < 10_000, len(result.output)


# --- non-YAML parsers: Alloy config and PromQL ------------------------------------------------------

DEEP_ALLOY = {
    "blocks": "a {" * 100_000 + "}" * 100_000,
    "parentheses": "x = " + "(" * 100_000 + "1" + ")" * 100_000,
    "arrays": "x = " + "[" * 100_000 + "]" * 100_000,
    "objects": "x = " + "{a=" * 100_000 + "1" + "}" * 100_000,
    "unary": "x = " + "!" * 100_000 + "true",
    "power": "x = " + "^".join(["2"] * 100_000),
    "binary-chain": "x = " + "+".join(["1"] * 100_000),
    "index-chain": "x = a" + "[0]" * 100_000,
}


@pytest.mark.parametrize("case", sorted(DEEP_ALLOY))
def test_alloy_parser_refuses_deep_nesting(case: str) -> None:
    with pytest.raises(InputError) as info:
        alloy_syntax.parse(DEEP_ALLOY[case], "config.alloy")
    assert info.value.render().startswith("config.alloy:1:") and "nesting deeper than" in info.value.message


def test_alloy_parser_accepts_ordinary_nesting() -> None:
    alloy_syntax.parse("x = [(1 + 2) ^ 3, {a = !true}, f.g(1)[0]]\nb { c { d = 1 + 2 + 3 } }", "c.alloy")


def test_policy_check_refuses_deep_alloy_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "deep.alloy"
    path.write_text("// deep\n" + DEEP_ALLOY["parentheses"] + "\n")
    result = _run(["policy", "check", "--policy", str(REPO / "policies/gdpr-labeldrop.yaml"), str(path)])
    assert result.exit_code == 2 and ":2:" in result.output and "nesting deeper than" in result.output


DEEP_PROMQL = {
    "parentheses": "(" * 100_000 + "up" + ")" * 100_000,
    "binary-chain": " + ".join(["up"] * 20_000),
    "unary-chain": "-" * 20_000 + "up",
    "function-nesting": "abs(" * 20_000 + "up" + ")" * 20_000,
}


@pytest.mark.parametrize("case", sorted(DEEP_PROMQL))
def test_promql_parser_refuses_deep_expressions(case: str) -> None:
    """promql-parser overflows its stack (a segfault) on these; the shape check refuses them first."""
    with pytest.raises(ValueError):
        promql.parse(DEEP_PROMQL[case])


def test_promql_shape_check_skips_strings_and_comments() -> None:
    promql.parse('sum by (a) (rate(x{a="(((((((((("}[5m])) / 2 # ((((((((((')


@pytest.mark.parametrize("case", sorted(DEEP_PROMQL))
def test_lint_reports_deep_promql_at_the_rule(fleet_copy: Path, case: str) -> None:
    path = fleet_copy / "base/rules/recording/90-deep.yaml"
    path.write_text("groups:\n  - name: deep\n    rules:\n      - record: project:deep:sum\n"
                    f"        expr: '{DEEP_PROMQL[case]}'\n")
    assert _run(["render", "--root", str(fleet_copy)]).exit_code == 0
    result = _run(["lint", "--only", "rules-static", "--root", str(fleet_copy)])
    assert result.exit_code == 1, result.output[-2000:]
    assert "base/rules/recording/90-deep.yaml:5" in result.output, result.output[-2000:]
    assert len(result.output) < 10_000


# --- keys nothing reads; Shuttle takes no patch --------------------------------------------------------

UNREAD_KEYS = {
    "shuttle-image-in-cluster": ("clusters/nyc3-prod-01/cluster.yaml",
                                 {"shuttle": {"image": "registry.example.com/evil:1"}}, "unknown field 'image'"),
    "shuttle-values-in-cluster": ("clusters/nyc3-prod-01/cluster.yaml", {"shuttle": {"values": {"replicas": 3}}},
                                  "no layer may change"),
    "shuttle-chart-in-overlay": ("overlays/production/overlay.yaml", {"shuttle": {"chart": {"version": "9.9.9"}}},
                                 "no layer may change"),
    "shuttle-image-in-region": ("regions/nyc3/region.yaml", {"shuttle": {"image": "evil:1"}}, "unknown field 'image'"),
    "helm-image-in-cluster": ("clusters/nyc3-prod-01/cluster.yaml", {"vmagent": {"image": "evil:1"}},
                              "unknown field 'image'"),
    "helm-image-in-overlay": ("overlays/staging/overlay.yaml", {"alloy": {"image": "evil:1"}}, "unknown field 'image'"),
}


@pytest.mark.parametrize("case", sorted(UNREAD_KEYS))
def test_patches_nothing_reads_are_input_errors(fleet_copy: Path, case: str) -> None:
    from conftest import patch_components
    assert _run(["render", "--root", str(fleet_copy)]).exit_code == 0
    before = read_tree(fleet_copy / "rendered")
    rel, patch, expected = UNREAD_KEYS[case]
    lines = patch_components(fleet_copy, rel, patch)
    start = lines.index("components:")
    line = next(i for i, text in enumerate(lines[start:], start + 1) if text.strip() == f"{next(iter(patch))}:")
    result = _run(["render", "--root", str(fleet_copy)])
    _assert_refused(result, rel, None, expected, fleet_copy, before)
    assert re.search(rf"{re.escape(rel)}:({line}|{line + 1}):", result.output), result.output


BASE_COMPONENT_KEYS = {
    "helm-with-image": ("base/components/vmagent/component.yaml", "image: victoriametrics/vmagent:v1\n",
                        "field 'image' is not read here"),
    "manifests-with-values": ("base/components/shuttle/component.yaml", "values: {replicas: 2}\n",
                              "field 'values' is not read here"),
    "manifests-with-chart": ("base/components/shuttle/component.yaml",
                             "chart: {name: x, version: 1.0.0, repository: https://example.com}\n",
                             "field 'chart' is not read here"),
}


@pytest.mark.parametrize("case", sorted(BASE_COMPONENT_KEYS))
def test_component_keys_its_kind_does_not_read_are_input_errors(fleet_copy: Path, case: str) -> None:
    rel, added, expected = BASE_COMPONENT_KEYS[case]
    path = fleet_copy / rel
    text = path.read_text()
    path.write_text(text + added)
    result = _run(["render", "--root", str(fleet_copy)])
    assert result.exit_code == 2, result.output
    assert f"{rel}:{text.count(chr(10)) + 1}:" in result.output and expected in result.output, result.output


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_lint_refuses_hostile_yaml_in_rendered_files(fleet_copy: Path, case: str) -> None:
    """rendered/ is read by lint as it is on disk (a hand edit, a bad merge): same guards."""
    assert _run(["render", "--root", str(fleet_copy)]).exit_code == 0
    rel = "rendered/clusters/nyc3-prod-01/stages.yaml"
    path = fleet_copy / rel
    text, line = _with_value(path.read_text(encoding="utf-8"), case)
    path.write_text(text.replace("\nzz_hostile:", "\n---\nzz_hostile:"), encoding="utf-8")
    result = _run(["lint", "--only", "k8s-schema", "--root", str(fleet_copy)])
    assert result.exit_code == 2, result.output[-2000:]
    assert "Traceback" not in result.output and len(result.output) < 5000
    assert re.search(rf"{re.escape(rel)}:[0-9]+:", result.output) and _expected(case) in result.output, result.output


def test_secrets_check_reads_urls_in_rendered_config_alloy(fleet_copy: Path) -> None:
    """A credential URL written in the Alloy template itself: reported at the template's line."""
    template = fleet_copy / "base/components/alloy/config.alloy.j2"
    text = template.read_text()
    template.write_text(text + "// mirror: https://ops:glc_s3cr3t@mirror.example.com/push\n")
    assert _run(["render", "--root", str(fleet_copy)]).exit_code == 0
    result = _run(["lint", "--only", "secrets", "--root", str(fleet_copy)])
    assert result.exit_code == 1, result.output
    line = text.count("\n") + 1
    assert f"base/components/alloy/config.alloy.j2:{line}" in result.output and "userinfo" in result.output


@pytest.mark.parametrize("pattern,value,valid", [
    ("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "flux-system\n", False),
    ("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "flux-system", True),
    ("^(a|b)$|^c$", "c\n", False),
    ("[$]x", "$x\n", True),
    ("^\\$$", "$", True),
])
def test_crd_patterns_keep_gos_end_of_text(pattern: str, value: str, valid: bool) -> None:
    """CRD patterns are Go RE2, where `$` is the end of the text; lint checks them with Python."""
    from fleet.k8s import crd
    converted = crd.to_json_schema({"type": "string", "pattern": pattern})["pattern"]
    assert (re.search(converted, value) is not None) is valid
    assert not re.search(crd.GO_DURATION, "5m\n") and re.search(crd.GO_DURATION, "5m")


@pytest.mark.parametrize("case", ["alias-bomb", "python-tag-on-mapping"])
def test_yamllint_config_is_guarded_too(fleet_copy: Path, case: str) -> None:
    assert _run(["render", "--root", str(fleet_copy)]).exit_code == 0
    path = fleet_copy / ".yamllint.yaml"
    text, line = _with_value(path.read_text(encoding="utf-8"), case)
    path.write_text(text, encoding="utf-8")
    result = _run(["lint", "--only", "yamllint", "--root", str(fleet_copy)])
    assert result.exit_code == 2 and f".yamllint.yaml:{line}:" in result.output, result.output[-2000:]
