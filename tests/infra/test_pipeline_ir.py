"""The compiled pipeline against the cluster it runs on: every ConfigMap and Secret key the KFP IR
references exists in infra/k8s (rendered like `kubectl kustomize`), every environment variable it
sets is one the code reads, and each task gets only the credentials it needs.

kfp-kubernetes maps **ConfigMap/Secret key -> environment variable** (TOOLCHAIN.md, 2026-12-01);
a key the ConfigMap lacks leaves the pod unschedulable, and a variable nothing reads is no setting.
Each check has a negative twin that plants the fault in a copy of the IR.
"""

from __future__ import annotations

import ast
import copy
import importlib.util
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.infra import kustomize_lite
from tests.infra.test_k8s import K8S, OVERLAYS, find_kubectl, render_kubectl, secret_templates

ROOT = Path(__file__).resolve().parents[2]
#: code that runs in a task pod: the library, the components, the pipeline package
CODE_DIRS = ("src/lusynth", "components", "pipelines")
#: variables read by a library the tasks use rather than by lusynth: (package, file that must name it)
THIRD_PARTY_READERS = {
    "MLFLOW_TRACKING_USERNAME": ("mlflow", "environment_variables.py"),
    "MLFLOW_TRACKING_PASSWORD": ("mlflow", "environment_variables.py"),
}


# ---------------------------------------------------------------- what the code reads


def _is_environ(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or (isinstance(node, ast.Name) and node.id == "environ")


def env_reads(dirs: tuple[str, ...] = CODE_DIRS) -> set[str]:
    """Environment variable names the code reads: ``os.environ.get(X)``, ``os.environ[X]``,
    ``os.getenv(X)``, typer's ``envvar=X``, where X is a literal, a module constant (any module) or
    a loop variable over a tuple of literals."""
    trees = [ast.parse(p.read_text()) for d in dirs for p in sorted((ROOT / d).rglob("*.py"))]
    consts: dict[str, set[str]] = {}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                for t in node.targets:
                    if isinstance(t, ast.Name):
                        consts.setdefault(t.id, set()).add(node.value.value)
            if isinstance(node, ast.For) and isinstance(node.target, ast.Name) and isinstance(node.iter, (ast.Tuple, ast.List)):
                consts.setdefault(node.target.id, set()).update(
                    e.value for e in node.iter.elts if isinstance(e, ast.Constant) and isinstance(e.value, str))

    def names(arg: ast.AST) -> set[str]:
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            return {arg.value}
        if isinstance(arg, ast.Name):
            return consts.get(arg.id, set())
        return set()

    out: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                f = node.func
                if isinstance(f, ast.Attribute) and f.attr == "get" and _is_environ(f.value) and node.args:
                    out |= names(node.args[0])
                elif ((isinstance(f, ast.Attribute) and f.attr == "getenv") or (isinstance(f, ast.Name) and f.id == "getenv")) and node.args:
                    out |= names(node.args[0])
                for kw in node.keywords:
                    if kw.arg == "envvar":
                        out |= names(kw.value)
            elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and _is_environ(node.value):
                out |= names(node.slice)
    return out


def third_party_reads() -> set[str]:
    """The THIRD_PARTY_READERS whose package really names them (checked in its installed source)."""
    found = set()
    for var, (package, filename) in THIRD_PARTY_READERS.items():
        spec = importlib.util.find_spec(package)
        assert spec is not None and spec.origin, package
        if f'"{var}"' in (Path(spec.origin).parent / filename).read_text():
            found.add(var)
    return found


@pytest.fixture(scope="module")
def readers() -> set[str]:
    return env_reads() | third_party_reads()


def test_env_reads_sees_the_ways_the_code_reads_a_variable(tmp_path: Path) -> None:
    """The scanner finds what it must (so a variable it misses is not silently 'unread')."""
    got = env_reads()
    for var in ("MLFLOW_TRACKING_URI", "LUSYNTH_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_DEFAULT_REGION", "KFP_RUN_ID",
                "LUSYNTH_PSEUDONYM_KEY_FILE", "LUSYNTH_STAGE_CACHE", "LUSYNTH_GAN_CHECKPOINTS"):
        assert var in got, var
    # what kfp-kubernetes was given before: names nothing reads
    assert "S3_ENDPOINT_URL" not in got and "MLFLOW_S3_ENDPOINT_URL" not in got
    assert third_party_reads() == set(THIRD_PARTY_READERS)


# ---------------------------------------------------------------- the compiled IR and the manifests


def _compile(path: Path, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    from lusynth_pipelines.experiment import compile_pipeline

    compile_pipeline(str(path), **kwargs)
    docs = list(yaml.safe_load_all(path.read_text()))
    return docs[0], (docs[1] if len(docs) > 1 else {})


@pytest.fixture(scope="module", params=[False, True], ids=["cpu", "gpu"])
def ir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any]]:
    return _compile(tmp_path_factory.mktemp("ir") / "pipeline.yaml", gpu=request.param)


