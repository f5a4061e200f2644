"""Deployment files: compose spec, hadolint, nginx -t, Kubernetes schemas, and what they promise.

`make validate-deploy` runs this file alone. A missing validator fails the test with the way
to install it: these checks are never skipped.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gateway.settings import Settings
from tests.live_server import ROOT
from tests.nginx import check_nginx_conf, nginx_binary, write_nginx_conf

K8S = ROOT / "deploy" / "k8s"
# The oldest Kubernetes release the manifests must be valid for.
KUBERNETES_VERSION = "1.30.0"


def tool(name: str) -> str:
    """A validator from the virtualenv (requirements-dev.txt), or fail saying how to get it."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        pytest.fail(
            f"{name} is not installed; `make test` installs it, or run "
            f"`.venv/bin/pip install -r requirements-dev.txt`",
            pytrace=False,
        )
    return found


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=ROOT)


def load_compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))


def k8s_documents(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text(encoding="utf-8")) if d]


def k8s_resource(kind: str, name: str) -> dict:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    for file_name in kustomization["resources"]:
        for doc in k8s_documents(file_name):
            if doc["kind"] == kind and doc["metadata"]["name"] == name:
                return doc
    raise AssertionError(f"no {kind} {name} in deploy/k8s")


# --- compose ---------------------------------------------------------------------------------


def test_compose_file_matches_the_compose_spec():
    result = run(
        tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", "compose.yaml"
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_publishes_only_nginx():
    services = load_compose()["services"]
    assert set(services) == {"postgres", "gateway", "nginx"}
    assert "ports" not in services["postgres"]
    assert "ports" not in services["gateway"]
    assert [p.rsplit(":", 1)[1] for p in services["nginx"]["ports"]] == ["8000"]
    for service in services.values():
        assert "container_name" not in service  # the gateway scales; names would clash


def test_compose_keeps_the_backend_network_internal():
    compose = load_compose()
    networks = compose["networks"]
    services = compose["services"]
    assert networks["backend"] == {"internal": True}
    assert set(services["nginx"]["networks"]) == {"frontend", "backend"}
    assert "backend" in services["gateway"]["networks"]
    assert "frontend" not in services["gateway"]["networks"]
    # PostgreSQL on the internal network alone: no route out (tests/stack_drill.py tries one).
    assert services["postgres"]["networks"] == ["backend"]


def test_compose_gateway_runs_in_production_with_file_secrets():
    gateway = load_compose()["services"]["gateway"]
    env = gateway["environment"]
    assert env["ENVIRONMENT"] == "production"
    assert env["TRUSTED_PROXIES"] == "1"
    assert env["DATABASE_URL_FILE"] == "/run/secrets/database_url"
    assert env["JWT_SECRET_KEY_FILE"] == "/run/secrets/jwt_secret_key"
    # Blank plain values override any left in .env, which would clash with the _FILE ones.
    assert env["DATABASE_URL"] == env["JWT_SECRET_KEY"] == ""
    assert set(gateway["secrets"]) >= {"database_url", "jwt_secret_key"}
    assert gateway["env_file"] == [{"path": ".env", "required": False}]
    assert gateway["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "/health" in " ".join(gateway["healthcheck"]["test"])
    assert gateway["deploy"]["resources"]["limits"]["memory"]
    assert gateway["build"]["dockerfile"] == "Containerfile"


def test_compose_images_are_pinned():
    services = load_compose()["services"]
    assert services["postgres"]["healthcheck"]["test"][1].startswith("pg_isready")
    for name in ("postgres", "nginx"):
        image = services[name]["image"]
        assert re.search(r":\d+\.\d+(\.\d+)?-[a-z]+$", image), f"{name}: pin a version: {image}"


def test_compose_secret_files_are_the_ones_make_up_creates(tmp_path):
    spec = importlib.util.spec_from_file_location("stack", ROOT / "deploy" / "stack.py")
    stack = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stack)
    directory = tmp_path / "secrets"
    created = stack.create_secrets(directory)
    declared = {Path(s["file"]).name for s in load_compose()["secrets"].values()}
    assert set(created) == declared
    password = (directory / "postgres_password").read_text().strip()
    url = (directory / "database_url").read_text().strip()
    assert url == f"postgresql://gateway:{password}@postgres:5432/gateway"
    assert len((directory / "jwt_secret_key").read_text().strip()) >= 32
    assert directory.stat().st_mode & 0o777 == 0o700
    # A second run changes nothing: the database volume keeps the first password.
    assert stack.create_secrets(directory) == []
    assert (directory / "postgres_password").read_text().strip() == password


# --- Containerfile ---------------------------------------------------------------------------


def test_containerfile_passes_hadolint():
    result = run(tool("hadolint"), "Containerfile")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_containerfile_builds_in_two_stages_and_runs_unprivileged():
    text = (ROOT / "Containerfile").read_text(encoding="utf-8")
    assert re.search(r"python:3\.11\.\d+-slim-bookworm", text), "pin the base image"
    assert len(re.findall(r"^FROM ", text, re.M)) == 2
    runtime = text.split("AS runtime", 1)[1]
    assert "build-essential" not in runtime and "gcc" not in runtime
    assert "install -y --no-install-recommends git" in runtime
    assert re.search(r"^USER 1000(:1000)?$", runtime, re.M)
    assert re.search(r"^EXPOSE 8000$", runtime, re.M)
    assert "ENVIRONMENT=production" in runtime
    for directory in ("gateway/", "migrations/", "config/"):
        assert f"COPY {directory} {directory}" in runtime
    healthcheck = re.search(r"^HEALTHCHECK .*?CMD (\[.*\])$", runtime, re.M | re.S).group(1)
    assert "urllib.request" in healthcheck and "curl" not in healthcheck
    assert "/health" in healthcheck
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", runtime, re.M).group(1))
    assert cmd == ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]


