"""k8s/: each kustomization renders, validates offline against the Kubernetes API schemas, keeps
the properties deployments rely on, and passes checkov (as do the Dockerfiles in docker/).

The tools come from their own venv, .venv-tools (requirements/tools.txt; `make install` builds
it), because checkov's dependencies clash with the project's TFX lock.
"""

import json
import subprocess
from pathlib import Path

import pytest

from lint_tools import tool
import yaml

REPO = Path(__file__).resolve().parents[1]
K8S = REPO / "k8s"
KUBERNETES_VERSION = "1.30.0"   # oldest minor we support; kubernetes-validate ships its schemas

OVERLAYS = ["base", "overlays/local", "overlays/gke"]
SERVING = {"app.kubernetes.io/name": "tf-serving"}
UI = {"app.kubernetes.io/name": "towergraph-ui"}
MODEL_PATH = "/v1/models/towergraph"


def run(args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, cwd=REPO, timeout=300, **kwargs)


def kustomize(overlay: str) -> str:
    result = run([tool("kubectl"), "kustomize", str(K8S / overlay)])
    assert result.returncode == 0, f"kubectl kustomize k8s/{overlay} failed:\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def rendered():
    """overlay -> its rendered YAML text."""
    return {overlay: kustomize(overlay) for overlay in OVERLAYS}


@pytest.fixture(scope="module")
def docs(rendered):
    """overlay -> list of rendered resources."""
    return {overlay: [d for d in yaml.safe_load_all(text) if d] for overlay, text in rendered.items()}


def find(resources, kind, name=None):
    return [r for r in resources
            if r["kind"] == kind and (name is None or r["metadata"]["name"] == name)]


def one(resources, kind, name):
    found = find(resources, kind, name)
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def selects(selector: dict, labels: dict) -> bool:
    """Whether a label selector (matchLabels/matchExpressions) matches these labels."""
    if not selector:
        return True
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def pod_labels(deployment):
    return deployment["spec"]["template"]["metadata"]["labels"]


def container(deployment, name=None):
    containers = deployment["spec"]["template"]["spec"]["containers"]
    if name is None:
        assert len(containers) == 1
        return containers[0]
    return next(c for c in containers if c["name"] == name)


def config_value(resources, deployment, env_name):
    """The value an env var of the deployment's first container takes from its ConfigMap."""
    env = {e["name"]: e for e in container(deployment)["env"]}[env_name]
    ref = env["valueFrom"]["configMapKeyRef"]
    return one(resources, "ConfigMap", ref["name"])["data"][ref["key"]]


# --- rendering and schema validation -----------------------------------------------------------

@pytest.mark.parametrize("overlay", OVERLAYS)
def test_renders_and_validates_against_the_api_schema(overlay, rendered, tmp_path):
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(rendered[overlay])
    result = run([tool("kubernetes-validate"), "--kubernetes-version", KUBERNETES_VERSION,
                  "--strict", "--quiet", str(manifest)])
    assert result.returncode == 0, f"k8s/{overlay} does not validate:\n{result.stdout}{result.stderr}"


