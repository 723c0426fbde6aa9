"""The rendered regional tier against the real tools: ClickHouse (chdb), cloud-init, python-hcl2,
the GDPR proof; and the regional-tier lint check on a passing and failing fixture of each kind."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from _binaries import require_binary
from click.testing import CliRunner

from fleet import model
from fleet.checks import CheckContext
from fleet.checks import regional_tier
from fleet.cli import cli
from fleet.tier import checks as tc
from fleet.tier.clickhouse import BILLING_AUDIT, LOGS, TENANT_SETTING, schema_statements, tenant_filter
from fleet.tier.render import tf_escape, tf_unescape
from fleet.tier.vector import PROGRAMS


def _rendered(fleet_copy: Path) -> Path:
    result = CliRunner().invoke(cli, ["render", "--root", str(fleet_copy)])
    assert result.exit_code == 0, result.output
    return fleet_copy / "rendered" / "regions"


def _findings(root: Path) -> list:
    fleet = model.load(root)
    before = os.environ.get("FLEET_NO_CACHE")
    os.environ["FLEET_NO_CACHE"] = "1"  # every result computed, none remembered
    try:
        return list(regional_tier.check(CheckContext(root, fleet, root / "rendered")))
    finally:
        if before is None:
            del os.environ["FLEET_NO_CACHE"]
        else:
            os.environ["FLEET_NO_CACHE"] = before


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def _require(binary: str) -> None:
    if shutil.which(binary) is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{binary} missing: tools/setup-system.sh installs it")
        pytest.skip(f"{binary} missing (make setup installs it)")


# --- ClickHouse in chdb ------------------------------------------------------------------------------

def _vector_row(program: str, table) -> dict:
    """A row exactly as the sink sends it: the keys of the remap's row literal, typed as VRL makes
    them (strings; timestamps formatted by format_timestamp)."""
    values = {"project_id": "p-1", "service_id": "s-1", "workspace_id": "w-1", "namespace": "p-1-web",
              "pod": "web-0", "container": "web", "stream": "stdout", "message": "hello", "event": "meter",
              "host": "10.114.0.7:51234", "record": '{"audit":"billing"}'}
    row = {}
    for key in tc.row_keys(program):
        if key == "timestamp":
            digits = 9 if table is LOGS else 3
            row[key] = "2026-12-06 10:00:00." + "1" * digits
        else:
            row[key] = values[key]
    return row


def test_ddl_runs_in_clickhouse_and_the_tenant_filter_reads_one_tenant(tmp_path: Path, fleet) -> None:
    from chdb import session
    from fleet.tier.model import tier_of
    doc = fleet.raw.regions["fra1"]
    tier = tier_of(doc.data, doc.name)
    s = session.Session(str(tmp_path / "ch"))
    try:
        for stmt in schema_statements(tier):
            s.query(stmt)
        for transform, (program, table) in PROGRAMS.items():
            rows = []
            for tenant in ("p-1", "p-2"):
                row = _vector_row(program, table)
                row["project_id"] = tenant
                rows.append(json.dumps(row))
            # What Vector's clickhouse sink sends: JSONEachRow, unknown fields refused.
            s.query(f"INSERT INTO starform.{table.name} SETTINGS input_format_skip_unknown_fields = 0 "
                    f"FORMAT JSONEachRow " + "\n".join(rows))
            # The row policy's condition with the tenant the broker sets (chdb has no custom
            # settings prefix, so getSetting() is replaced by the value it would return).
            where = tenant_filter().replace(f"getSetting('{TENANT_SETTING}')", "'p-2'")
            got = json.loads(str(s.query(f"SELECT project_id, count() AS n FROM starform.{table.name} "
                                         f"WHERE {where} GROUP BY project_id", "JSON")))["data"]
            assert got == [{"project_id": "p-2", "n": 1}], transform
        create = str(s.query("SHOW CREATE TABLE starform.logs"))
        assert f"toIntervalDay({tier.logs_ttl_days})" in create
        assert "ORDER BY (project_id," in create and "LowCardinality(String)" in create
        audit = str(s.query("SHOW CREATE TABLE starform.billing_audit"))
        assert f"toIntervalDay({tier.billing_audit_ttl_days})" in audit and "ORDER BY (project_id," in audit
        with pytest.raises(Exception, match="Unknown field"):
            s.query('INSERT INTO starform.logs SETTINGS input_format_skip_unknown_fields = 0 FORMAT JSONEachRow '
                    '{"project_id": "p-1", "cluster": "c"}')
    finally:
        s.close()


def test_access_ddl_parses_and_a_broken_statement_is_found() -> None:
    schema = "CREATE DATABASE IF NOT EXISTS starform;\n"
    good = "CREATE ROW POLICY IF NOT EXISTS t ON starform.logs USING project_id = 'x' AS restrictive TO u;\n"
    assert tc.clickhouse_problems(schema, good, "s.sql", "a.sql") == []
    bad = good + "GRANT INSERTT ON starform.logs TO u;\n"
    problems = tc.clickhouse_problems(schema, bad, "s.sql", "a.sql")
    assert [(p.file, p.line) for p in problems] == [("a.sql", 2)]


# --- cloud-init --------------------------------------------------------------------------------------

def test_rendered_cloud_init_is_valid_and_a_broken_one_is_found(fleet_copy: Path) -> None:
    _require("cloud-init")
    regions = _rendered(fleet_copy)
    for path in sorted(regions.glob("*/cloud-init/*.yml")):
        assert tc.cloud_init_problems(path, path.name) == [], path
    broken = regions / "fra1/cloud-init/vector.yml"
    _edit(broken, "package_update: true", "package_update: maybe")
    problems = tc.cloud_init_problems(broken, "vector.yml")
    assert problems and "cloud-init schema" in problems[0].message


def test_cloud_init_installs_mounts_and_starts_each_service(fleet_copy: Path) -> None:
    import yaml
    regions = _rendered(fleet_copy)
    for name, mount, service in (("clickhouse.yml", "/var/lib/clickhouse", "clickhouse-server.service"),
                                 ("vmstorage.yml", "/var/lib/victoria-metrics", "vmalert.service"),
                                 ("vector.yml", "/var/lib/vector", "vector.service")):
        doc = yaml.safe_load((regions / "fra1/cloud-init" / name).read_text())
        assert [m[1] for m in doc["mounts"]] == [mount]
        assert "scsi-0DO_Volume_" in doc["mounts"][0][0]
        commands = json.dumps(doc["runcmd"])
        assert service in commands
        assert "apt-get install" in commands or "tar -xz" in commands
        assert "starform-volume-snapshot.timer" in commands


def test_vmalert_gets_the_regions_rule_files_and_a_local_datasource(fleet_copy: Path) -> None:
    import yaml
    regions = _rendered(fleet_copy)
    doc = yaml.safe_load((regions / "fra1/cloud-init/vmstorage.yml").read_text())
    files = {f["path"]: f["content"] for f in doc["write_files"]}
    for rule in sorted((regions / "fra1/vmalert/rules").glob("*.yaml")):
        assert tf_unescape(files[f"/etc/vmalert/rules/{rule.name}"]) == rule.read_text()
    unit = files["/etc/systemd/system/vmalert.service"]
    assert "-datasource.url=http://127.0.0.1:8428" in unit and "-remoteWrite.url=http://127.0.0.1:8428" in unit
    assert "-rule=/etc/vmalert/rules/*.yaml" in unit
    vector = yaml.safe_load((regions / "fra1/cloud-init/vector.yml").read_text())
    embedded = {f["path"]: f["content"] for f in vector["write_files"]}["/etc/starform/vector.yaml"]
    assert tf_unescape(embedded) == (regions / "fra1/vector/vector.yaml").read_text()
    assert "$${CLICKHOUSE_PASSWORD}" in embedded  # Vector's own env interpolation, not Terraform's


def test_tf_escape_round_trips_what_templatefile_would_read() -> None:
    text = 'password: "${CLICKHOUSE_PASSWORD}" and %{VMAUTH} and $x'
    assert tf_escape(text) == 'password: "$${CLICKHOUSE_PASSWORD}" and %%{VMAUTH} and $x'
    assert tf_unescape(tf_escape(text)) == text
    assert tc.template_names(tf_escape(text) + " ${volume_id} ${indent(6, log_ca_pem)}") == {"volume_id", "log_ca_pem"}


# --- Terraform (python-hcl2) -------------------------------------------------------------------------

def test_terraform_parses_and_says_what_the_region_file_says(fleet_copy: Path, fleet) -> None:
    regions = _rendered(fleet_copy)
    main = tc.parse_hcl((regions / "nyc3/terraform/main.tf").read_text())
    resources = {}
    for block in main["resource"]:
        for rtype, named in block.items():
            for name, body in named.items():
                resources[(tc._strip(rtype), tc._strip(name))] = body
    droplets = {n: b for (t, n), b in resources.items() if t == "digitalocean_droplet"}
    assert {n: tc._strip(b["size"]) for n, b in droplets.items()} == {
        "clickhouse": "so-4vcpu-32gb", "victoriametrics": "c-4", "vector_agg": "c-2"}
    assert resources[("digitalocean_volume", "clickhouse")]["size"] == 1000
    assert tc._strip(resources[("digitalocean_vpc", "telemetry")]["ip_range"]) == "10.110.0.0/20"
    firewall = resources[("digitalocean_firewall", "victoriametrics")]
    sources = [[tc._strip(a) for a in r.get("source_addresses", [])] for r in firewall["inbound_rule"]]
    assert sources == [["10.110.0.0/20"], ["10.100.0.0/20"]]
    variables = tc.parse_hcl((regions / "nyc3/terraform/variables.tf").read_text())["variable"]
    secrets = {tc._strip(k): v for block in variables for k, v in block.items() if v.get("sensitive")}
    assert "clickhouse_vector_password" in secrets and all("default" not in v for v in secrets.values())
    assert tc.terraform_problems(regions / "nyc3/terraform", "t") == []


def test_templatefile_that_misses_a_variable_is_found(fleet_copy: Path) -> None:
    regions = _rendered(fleet_copy)
    _edit(regions / "fra1/terraform/main.tf", "    vmauth_control_plane_password = var.vmauth_control_plane_password\n", "")
    problems = tc.terraform_problems(regions / "fra1/terraform", "t")
    assert [p.message for p in problems] == [
        "../cloud-init/vmstorage.yml uses ${vmauth_control_plane_password}, which templatefile() does not pass"]
    assert problems[0].line > 1


def test_unparsable_hcl_is_found(fleet_copy: Path) -> None:
    regions = _rendered(fleet_copy)
    _edit(regions / "fra1/terraform/variables.tf", 'variable "droplet_image" {', 'variable "droplet_image" {{')
    problems = tc.terraform_problems(regions / "fra1/terraform", "t")
    assert problems and problems[0].file == "t/variables.tf" and "HCL does not parse" in problems[0].message


# --- Terraform (the pinned OpenTofu) -----------------------------------------------------------------

@pytest.fixture(scope="module")
def tofu() -> str:
    return require_binary("tofu")


def test_opentofu_parses_the_rendered_terraform_and_would_not_reformat_it(fleet_copy: Path, tofu: str) -> None:
    regions = _rendered(fleet_copy)
    for region in ("fra1", "nyc3"):
        assert tc.tofu_fmt_problems(tofu, regions / region / "terraform", "t") == []


def test_a_layout_tofu_fmt_would_change_is_a_warning_at_its_line(fleet_copy: Path, tofu: str) -> None:
    regions = _rendered(fleet_copy)
    main = regions / "fra1/terraform/main.tf"
    _edit(main, "    port_range         = ", "    port_range = ")
    line = main.read_text().splitlines().index(next(ln for ln in main.read_text().splitlines()
                                                     if ln.startswith("    port_range = "))) + 1
    (problem,) = tc.tofu_fmt_problems(tofu, regions / "fra1/terraform", "t")
    assert (problem.file, problem.line, problem.severity) == ("t/main.tf", line, "warning")
    assert "port_range         =" in problem.message


def test_hcl_opentofu_refuses_is_an_error_at_the_line_it_names(fleet_copy: Path, tofu: str) -> None:
    regions = _rendered(fleet_copy)
    variables = regions / "fra1/terraform/variables.tf"
    _edit(variables, "  sensitive   = true\n", "  sensitive   = true = false\n")
    line = variables.read_text().splitlines().index("  sensitive   = true = false") + 1
    (problem,) = tc.tofu_fmt_problems(tofu, regions / "fra1/terraform", "t")
    assert (problem.file, problem.line, problem.severity) == ("t/variables.tf", line, "error")
    assert problem.message.startswith("OpenTofu does not parse it: Error:")


def test_regional_tier_reports_the_tofu_layout_at_the_rendered_line(fleet_copy: Path, tofu: str) -> None:
    regions = _rendered(fleet_copy)
    _edit(regions / "nyc3/terraform/main.tf", "    port_range         = ", "    port_range = ")
    found = [f for f in _findings(fleet_copy) if "tofu fmt" in f.message]
    assert [(f.source.file, f.severity.value) for f in found] == [("rendered/regions/nyc3/terraform/main.tf", "warning")]


# --- Vector ------------------------------------------------------------------------------------------

def test_every_sink_field_is_a_column() -> None:
    for program, table in PROGRAMS.values():
        keys = tc.row_keys(program)
        assert keys and all(table.column(k) for k in keys), table.name
    assert {c.name for c in BILLING_AUDIT.columns} == set(tc.row_keys(PROGRAMS["billing_audit_row"][0]))


def test_lint_check_passes_on_the_example_fleet(fleet_copy: Path) -> None:
    _require("cloud-init")
    _rendered(fleet_copy)
    assert _findings(fleet_copy) == []


def test_a_field_the_table_lacks_is_found_at_its_line(fleet_copy: Path) -> None:
    regions = _rendered(fleet_copy)
    vector = regions / "fra1/vector/vector.yaml"
    _edit(vector, '"pod": string(k.pod_name)', '"pod_name": string(k.pod_name)')
    problems = tc.vector_problems(tc.load_yaml(vector.read_text(), "v.yaml"), vector.read_text(), "v.yaml")
    assert [p.message for p in problems] == ["remap logs_row writes field 'pod_name', which table logs has no column for"]
    assert vector.read_text().splitlines()[problems[0].line - 1].strip().startswith('"pod_name"')


def test_mtls_off_and_a_cluster_forwarding_elsewhere_are_found(fleet_copy: Path) -> None:
    regions = _rendered(fleet_copy)
    vector = regions / "nyc3/vector/vector.yaml"
    _edit(vector, "verify_certificate: true", "verify_certificate: false")
    text = vector.read_text()
    problems = tc.mtls_problems(tc.load_yaml(text, "v.yaml"), text, "v.yaml")
    assert len(problems) == 1 and "verify_certificate" in problems[0].message
    assert text.splitlines()[problems[0].line - 1].strip() == "verify_certificate: false"
    outputs = "[OUTPUT]\n    Name forward\n    Host vector.fra1.starform.internal\n    Port 24224\n    tls On\n"
    messages = tc.cluster_forward_problems(outputs, "vector.nyc3.starform.internal", 24224, 24224)
    assert any("not the aggregator" in m for m in messages)
    assert any("tls.crt_file" in m for m in messages)
    assert any("Require_ack_response" in m for m in messages)


def test_a_regional_agent_gate_without_labeldrop_leaks(fleet_copy: Path) -> None:
    rel = "base/relabel/regional.yaml"
    text = (fleet_copy / rel).read_text()
    cut = text.index("# Never a customer identifier")
    (fleet_copy / rel).write_text(text[:cut])
    _rendered(fleet_copy)
    leaks = [f for f in _findings(fleet_copy) if "can reach Grafana Cloud" in f.message or "derived" in f.message]
    assert leaks and {f.source.file for f in leaks} == {rel}


def test_agent_jobs_are_the_platform_alerts_jobs(repo_root: Path) -> None:
    import re
    from fleet.tier.render import AGENT_JOBS
    alerts = "".join(p.read_text() for p in (repo_root / "base/rules/alerts").glob("*.yaml"))
    for job in ("clickhouse", "victoriametrics", "vector"):
        assert f'job="{job}"' in alerts
        assert any(j == job for jobs in AGENT_JOBS.values() for j, _a, _p in jobs)
    for path in (repo_root / "rendered/regions").glob("*/alloy/*.alloy"):
        assert re.search(r'job_name\s+= "(clickhouse|victoriametrics|vector)"', path.read_text())


VMAUTH_PASSWORDS = {"VMAUTH_VMAGENT_PASSWORD": "w" * 24, "VMAUTH_CONTROL_PLANE_PASSWORD": "r" * 24}


@pytest.mark.binary
def test_vmauth_loads_the_rendered_users(tmp_path: Path, fleet_copy: Path) -> None:
    """vmauth at the pinned release the droplet runs (tools/upstream.lock) loads the rendered
    users and routes (no `unauthorized_user`: the VPC is shared), and refuses a broken route."""
    import subprocess
    vmauth = require_binary("vmauth")
    regions = _rendered(fleet_copy)
    config = regions / "fra1/victoria-metrics/vmauth.yaml"
    assert "unauthorized_user" not in config.read_text()
    proc = subprocess.run(["timeout", "3", vmauth, f"-auth.config={config}", "-httpListenAddr=127.0.0.1:0"],
                          capture_output=True, text=True, env={**os.environ, **VMAUTH_PASSWORDS})
    assert "started vmauth" in proc.stderr + proc.stdout and "fatal" not in proc.stderr + proc.stdout, proc.stderr
    path = tmp_path / "vmauth.yaml"
    path.write_text("users:\n- username: u\n  url_map:\n  - src_paths: ['(']\n    url_prefix: http://x\n")
    bad = subprocess.run(["timeout", "3", vmauth, f"-auth.config={path}", "-httpListenAddr=127.0.0.1:0"],
                         capture_output=True, text=True)
    assert "fatal" in bad.stderr + bad.stdout


def _status(method: str, url: str, user: tuple[str, str] | None = None, body: bytes | None = None) -> int:
    """The HTTP status of one request (with basic auth when `user` is given)."""
    import base64
    import urllib.error
    import urllib.request
    request = urllib.request.Request(url, data=body, method=method)
    if user:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(user).encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def _vmagent_remote_write(rendered_root: Path, cluster: str) -> tuple[dict, dict]:
    """(remoteWrite[0], values) of a cluster's rendered vmagent HelmRelease."""
    import yaml
    path = rendered_root / "rendered/clusters" / cluster / "stages/03-telemetry/vmagent.yaml"
    (release,) = [d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == "HelmRelease"]
    values = release["spec"]["values"]
    (remote,) = values["remoteWrite"]
    return remote, values


