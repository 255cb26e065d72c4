"""The Kubernetes manifests of openreward/deploy/k8s, checked offline (#17).

Schema: every object validates (strict: no unknown fields) against the Kubernetes OpenAPI schemas bundled in
`kubernetes-validate`, for the oldest and the newest version it carries that we support; no network. Agreement: the
ingress hashes on the header our server keys sessions by, with the nginx settings `openreward.scale` generates (which
tests/test_scale.py exercises on a real nginx); ports, probes and grace periods agree with the server.
"""
from __future__ import annotations

import re
from importlib import resources

import httpx
import pytest
import yaml

from openreward.guards import DEFAULT_MAX_BODY
from openreward.scale import SESSION_HEADER, nginx_config
from openreward.server import Server

K8S = resources.files("openreward") / "deploy" / "k8s"
VERSIONS = ["1.28.0", "1.37.0"]

def load(name: str) -> dict:
    docs = [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]
    assert len(docs) == 1, name
    return docs[0]

MANIFESTS = sorted(p.name for p in K8S.iterdir() if p.name.endswith(".yaml") and p.name != "kustomization.yaml")

def test_the_manifests_ship_as_package_data_and_kustomize_lists_them_all():
    assert MANIFESTS == ["environment-deployment.yaml", "environment-hpa.yaml", "environment-ingress.yaml",
                         "environment-service.yaml", "sandbox-deployment.yaml", "sandbox-service.yaml"]
    assert sorted(load("kustomization.yaml")["resources"]) == MANIFESTS

@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", MANIFESTS)
def test_every_manifest_is_schema_valid(name, version):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")  # the dev extra has it; the wheel check may not
    doc = load(name)
    kubernetes_validate.validate(doc, version, strict=True)  # raises ValidationError with the path of the fault

def test_the_validator_would_catch_a_fault():
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    doc = load("environment-deployment.yaml")
    doc["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"] = [8080]
    with pytest.raises(kubernetes_validate.ValidationError): kubernetes_validate.validate(doc, VERSIONS[-1], strict=True)
    doc = load("environment-service.yaml")
    doc["spec"]["portz"] = doc["spec"].pop("ports")
    with pytest.raises(kubernetes_validate.ValidationError): kubernetes_validate.validate(doc, VERSIONS[-1], strict=True)

def container(name: str) -> dict:
    (c,) = load(name)["spec"]["template"]["spec"]["containers"]
    return c

def test_the_ingress_hashes_on_the_session_header_as_our_nginx_does():
    ing = load("environment-ingress.yaml")
    notes = ing["metadata"]["annotations"]
    var = "$http_" + SESSION_HEADER.lower().replace("-", "_")
    assert notes["nginx.ingress.kubernetes.io/upstream-hash-by"] == var == "$http_x_session_id"
    # the same key and stream settings as the configuration the multi-worker tests run on a real nginx
    conf = nginx_config(["127.0.0.1:1", "127.0.0.1:2"], "/tmp/x")
    assert f"hash {var} consistent;" in conf
    assert notes["nginx.ingress.kubernetes.io/proxy-buffering"] == "off" and "proxy_buffering off;" in conf
    read = re.search(r"proxy_read_timeout (\d+)s;", conf)[1]
    assert notes["nginx.ingress.kubernetes.io/proxy-read-timeout"] == read
    assert notes["nginx.ingress.kubernetes.io/proxy-next-upstream"] == "off" and "proxy_next_upstream off;" in conf
    size = notes["nginx.ingress.kubernetes.io/proxy-body-size"]
    assert int(size.rstrip("m")) * 2**20 == DEFAULT_MAX_BODY and f"client_max_body_size {DEFAULT_MAX_BODY};" in conf
    # hashing picks pods only if ingress-nginx routes to the pods, not to the Service's virtual IP
    assert "nginx.ingress.kubernetes.io/service-upstream" not in notes
    svc = load("environment-service.yaml")
    (path,) = ing["spec"]["rules"][0]["http"]["paths"]
    assert path["backend"]["service"] == {"name": svc["metadata"]["name"], "port": {"name": svc["spec"]["ports"][0]["name"]}}
    assert ing["spec"]["ingressClassName"] == "nginx"

@pytest.mark.parametrize("deployment,service,port", [("environment-deployment.yaml", "environment-service.yaml", 8080),
                                                      ("sandbox-deployment.yaml", "sandbox-service.yaml", 8081)])