@pytest.fixture(scope="module")
def cluster() -> dict[str, dict[str, Any]]:
    """Per overlay: ConfigMap name -> data keys, and the Secrets (templates) -> keys."""
    kubectl = find_kubectl()
    out = {}
    for o in OVERLAYS:
        objs = render_kubectl(kubectl, K8S / "overlays" / o) if kubectl else kustomize_lite.build(K8S / "overlays" / o)
        out[o] = {"configmaps": {x["metadata"]["name"]: set(x.get("data", {})) for x in objs if x["kind"] == "ConfigMap"},
                  "secrets": secret_templates(),
                  "readable": {n for x in objs if x["kind"] == "Role" for r in x["rules"] for n in r.get("resourceNames", [])}}
    return out


def executor_settings(spec: dict[str, Any], platform: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Executor label -> {"k8s": its kubernetes platform config, "env": {name: value} of its container}."""
    k8s = platform.get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {}).get("executors", {})
    out = {}
    for label, ex in spec["deploymentSpec"]["executors"].items():
        env = {e["name"]: e["value"] for e in ex["container"].get("env", [])}
        out[label] = {"k8s": k8s.get(label, {}), "env": env}
    return out


def ir_reference_errors(spec: dict[str, Any], platform: dict[str, Any], configmaps: dict[str, set[str]], secrets: dict[str, set[str]],
                        readers: set[str], readable: set[str] | None = None) -> list[str]:
    """Everything the IR references that the cluster lacks, or sets that nothing reads."""
    errors: list[str] = []
    for label, s in executor_settings(spec, platform).items():
        k8s = s["k8s"]
        unknown = set(k8s) - {"configMapAsEnv", "secretAsEnv", "secretAsVolume", "configMapAsVolume", "activeDeadlineSeconds",
                              "tolerations", "nodeSelector", "podMetadata", "imagePullPolicy"}
        errors += [f"{label}: kubernetes setting {k} is not checked here: extend the test" for k in sorted(unknown)]
        for cm in k8s.get("configMapAsEnv", []):
            name = cm["configMapName"]
            if name not in configmaps:
                errors.append(f"{label}: ConfigMap {name} is not in infra/k8s")
                continue
            for m in cm["keyToEnv"]:
                if m["configMapKey"] not in configmaps[name]:
                    errors.append(f"{label}: ConfigMap {name} has no key {m['configMapKey']} (mapped to env {m['envVar']})")
                if m["envVar"] not in readers:
                    errors.append(f"{label}: env {m['envVar']} (from ConfigMap {name} key {m['configMapKey']}) is read by no code")
        for sec in k8s.get("secretAsEnv", []):
            name = sec["secretName"]
            if name not in secrets:
                errors.append(f"{label}: Secret {name} has no template in infra/k8s/secrets")
                continue
            for m in sec["keyToEnv"]:
                if m["secretKey"] not in secrets[name]:
                    errors.append(f"{label}: Secret {name} has no key {m['secretKey']} (mapped to env {m['envVar']})")
                if m["envVar"] not in readers:
                    errors.append(f"{label}: env {m['envVar']} (from Secret {name} key {m['secretKey']}) is read by no code")
        for vol in k8s.get("secretAsVolume", []):
            name, mount = vol["secretName"], vol["mountPath"].rstrip("/")
            if name not in secrets:
                errors.append(f"{label}: Secret {name} (volume) has no template in infra/k8s/secrets")
                continue
            files = [v for v in s["env"].values() if isinstance(v, str) and v.startswith(mount + "/")]
            if not files:
                errors.append(f"{label}: Secret {name} is mounted at {mount} but no env variable points into it")
            for f in files:
                if f[len(mount) + 1:] not in secrets[name]:
                    errors.append(f"{label}: {f} is not a key of Secret {name}")
        for vol in k8s.get("configMapAsVolume", []):
            if vol["configMapName"] not in configmaps:
                errors.append(f"{label}: ConfigMap {vol['configMapName']} (volume) is not in infra/k8s")
        for var in s["env"]:
            if var not in readers:
                errors.append(f"{label}: env {var} is read by no code")
        if readable is not None:
            for sec in [*k8s.get("secretAsEnv", []), *k8s.get("secretAsVolume", [])]:
                if sec["secretName"] not in readable:
                    errors.append(f"{label}: Secret {sec['secretName']} is not readable by the pipeline runner's Role")
    return errors


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_configmap_and_secret_key_the_ir_references_exists_and_is_read(ir, cluster, readers, overlay: str) -> None:
    spec, platform = ir
    c = cluster[overlay]
    errors = ir_reference_errors(spec, platform, c["configmaps"], c["secrets"], readers, c["readable"])
    assert errors == [], "\n".join(errors)
    # and the IR does use them (an IR without any mapping would pass vacuously)
    kinds = {k for s in executor_settings(spec, platform).values() for k in s["k8s"]}
    assert {"configMapAsEnv", "secretAsEnv", "secretAsVolume"} <= kinds


@pytest.mark.parametrize(
    "plant, expected",
    [
        (lambda k8s, env: k8s["configMapAsEnv"][0]["keyToEnv"].append({"configMapKey": "MLFLOW_S3_ENDPOINT_URL", "envVar": "S3_ENDPOINT_URL"}),
         "has no key MLFLOW_S3_ENDPOINT_URL"),
        (lambda k8s, env: k8s["configMapAsEnv"][0]["keyToEnv"].append({"configMapKey": "S3_ENDPOINT_URL", "envVar": "S3_ENDPOINT_URL"}),
         "env S3_ENDPOINT_URL (from ConfigMap lusynth-settings key S3_ENDPOINT_URL) is read by no code"),
        (lambda k8s, env: k8s["configMapAsEnv"][0].update(configMapName="lusynth-config"), "ConfigMap lusynth-config is not in"),
        (lambda k8s, env: k8s["secretAsEnv"][0]["keyToEnv"].append({"secretKey": "NO_SUCH_KEY", "envVar": "AWS_SESSION_TOKEN"}),
         "has no key NO_SUCH_KEY"),
        (lambda k8s, env: k8s["secretAsEnv"].append({"secretName": "lusynth-nope", "keyToEnv": []}), "Secret lusynth-nope has no template"),
        (lambda k8s, env: env.update(LUSYNTH_PSEUDONYM_KEY_FILE="/var/run/secrets/lusynth/pseudonym"), "is not a key of Secret"),
        (lambda k8s, env: env.update(S3_BUCKET="x"), "env S3_BUCKET is read by no code"),
    ],
    ids=["missing-key", "unread-env", "missing-configmap", "missing-secret-key", "missing-secret", "wrong-key-file", "unread-literal-env"],
)
def test_ir_check_catches_each_fault(ir, cluster, readers, plant: Any, expected: str) -> None:
    spec, platform = copy.deepcopy(ir[0]), copy.deepcopy(ir[1])
    ex = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-ingest"]
    env_list = spec["deploymentSpec"]["executors"]["exec-ingest"]["container"].setdefault("env", [])
    env = {e["name"]: e["value"] for e in env_list}
    plant(ex, env)
    spec["deploymentSpec"]["executors"]["exec-ingest"]["container"]["env"] = [{"name": k, "value": v} for k, v in env.items()]
    c = cluster["onprem"]
    errors = ir_reference_errors(spec, platform, c["configmaps"], c["secrets"], readers)
    assert any(expected in e for e in errors), errors


# ---------------------------------------------------------------- least privilege, read from the IR

#: task -> the Secrets it may see; the ConfigMap keys follow (S3 endpoint with S3, tracking URI with MLflow)
EXPECTED_SECRETS = {
    "open-parent-run": {"lusynth-mlflow-client"},
    "ingest": {"lusynth-s3", "lusynth-pseudonym-key"},
    "plan-gans": set(),
    "plan-classifiers": set(),
    "plan-classifiers-2": set(),
    "stage-settings": set(),
    "train-gan": {"lusynth-s3", "lusynth-mlflow-client"},
    "generate": {"lusynth-mlflow-client"},
    "audit": set(),  # reads artefacts only: no S3, no MLflow
    "bundle-synthetic": set(),
    "train-classifier": {"lusynth-mlflow-client"},
    "train-classifier-2": {"lusynth-mlflow-client"},
    "evaluate": {"lusynth-mlflow-client"},
    "export-register": {"lusynth-mlflow-client"},
    "close-parent-run": {"lusynth-mlflow-client"},
}


def _task_executors(spec: dict[str, Any]) -> dict[str, str]:
    """Task name (loops and exit handler included) -> executor label."""
    out: dict[str, str] = {}

    def walk(dag: dict[str, Any]) -> None:
        for name, task in dag.get("tasks", {}).items():
            comp = spec["components"][task["componentRef"]["name"]]
            if "dag" in comp:
                walk(comp["dag"])
            else:
                out[name] = comp["executorLabel"]

    walk(spec["root"]["dag"])
    return out


def test_each_task_gets_only_the_credentials_it_needs(ir) -> None:
    spec, platform = ir
    settings = executor_settings(spec, platform)
    tasks = _task_executors(spec)
    assert set(tasks) == set(EXPECTED_SECRETS)
    for task, label in tasks.items():
        k8s, env = settings[label]["k8s"], settings[label]["env"]
        secrets = {s["secretName"] for s in [*k8s.get("secretAsEnv", []), *k8s.get("secretAsVolume", [])]}
        assert secrets == EXPECTED_SECRETS[task], task
        cm_keys = {m["configMapKey"] for cm in k8s.get("configMapAsEnv", []) for m in cm["keyToEnv"]}
        assert ("S3_ENDPOINT_URL" in cm_keys) == ("lusynth-s3" in secrets), task
        assert ("MLFLOW_TRACKING_URI" in cm_keys) == ("lusynth-mlflow-client" in secrets), task
        assert ("LUSYNTH_PSEUDONYM_KEY_FILE" in env) == (task == "ingest"), task
        if task.startswith("plan-") or task in ("stage-settings", "bundle-synthetic", "audit"):
            assert not ({"configMapAsEnv", "secretAsEnv", "secretAsVolume"} & set(k8s)), task