@pytest.mark.binary
def test_vmauth_admits_only_the_vmagent_users_writes(rendered_root: Path, tmp_path: Path, monkeypatch) -> None:
    """The rendered vmauth.yaml in front of a real VictoriaMetrics, and a cluster's vmagent with its
    rendered remote-write flags and a password file where the Secret is mounted (all the pinned
    v1.150.0): writes without credentials or with a wrong password are refused (401), the vmagent
    user's samples are stored, the vmagent user cannot read, the control plane cannot write."""
    import time
    import urllib.parse
    from differential import servers
    vm_bin, vmauth_bin, vmagent_bin = (require_binary(n) for n in ("victoria-metrics", "vmauth", "vmagent"))
    remote, values = _vmagent_remote_write(rendered_root, "fra1-prod-01")
    password_file = remote["basicAuth.passwordFile"]
    (mount,) = [m for m in values["extraVolumeMounts"] if password_file.startswith(m["mountPath"].rstrip("/") + "/")]
    (volume,) = [v for v in values["extraVolumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == "vmagent-remote-write" and password_file.endswith("/password")
    text = (rendered_root / "rendered/regions/fra1/victoria-metrics/vmauth.yaml").read_text()
    assert "unauthorized_user" not in text and text.count("http://127.0.0.1:8428") == 2
    for name, value in VMAUTH_PASSWORDS.items():
        monkeypatch.setenv(name, value)  # as vmauth.env gives them to the unit
    vmagent_user = (remote["basicAuth.username"], VMAUTH_PASSWORDS["VMAUTH_VMAGENT_PASSWORD"])
    control_plane = ("control-plane", VMAUTH_PASSWORDS["VMAUTH_CONTROL_PLANE_PASSWORD"])
    (tmp_path / "vm").mkdir()
    with servers.victoria_metrics(vm_bin, tmp_path / "vm") as store:
        config = tmp_path / "vmauth.yaml"
        config.write_text(text.replace("http://127.0.0.1:8428", store.url))
        port = servers.free_port()
        args = [vmauth_bin, f"-auth.config={config}", f"-httpListenAddr=127.0.0.1:{port}", "-loggerLevel=ERROR"]
        with servers.running("vmauth", args, port, tmp_path) as proxy:
            write = proxy.url + urllib.parse.urlsplit(remote["url"]).path
            query = f"{proxy.url}/api/v1/query?query=1"
            assert _status("POST", write, body=b"") == 401
            assert _status("POST", write, (vmagent_user[0], "w" * 23 + "x"), b"") == 401
            assert _status("POST", write, control_plane, b"") // 100 == 4
            assert _status("POST", f"{proxy.url}/api/v1/import", vmagent_user, b"x") // 100 == 4
            assert _status("GET", query, vmagent_user) // 100 == 4
            assert _status("GET", query) == 401
            assert _status("GET", query, control_plane) == 200
            secret = tmp_path / "password"
            secret.write_text(vmagent_user[1])
            flags = [f"-remoteWrite.{k}={secret if k == 'basicAuth.passwordFile' else v}"
                     for k, v in sorted(remote.items()) if k not in ("url", "urlRelabelConfig")]
            agent_port = servers.free_port()
            agent_args = [vmagent_bin, f"-httpListenAddr=127.0.0.1:{agent_port}", f"-remoteWrite.url={write}",
                          f"-remoteWrite.tmpDataPath={tmp_path / 'queue'}", "-remoteWrite.flushInterval=100ms",
                          "-loggerLevel=ERROR", *flags]
            assert any(f.startswith("-remoteWrite.basicAuth.username=") for f in flags)
            with servers.running("vmagent", agent_args, agent_port, tmp_path) as agent:
                now = int(time.time() * 1000)
                sample = b'{"metric":{"__name__":"vmauth_probe","job":"e2e"},"values":[7],"timestamps":[%d]}' % now
                servers.http("POST", agent.url + "/api/v1/import", sample)
                deadline, stored = time.monotonic() + 30, []
                while not stored and time.monotonic() < deadline:
                    time.sleep(0.3)
                    servers.http("GET", store.url + "/internal/force_flush")
                    stored = servers.export(store, '{__name__="vmauth_probe"}')
    assert [(s["metric"], s["values"]) for s in stored] == [({"__name__": "vmauth_probe", "job": "e2e"}, [7])]


# --- VRL with the real compiler and runtime (tools/vrl-check, `make vrl-check`) -------------------------

def _vrl_binary(repo_root: Path) -> Path:
    binary = tc.vrl_binary(repo_root)
    if binary is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("tools/vrl-check is not built: .ci/run runs `make vrl-check`")
        pytest.skip("tools/vrl-check not built (make vrl-check)")
    return binary


#: Records as Vector's fluent source emits them from Fluent Bit's tail + kubernetes filter.
CUSTOMER_RECORD = {
    "timestamp": "2026-12-06T10:00:00.123456789Z", "tag": "kube.var.log.containers.web-0", "host": "10.114.0.7:51234",
    "stream": "stdout", "log": "GET / 200",
    "kubernetes": {"namespace_name": "p-1-web", "pod_name": "web-0", "container_name": "web",
                   "labels": {"starform.io/project-id": "p-1", "starform.io/service-id": "s-1",
                              "starform.io/workspace-id": "w-1"}},
}
PLATFORM_RECORD = {**CUSTOMER_RECORD, "kubernetes": {"namespace_name": "kube-system", "pod_name": "coredns-0",
                                                     "container_name": "coredns", "labels": {"k8s-app": "kube-dns"}}}
AUDIT_RECORD = {
    "timestamp": "2026-12-06T10:00:01.5Z", "tag": "kube.var.log.containers.shuttle", "host": "10.114.0.8:40000",
    "stream": "stdout", "audit": "billing", "event": "meter", "project_id": "p-2", "workspace_id": "w-2", "cpu_ms": 1200,
    "kubernetes": {"namespace_name": "starform-system", "pod_name": "shuttle-0", "container_name": "shuttle",
                   "labels": {"app.kubernetes.io/name": "shuttle"}},
}


def test_every_vrl_program_compiles_and_a_broken_one_does_not(repo_root: Path) -> None:
    binary = _vrl_binary(repo_root)
    config = tc.load_yaml((repo_root / "rendered/regions/fra1/vector/vector.yaml").read_text(), "vector.yaml")
    programs = tc.vrl_programs(config)
    assert {name for name, _ in programs} == {"logs_row", "billing_audit_row", "audit_route.billing"}
    for name, program in programs:
        assert tc.vrl_compile(binary, program) is None, name
    error = tc.vrl_compile(binary, PROGRAMS["logs_row"][0].replace("string(k.pod_name) ??", "string(k.pod_name) ?!"))
    assert error and "error" in error.lower()


def test_vrl_rows_insert_into_clickhouse_and_read_back_per_tenant(repo_root: Path, tmp_path: Path, fleet) -> None:
    """Fluent Bit records → the real VRL runtime → JSONEachRow into the real table DDL (chdb)."""
    from chdb import session
    from fleet.tier.model import tier_of
    binary = _vrl_binary(repo_root)
    logs_vrl, billing_vrl = PROGRAMS["logs_row"][0], PROGRAMS["billing_audit_row"][0]
    row = tc.vrl_run(binary, logs_vrl, CUSTOMER_RECORD)
    assert row["project_id"] == "p-1" and row["message"] == "GET / 200" and row["pod"] == "web-0"
    assert row["timestamp"] == "2026-12-06 10:00:00.123456789"
    assert tc.vrl_run(binary, logs_vrl, PLATFORM_RECORD) is None  # no tenant: dropped
    audit = tc.vrl_run(binary, billing_vrl, AUDIT_RECORD)
    assert audit["project_id"] == "p-2" and json.loads(audit["record"])["cpu_ms"] == 1200
    doc = fleet.raw.regions["fra1"]
    s = session.Session(str(tmp_path / "ch"))
    try:
        for stmt in schema_statements(tier_of(doc.data, doc.name)):
            s.query(stmt)
        for table, produced in (("logs", row), ("billing_audit", audit)):
            s.query(f"INSERT INTO starform.{table} SETTINGS input_format_skip_unknown_fields = 0 "
                    f"FORMAT JSONEachRow {json.dumps(produced)}")
        for table, tenant in (("logs", "p-1"), ("billing_audit", "p-2")):
            where = tenant_filter().replace(f"getSetting('{TENANT_SETTING}')", f"'{tenant}'")
            got = json.loads(str(s.query(f"SELECT count() AS n FROM starform.{table} WHERE {where}", "JSON")))
            assert got["data"] == [{"n": 1}], table
            other = tenant_filter().replace(f"getSetting('{TENANT_SETTING}')", "'p-9'")
            none = json.loads(str(s.query(f"SELECT count() AS n FROM starform.{table} WHERE {other}", "JSON")))
            assert none["data"] == [{"n": 0}], table
    finally:
        s.close()


def test_lint_reports_vrl_that_does_not_compile_at_its_component(repo_root: Path, fleet_copy: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEET_VRL_CHECK", str(_vrl_binary(repo_root)))
    regions = _rendered(fleet_copy)
    assert [f for f in _findings(fleet_copy) if "VRL" in f.message] == []
    vector = regions / "fra1/vector/vector.yaml"
    _edit(vector, "string(k.pod_name) ??", "strng(k.pod_name) ??")
    found = [f for f in _findings(fleet_copy) if "VRL" in f.message]
    assert len(found) == 1 and "logs_row does not compile" in found[0].message and "strng" in found[0].message
    assert vector.read_text().splitlines()[found[0].source.line - 1] == "  logs_row:"


def test_an_unescaped_template_directive_in_cloud_init_is_found(fleet_copy: Path) -> None:
    regions = _rendered(fleet_copy)
    _edit(regions / "fra1/cloud-init/vmstorage.yml", "%%{VMAUTH_CONTROL_PLANE_PASSWORD}", "%{VMAUTH_CONTROL_PLANE_PASSWORD}")
    problems = tc.terraform_problems(regions / "fra1/terraform", "t")
    assert len(problems) == 1 and "templatefile() directive" in problems[0].message
    assert "vmstorage.yml line" in problems[0].message


def test_a_region_without_tier_is_a_warning_at_its_file(fleet_copy: Path) -> None:
    path = fleet_copy / "regions/nyc3/region.yaml"
    text = path.read_text()
    path.write_text(text[:text.index("# The regional telemetry tier")])
    _rendered(fleet_copy)
    found = [f for f in _findings(fleet_copy) if "no tier" in f.message]
    assert [(f.source.file, f.source.line, f.severity.value) for f in found] == [("regions/nyc3/region.yaml", 1, "warning")]
    assert not (fleet_copy / "rendered/regions/nyc3/terraform").exists()