def test_ignore_files_are_identical_and_keep_secrets_out_of_the_image():
    podman = (ROOT / ".containerignore").read_text(encoding="utf-8")
    assert (ROOT / ".dockerignore").read_text(encoding="utf-8") == podman
    entries = set(podman.split())
    assert {".env", "secrets/", "*.pem", ".venv/", ".git/", "instance/"} <= entries
    assert "__pycache__/" in entries and ".pytest_cache/" in entries


# --- nginx -----------------------------------------------------------------------------------


def test_nginx_config_passes_nginx_t(tmp_path):
    nginx_binary()  # fails in one line saying how to get nginx, never skips
    conf = write_nginx_conf(tmp_path, port=18000, upstreams=["127.0.0.1:18001", "127.0.0.1:18002"])
    result = check_nginx_conf(conf, tmp_path)
    assert result.returncode == 0, result.stderr


def test_nginx_config_holds_the_security_defaults():
    text = (ROOT / "deploy" / "nginx.conf").read_text(encoding="utf-8")
    assert "server_tokens off;" in text
    assert Settings.from_env({}).http.max_request_bytes == 1024 * 1024
    assert "client_max_body_size 1m;" in text  # = MAX_REQUEST_BYTES
    assert "location = /metrics {" in text
    assert int(re.search(r"proxy_read_timeout (\d+)s;", text).group(1)) >= 300
    assert "proxy_set_header X-Request-ID $gateway_request_id;" in text
    assert "gzip off;" in text
    assert "proxy_http_version 1.1;" in text
    assert "resolver ${NGINX_LOCAL_RESOLVERS}" in text  # compose DNS, asked again at run time
    assert "proxy_pass http://$gateway_upstream;" in text


def test_compose_mounts_the_nginx_config_as_the_image_template():
    nginx = load_compose()["services"]["nginx"]
    assert "./deploy/nginx.conf:/etc/nginx/templates/nginx.conf.template:ro" in nginx["volumes"]
    assert nginx["environment"]["NGINX_ENVSUBST_OUTPUT_DIR"] == "/etc/nginx"
    assert nginx["environment"]["NGINX_ENTRYPOINT_LOCAL_RESOLVERS"] == "1"


# --- Kubernetes ------------------------------------------------------------------------------


def test_kubernetes_manifests_match_the_schemas():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    files = [str(K8S / name) for name in kustomization["resources"]]
    files.append(str(K8S / "secret.example.yaml"))
    result = run(
        tool("kubernetes-validate"), "--strict", "--quiet", "-k", KUBERNETES_VERSION, *files
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_kubernetes_example_secret_is_never_applied():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    assert "secret.example.yaml" not in kustomization["resources"]
    secret = k8s_documents("secret.example.yaml")[0]
    assert all("CHANGE_ME" in value for value in secret["stringData"].values())


def test_kubernetes_deployment_is_hardened_and_probed():
    deployment = k8s_resource("Deployment", "mcp-gateway")
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 1000
    (container,) = pod["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    for path in ("/tmp", "/app/instance"):
        assert "emptyDir" in volumes[mounts[path]["name"]]
    mcp = mounts["/app/config/mcp_servers.json"]
    assert mcp["subPath"] == "mcp_servers.json"
    assert volumes[mcp["name"]]["configMap"]["name"] == "mcp-servers"
    assert volumes[mounts["/run/secrets/gateway"]["name"]]["secret"]["secretName"] == (
        "mcp-gateway-secrets"
    )
    env = {e["name"]: e for e in container["env"]}
    assert env["DATABASE_URL_FILE"]["value"] == "/run/secrets/gateway/database_url"
    assert env["JWT_SECRET_KEY_FILE"]["value"] == "/run/secrets/gateway/jwt_secret_key"
    (source,) = container["envFrom"]
    config = k8s_resource("ConfigMap", source["configMapRef"]["name"])["data"]
    assert config["ENVIRONMENT"] == "production"
    assert config["MCP_CONFIG"] == "/app/config/mcp_servers.json"


def test_kubernetes_mcp_config_is_an_mcp_servers_file():
    data = k8s_resource("ConfigMap", "mcp-servers")["data"]
    servers = json.loads(data["mcp_servers.json"])["mcpServers"]
    assert servers and all("command" in server for server in servers.values())


def test_kubernetes_postgres_keeps_its_data_on_a_volume():
    statefulset = k8s_resource("StatefulSet", "mcp-gateway-postgres")
    assert statefulset["spec"]["replicas"] == 1
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"]


# --- documentation ---------------------------------------------------------------------------


def test_env_example_documents_every_setting_in_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = {
        name
        for line in table.splitlines()
        if line.startswith("| `")
        for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1])
    }
    assert len(documented) > 20
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    missing = sorted(n for n in documented if not re.search(rf"^#? ?{n}=", example, re.M))
    assert not missing, f".env.example lacks {missing}"


@pytest.mark.parametrize(("value", "expected"), [("1234", ["1234", "123"]), ("0", ["0", "0"])])
def test_workers_are_replaced_after_the_configured_number_of_requests(value, expected, tmp_path):
    """gunicorn reads GUNICORN_MAX_REQUESTS through the settings model (jitter: a tenth)."""
    code = (
        "import runpy; c = runpy.run_path('gunicorn.conf.py'); "
        "print(c['max_requests'], c['max_requests_jitter'])"
    )
    # A metrics folder given, or the file makes a temporary one and leaves it behind.
    env = {**os.environ, "GUNICORN_MAX_REQUESTS": value, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-2:] == expected