def test_ports_probes_and_grace_agree(deployment, service, port):
    d, svc, c = load(deployment), load(service), container(deployment)
    cmd = c["command"]
    assert cmd[:2] == ["orwd", "sandbox-service" if "sandbox" in deployment else "serve"]
    assert cmd[cmd.index("--port") + 1] == str(port) and cmd[cmd.index("--host") + 1] == "0.0.0.0"
    (p,) = c["ports"]
    assert (p["name"], p["containerPort"]) == ("http", port)
    assert svc["spec"]["ports"][0]["targetPort"] == "http"
    assert svc["spec"]["selector"] == d["spec"]["selector"]["matchLabels"] == {
        k: v for k, v in d["spec"]["template"]["metadata"]["labels"].items() if k in svc["spec"]["selector"]}
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {"path": "/health", "port": "http"}
    pre = c["lifecycle"]["preStop"]["exec"]["command"]
    assert pre[0] == "sleep"
    # the pod gets its preStop, then SIGTERM: teardown of every session within the server's shutdown deadline
    grace = d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    shutdown = Server.__init__.__kwdefaults__["shutdown_timeout"]
    assert grace >= int(pre[1]) + shutdown + 5, (grace, pre, shutdown)

def test_the_probed_path_answers_without_a_key_and_the_rest_needs_one():
    "Probes send no X-API-Key: /health must answer them on a server that has keys."
    from openreward.examples import ENVIRONMENTS
    app = Server(ENVIRONMENTS, api_key="k8s-test-key").app
    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://pod") as c:
            return (await c.get("/health")).status_code, (await c.get("/list_environments")).status_code
    import asyncio
    assert asyncio.run(go()) == (200, 401)

def test_the_autoscaler_scales_the_environment_on_cpu():
    hpa, d = load("environment-hpa.yaml"), load("environment-deployment.yaml")
    ref = hpa["spec"]["scaleTargetRef"]
    assert (ref["kind"], ref["name"], ref["apiVersion"]) == ("Deployment", d["metadata"]["name"], d["apiVersion"])
    (m,) = hpa["spec"]["metrics"]
    assert m["resource"]["name"] == "cpu" and 0 < m["resource"]["target"]["averageUtilization"] <= 100
    assert "cpu" in container("environment-deployment.yaml")["resources"]["requests"]  # utilisation needs a request
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 300  # a removed pod loses sessions

def test_the_sandbox_service_runs_one_replica_with_its_key_from_a_secret():
    d, c = load("sandbox-deployment.yaml"), container("sandbox-deployment.yaml")
    assert d["spec"]["replicas"] == 1 and d["spec"]["strategy"]["type"] == "Recreate"
    assert "--api-key" not in c["command"]  # argv is visible to every process in the pod: the key comes from the environment
    from openreward.sandbox_service import SERVICE_KEY_ENV
    (env,) = [e for e in c["env"] if e["name"] == SERVICE_KEY_ENV]
    assert env["valueFrom"]["secretKeyRef"]["key"] == "api-key"
    assert c["securityContext"]["seccompProfile"]["type"] == "Unconfined"  # bubblewrap's user namespaces

def test_orwd_deploy_k8s_writes_valid_manifests_with_the_images(tmp_path, capsys):
    from openreward.cli import main
    assert main(["deploy", "k8s", "--image", "ghcr.io/alice/counter:1.0", "--sandbox-image", "ghcr.io/alice/box:2",
                 "--dir", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(MANIFESTS + ["kustomization.yaml"])
    env = yaml.safe_load((tmp_path/"environment-deployment.yaml").read_text())
    box = yaml.safe_load((tmp_path/"sandbox-deployment.yaml").read_text())
    assert env["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/alice/counter:1.0"
    assert box["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/alice/box:2"
    kv = pytest.importorskip("kubernetes_validate")
    for doc in (env, box): kv.validate(doc, VERSIONS[-1], strict=True)
    assert main(["deploy", "k8s"]) == 0  # no --dir: every object on stdout, as one multi-document YAML
    docs = [d for d in yaml.safe_load_all(capsys.readouterr().out) if d]
    assert sorted(d["kind"] for d in docs) == ["Deployment", "Deployment", "HorizontalPodAutoscaler", "Ingress", "Service", "Service"]