def test_the_validator_rejects_unknown_fields(tmp_path):
    """Guards the test above: strict validation must fail on a misspelt field."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
        "spec": {"type": "ClusterIP", "prots": [{"port": 80}]}}))
    result = run([tool("kubernetes-validate"), "--kubernetes-version", KUBERNETES_VERSION,
                  "--strict", "--quiet", str(bad)])
    assert result.returncode != 0
    assert "prots" in result.stdout + result.stderr


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_resource_is_labelled_and_namespaced(overlay, docs):
    for resource in docs[overlay]:
        meta = resource["metadata"]
        assert meta.get("labels", {}).get("app.kubernetes.io/part-of") == "towergraph", meta["name"]
        if resource["kind"] not in ("Namespace", "PersistentVolume"):
            assert meta.get("namespace") == "towergraph", f"{resource['kind']}/{meta['name']}"


# --- TF Serving ----------------------------------------------------------------------------------

@pytest.mark.parametrize("overlay", OVERLAYS)
def test_tf_serving_is_never_exposed_outside_the_cluster(overlay, docs):
    resources = docs[overlay]
    service = one(resources, "Service", "tf-serving")
    assert service["spec"]["type"] == "ClusterIP"
    assert {p["port"] for p in service["spec"]["ports"]} == {8500, 8501}
    for other in find(resources, "Service"):
        if selects({"matchLabels": other["spec"].get("selector", {})}, SERVING):
            assert other["spec"].get("type", "ClusterIP") == "ClusterIP", other["metadata"]["name"]
    for ingress in find(resources, "Ingress"):
        assert "tf-serving" not in json.dumps(ingress), "an Ingress routes to TF Serving"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_tf_serving_serves_the_towergraph_model(overlay, docs):
    resources = docs[overlay]
    deployment = one(resources, "Deployment", "tf-serving")
    serving = container(deployment)
    image = serving["image"]
    assert image == "tensorflow/serving:2.16.1" or image.startswith("tensorflow/serving:2.16.1@")
    args = serving["args"]
    assert "--model_name=towergraph" in args
    assert "--model_base_path=$(MODEL_BASE_PATH)" in args
    assert {"--port=8500", "--rest_api_port=8501"} <= set(args)
    assert any(a.startswith("--file_system_poll_wait_seconds=") and int(a.split("=")[1]) > 0
               for a in args), "TF Serving must poll for new model versions"
    ports = {p["name"]: p["containerPort"] for p in serving["ports"]}
    assert ports == {"grpc": 8500, "http": 8501}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_tf_serving_probes_ask_for_the_model(overlay, docs):
    serving = container(one(docs[overlay], "Deployment", "tf-serving"))
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        get = serving[probe]["httpGet"]
        assert get["path"] == MODEL_PATH, probe
        assert get["port"] in (8501, "http"), probe


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_tf_serving_exports_prometheus_metrics(overlay, docs):
    resources = docs[overlay]
    deployment = one(resources, "Deployment", "tf-serving")
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "8501"
    assert annotations["prometheus.io/path"] == "/monitoring/prometheus/metrics"
    serving = container(deployment)
    flag = next(a for a in serving["args"] if a.startswith("--monitoring_config_file="))
    config_path = Path(flag.split("=", 1)[1])
    mount = next(m for m in serving["volumeMounts"] if m["mountPath"] == str(config_path.parent))
    volume = next(v for v in deployment["spec"]["template"]["spec"]["volumes"]
                  if v["name"] == mount["name"])
    config = one(resources, "ConfigMap", volume["configMap"]["name"])["data"][config_path.name]
    assert "enable: true" in config
    assert '"/monitoring/prometheus/metrics"' in config


@pytest.mark.parametrize("overlay", ["base", "overlays/gke"])
def test_hpa_scales_the_tf_serving_deployment_on_cpu(overlay, docs):
    resources = docs[overlay]
    (hpa,) = find(resources, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "tf-serving")
    assert one(resources, "Deployment", "tf-serving")
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    # The autoscaler owns the replica count.
    assert "replicas" not in one(resources, "Deployment", "tf-serving")["spec"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_tf_serving_has_a_disruption_budget(overlay, docs):
    (pdb,) = find(docs[overlay], "PodDisruptionBudget")
    assert selects(pdb["spec"]["selector"], SERVING)
    assert not selects(pdb["spec"]["selector"], UI)


def test_only_ui_pods_may_reach_tf_serving(docs):
    for overlay in OVERLAYS:
        policies = find(docs[overlay], "NetworkPolicy")
        # Everything else in the namespace is denied by default ...
        assert any(p["spec"]["podSelector"] == {} and "ingress" not in p["spec"]
                   and p["spec"]["policyTypes"] == ["Ingress"] for p in policies), overlay
        serving_rules = [rule for p in policies if selects(p["spec"]["podSelector"], SERVING)
                         for rule in p["spec"].get("ingress", [])]
        assert serving_rules, f"{overlay}: no policy lets the UI into TF Serving"
        # ... and every rule that lets traffic into TF Serving names the UI's pods alone.
        for rule in serving_rules:
            assert rule.get("from"), f"{overlay}: a rule admits every source to TF Serving"
            for peer in rule["from"]:
                assert set(peer) == {"podSelector"}, f"{overlay}: {peer}"
                assert selects(peer["podSelector"], UI) and not selects(peer["podSelector"], {})
            assert {(p["protocol"], p["port"]) for p in rule["ports"]} == {("TCP", 8500),
                                                                            ("TCP", 8501)}
        ui_rules = [rule for p in policies if selects(p["spec"]["podSelector"], UI)
                    for rule in p["spec"].get("ingress", [])]
        assert [p["port"] for rule in ui_rules for p in rule["ports"]] == [8080], overlay


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ui_may_reach_only_tf_serving_and_dns(overlay, docs):
    """Issue 14: the public UI pod cannot be made to fetch anything but the model server."""
    policies = [p for p in find(docs[overlay], "NetworkPolicy")
                if selects(p["spec"]["podSelector"], UI) and "Egress" in p["spec"]["policyTypes"]]
    assert policies, f"{overlay}: the UI's egress is not restricted"
    dns = {"k8s-app": "kube-dns"}
    reached = set()
    for rule in (rule for p in policies for rule in p["spec"].get("egress", [])):
        assert rule.get("to"), f"{overlay}: an egress rule lets the UI reach any address"
        assert rule.get("ports"), f"{overlay}: an egress rule opens every port"
        ports = {(port["protocol"], port["port"]) for port in rule["ports"]}
        for peer in rule["to"]:
            assert "ipBlock" not in peer, f"{overlay}: egress to an address block: {peer}"
            pods = peer.get("podSelector")
            assert pods and not selects(pods, {}), f"{overlay}: egress to every pod: {peer}"
            if selects(pods, SERVING) and "namespaceSelector" not in peer:
                assert ports <= {("TCP", 8500), ("TCP", 8501)}, f"{overlay}: {ports}"
                reached.add("tf-serving")
            elif selects(pods, dns):
                namespaces = peer.get("namespaceSelector", {})
                assert namespaces.get("matchLabels") == {
                    "kubernetes.io/metadata.name": "kube-system"}, f"{overlay}: {peer}"
                assert ports <= {("UDP", 53), ("TCP", 53)}, f"{overlay}: {ports}"
                reached.add("dns")
            else:
                pytest.fail(f"{overlay}: the UI may reach {peer}")
    assert reached == {"tf-serving", "dns"}, overlay


# --- every workload ------------------------------------------------------------------------------

@pytest.mark.parametrize("overlay", OVERLAYS)
def test_containers_are_non_root_read_only_and_bounded(overlay, docs):
    deployments = find(docs[overlay], "Deployment")
    assert {d["metadata"]["name"] for d in deployments} == {"tf-serving", "towergraph-ui"}
    for deployment in deployments:
        name = deployment["metadata"]["name"]
        pod = deployment["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False, name
        assert pod.get("serviceAccountName", "default") != "default", name
        pod_security = pod["securityContext"]
        assert pod_security["runAsNonRoot"] is True, name
        assert pod_security["runAsUser"] >= 10000, name
        assert "fsGroup" in pod_security, name
        assert pod_security["seccompProfile"]["type"] == "RuntimeDefault", name
        assert not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")), name
        assert not any("hostPath" in v for v in pod.get("volumes", [])), name
        for c in pod["containers"]:
            security = c["securityContext"]
            assert security["runAsNonRoot"] is True, name
            assert security.get("runAsUser", pod_security["runAsUser"]) >= 10000, name
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            assert "add" not in security["capabilities"], name
            assert security.get("privileged", False) is False, name
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][kind]), f"{name}: {kind}"
            assert c["imagePullPolicy"] in ("Always", "IfNotPresent"), name
            # A writable /tmp, since the root filesystem is read-only.
            tmp = next(m for m in c["volumeMounts"] if m["mountPath"] == "/tmp")
            volume = next(v for v in pod["volumes"] if v["name"] == tmp["name"])
            assert "emptyDir" in volume, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_images_are_pinned(overlay, docs):
    for deployment in find(docs[overlay], "Deployment"):
        for c in deployment["spec"]["template"]["spec"]["containers"]:
            image = c["image"].split("@")[0]
            name, _, tag = image.rpartition(":")
            assert name and "/" not in tag, f"{c['image']} has no tag"
            assert tag != "latest", c["image"]


# --- the UI --------------------------------------------------------------------------------------

@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ui_talks_to_tf_serving_and_is_probed(overlay, docs):
    resources = docs[overlay]
    deployment = one(resources, "Deployment", "towergraph-ui")
    ui = container(deployment)
    assert ui["image"].split("@")[0].rsplit(":", 1)[0].endswith("towergraph-ui")
    env = {e["name"]: e.get("value") for e in ui["env"]}
    assert env["TOWERGRAPH_SERVER"] == "http://tf-serving:8501"
    assert ui["args"][:3] == ["streamlit", "run", "ui/app.py"]
    assert "--server.port=8080" in ui["args"]
    assert [(p["name"], p["containerPort"]) for p in ui["ports"]] == [("http", 8080)]
    for probe in ("readinessProbe", "livenessProbe"):
        assert ui[probe]["httpGet"]["path"] == "/_stcore/health"
        assert ui[probe]["httpGet"]["port"] in (8080, "http")
    service = one(resources, "Service", "towergraph-ui")
    assert selects({"matchLabels": service["spec"]["selector"]}, pod_labels(deployment))
    assert [p["targetPort"] for p in service["spec"]["ports"]] in (["http"], [8080])


# --- overlays ------------------------------------------------------------------------------------

def test_local_serves_one_replica_from_a_volume_at_models(docs):
    resources = docs["overlays/local"]
    deployment = one(resources, "Deployment", "tf-serving")
    assert deployment["spec"]["replicas"] == 1
    assert not find(resources, "HorizontalPodAutoscaler")
    assert config_value(resources, deployment, "MODEL_BASE_PATH") == "/models/towergraph"
    mount = next(m for m in container(deployment)["volumeMounts"] if m["mountPath"] == "/models")
    assert mount["readOnly"] is True
    volume = next(v for v in deployment["spec"]["template"]["spec"]["volumes"]
                  if v["name"] == mount["name"])
    claim = one(resources, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
    assert one(resources, "PersistentVolume", claim["spec"]["volumeName"])
    assert one(resources, "Service", "towergraph-ui")["spec"]["type"] == "NodePort"


def test_gke_reads_the_model_from_gcs_with_workload_identity(docs):
    resources = docs["overlays/gke"]
    deployment = one(resources, "Deployment", "tf-serving")
    path = config_value(resources, deployment, "MODEL_BASE_PATH")
    assert path.startswith("gs://") and path.endswith("/towergraph")
    account = one(resources, "ServiceAccount", deployment["spec"]["template"]["spec"]
                  ["serviceAccountName"])
    gsa = account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"]
    assert gsa.endswith(".iam.gserviceaccount.com")
    assert not any(m["mountPath"] == "/models" for m in container(deployment)["volumeMounts"])


def test_gke_scales_further_and_publishes_only_the_ui(docs):
    base_hpa = one(docs["base"], "HorizontalPodAutoscaler", "tf-serving")["spec"]
    gke_hpa = one(docs["overlays/gke"], "HorizontalPodAutoscaler", "tf-serving")["spec"]
    assert gke_hpa["minReplicas"] > base_hpa["minReplicas"]
    assert gke_hpa["maxReplicas"] > base_hpa["maxReplicas"]
    public = [s["metadata"]["name"] for s in find(docs["overlays/gke"], "Service")
              if s["spec"].get("type") in ("LoadBalancer", "NodePort")]
    assert public == ["towergraph-ui"]
    image = container(one(docs["overlays/gke"], "Deployment", "towergraph-ui"))["image"]
    assert "docker.pkg.dev/" in image


# --- checkov -------------------------------------------------------------------------------------

def checkov(*args):
    """Run checkov offline and return its failed checks (after skips) as readable lines."""
    result = run([tool("checkov"), *args, "--compact", "--quiet", "--skip-download",
                  "-o", "json"])
    assert result.returncode in (0, 1), f"checkov crashed:\n{result.stderr[-3000:]}"
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    assert any(r.get("summary", {}).get("resource_count", 0) for r in reports), \
        f"checkov scanned nothing: {result.stdout[:500]}"
    failed = []
    for report in reports:
        assert report["summary"]["parsing_errors"] == 0, report["summary"]
        for check in report.get("results", {}).get("failed_checks", []):
            failed.append(f"{check['check_id']} {check['check_name']} "
                          f"{check['resource']} ({check['file_path']})")
    return failed


def test_checkov_passes_the_kubernetes_sources():
    assert checkov("-d", str(K8S), "--framework", "kubernetes") == []


def test_checkov_passes_the_rendered_overlays(rendered, tmp_path):
    """What gets applied, after the overlays' patches, is checked too."""
    for overlay, text in rendered.items():
        (tmp_path / (overlay.replace("/", "-") + ".yaml")).write_text(text)
    assert checkov("-d", str(tmp_path), "--framework", "kubernetes") == []


def test_checkov_passes_the_dockerfiles():
    assert checkov("-d", str(REPO / "docker"), "--framework", "dockerfile") == []


def test_every_checkov_skip_gives_a_reason(docs):
    annotations = [(r["metadata"]["name"], key, value)
                   for overlay in OVERLAYS for r in docs[overlay]
                   for key, value in r["metadata"].get("annotations", {}).items()
                   if key.startswith("checkov.io/skip")]
    assert annotations, "expected the documented CKV_K8S_43 skips"
    for name, key, value in annotations:
        check, _, reason = value.partition("=")
        assert check.startswith("CKV") and len(reason.strip()) > 20, f"{name} {key}: {value}"
    for path in list((REPO / "docker").glob("*Dockerfile*")) + list(K8S.rglob("*.yaml")):
        for line in path.read_text().splitlines():
            if "checkov:skip=" in line:
                check, _, reason = line.split("checkov:skip=", 1)[1].partition(":")
                assert len(reason.strip()) > 20, f"{path}: {line}"
