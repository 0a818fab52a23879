"""The compiled KFP IR: structure, parameters, task settings, secrets, and no credentials inside."""

from __future__ import annotations

import re

import pytest
import yaml

from lusynth.cli import main
from lusynth_pipelines.experiment import STAGE_RESOURCES

STAGES = {"ingest", "plan-gans", "plan-classifiers", "plan-classifiers-2", "train-gan", "generate", "audit", "bundle-synthetic",
          "train-classifier", "train-classifier-2",
          "evaluate", "export-register", "open-parent-run", "close-parent-run", "stage-settings"}
CPU_IMAGE = "registry.example.invalid/lusynth:9.9.9"
GPU_IMAGE = "registry.example.invalid/lusynth:9.9.9-cuda"


def _load(path) -> tuple[dict, dict]:
    docs = list(yaml.safe_load_all(open(path)))
    spec = docs[0]
    platform = docs[1] if len(docs) > 1 else {}
    return spec, platform


def _loop_members(spec: dict, loop_task: str) -> set[str]:
    ref = _tasks(spec)[loop_task]["componentRef"]["name"]
    return set(spec["components"][ref]["dag"]["tasks"])


def _stage(task: str) -> str:
    """The stage (or plumbing) a task runs: its name less the compiler's "-2" of a second task of a component."""
    return re.sub(r"-\d+$", "", task).replace("-", "_")


def _classifier_tasks(spec: dict) -> tuple[str, str]:
    """(the task of the loop of the arms that read synthetic frames, the task of the other arms' loop)."""
    tasks = [n for n in _tasks(spec) if _stage(n) == "train_classifier"]
    synthetic = [n for n in tasks if "synthetic" in _tasks(spec)[n]["inputs"].get("artifacts", {})]
    assert len(tasks) == 2 and len(synthetic) == 1, tasks
    return synthetic[0], next(n for n in tasks if n != synthetic[0])


def _tasks(spec: dict) -> dict[str, dict]:
    """Every task of the DAG, loops included, by task name."""
    out: dict[str, dict] = {}

    def walk(dag: dict) -> None:
        for name, task in dag.get("tasks", {}).items():
            out[name] = task
            comp = spec["components"].get(task["componentRef"]["name"], {})
            if "dag" in comp:
                walk(comp["dag"])

    walk(spec["root"]["dag"])
    return out


def _sources(spec: dict) -> dict[str, dict[str, tuple]]:
    """task name -> input parameter -> where its value comes from, followed through the loops and the
    exit handler to the root: ("pipeline", parameter), ("task", producer, output key[, "item"]) or
    ("constant", value). What KFP's cache keys a task on, less the artefacts."""
    parent: dict[str, tuple[dict, str | None]] = {}  # DAG component -> (the task that runs it, its enclosing component)

    def index(dag: dict, comp: str | None) -> None:
        for task in dag.get("tasks", {}).values():
            ref = task["componentRef"]["name"]
            if "dag" in spec["components"].get(ref, {}):
                parent[ref] = (task, comp)
                index(spec["components"][ref]["dag"], ref)

    def resolve(value: dict, comp: str | None) -> tuple:
        if "runtimeValue" in value:
            return ("constant", value["runtimeValue"]["constant"])
        if "taskOutputParameter" in value:
            return ("task", value["taskOutputParameter"]["producerTask"], value["taskOutputParameter"]["outputParameterKey"])
        if "taskFinalStatus" in value:
            return ("status", value["taskFinalStatus"]["producerTask"])
        name = value["componentInputParameter"]
        if comp is None:
            return ("pipeline", name)
        task, outer = parent[comp]
        iterator = task.get("parameterIterator", {})
        if iterator.get("itemInput") == name:  # the loop item (one field of it): the list it iterates over
            field = re.fullmatch(r'parseJson\(string_value\)\["(\w+)"\]', value.get("parameterExpressionSelector", ""))
            return (*resolve({"componentInputParameter": iterator["items"]["inputParameter"]}, comp), "item",
                    *([field.group(1)] if field else []))
        return resolve(task["inputs"]["parameters"][name], outer)

    index(spec["root"]["dag"], None)
    out: dict[str, dict[str, tuple]] = {}

    def walk(dag: dict, comp: str | None) -> None:
        for name, task in dag.get("tasks", {}).items():
            ref = task["componentRef"]["name"]
            if "dag" in spec["components"].get(ref, {}):
                walk(spec["components"][ref]["dag"], ref)
            else:
                out[name] = {k: resolve(v, comp) for k, v in task.get("inputs", {}).get("parameters", {}).items()}

    walk(spec["root"]["dag"], None)
    return out


@pytest.fixture(scope="module", params=[False, True], ids=["cpu", "gpu"])
def compiled(request, tmp_path_factory):
    import importlib
    import os

    # components bind the image at import: reload them so the setting is read now, and again after
    import lusynth_components.audit  # noqa: E401
    import lusynth_components.bundle
    import lusynth_components.evaluate
    import lusynth_components.export_register
    import lusynth_components.generate  # noqa: E401
    import lusynth_components.ingest
    import lusynth_components.plan
    import lusynth_components.settings  # noqa: E401
    import lusynth_components.train_classifier
    import lusynth_components.train_gan
    import lusynth_pipelines.experiment as experiment

    modules = (lusynth_components.settings, lusynth_components.audit, lusynth_components.bundle, lusynth_components.evaluate,
               lusynth_components.export_register, lusynth_components.generate, lusynth_components.ingest,
               lusynth_components.plan, lusynth_components.train_classifier, lusynth_components.train_gan, experiment)
    os.environ["LUSYNTH_IMAGE"] = CPU_IMAGE
    os.environ["LUSYNTH_GPU_IMAGE"] = GPU_IMAGE
    try:
        for m in modules:
            importlib.reload(m)
        path = tmp_path_factory.mktemp("ir") / "pipeline.yaml"
        experiment.compile_pipeline(str(path), gpu=request.param)
    finally:
        del os.environ["LUSYNTH_IMAGE"], os.environ["LUSYNTH_GPU_IMAGE"]
        for m in modules:
            importlib.reload(m)
    return request.param, path


def test_dag_and_parameters(compiled) -> None:
    _, path = compiled
    spec, _ = _load(path)
    tasks = _tasks(spec)
    assert STAGES <= set(tasks)
    params = spec["root"]["inputDefinitions"]["parameters"]
    # one parameter source: the profile + per-section overrides, no parameter written out again
    assert set(params) == {"source", "profile", "overrides", "experiment", "register", "parent_run_id", "gan_checkpoints"}
    assert params["overrides"]["defaultValue"] == {}
    assert params["gan_checkpoints"]["defaultValue"] == ""
    # the mirror root reaches every GAN task (inside the loop, through the loop's own input)
    gan_in = tasks["train-gan"]["inputs"]["parameters"]["checkpoint_root"]["componentInputParameter"]
    assert gan_in.endswith("gan_checkpoints"), gan_in
    assert params["profile"]["defaultValue"] == "demo"
    # data flow: GANs feed generate, generate feeds the bundle, the bundle feeds the classifiers of the arms that
    # read synthetic frames (the other arms' loop takes no synthetic data: KFP keys a task on its input
    # artefacts, so a new synthetic set leaves them cached), all feed evaluate
    deps = {n: set(t.get("dependentTasks", [])) for n, t in tasks.items()}
    loops = {n: {c for c, t in tasks.items() if c in _loop_members(spec, n)} for n in tasks if n.startswith("for-loop")}
    gan_loop = next(n for n, m in loops.items() if "train-gan" in m)
    syn_task, real_task = _classifier_tasks(spec)
    syn_loop = next(n for n, m in loops.items() if syn_task in m)
    real_loop = next(n for n, m in loops.items() if real_task in m)
    assert loops[gan_loop] == {"train-gan", "generate", "audit"} and loops[syn_loop] == {syn_task} and loops[real_loop] == {real_task}
    assert "train-gan" in deps["generate"] and "generate" in deps["audit"]  # each synthetic set is audited
    assert deps["plan-gans"] == {"ingest"}
    assert deps[gan_loop] >= {"ingest", "plan-gans"}
    assert deps["bundle-synthetic"] == {gan_loop}
    sources = _sources(spec)
    syn_plan, real_plan = sources[syn_task]["job"][1], sources[real_task]["job"][1]
    assert _stage(syn_plan) == _stage(real_plan) == "plan_classifiers" and syn_plan != real_plan
    assert _sources(spec)[syn_plan]["synthetic"] == ("constant", True) and _sources(spec)[real_plan]["synthetic"] == ("constant", False)
    assert deps[syn_loop] >= {"bundle-synthetic", syn_plan, "ingest"}
    assert deps[real_loop] == {real_plan, "ingest"} | ({"open-parent-run"} & deps[syn_loop])
    assert set(tasks[real_task]["inputs"]["artifacts"]) == {"frames"} and set(tasks[syn_task]["inputs"]["artifacts"]) == {"frames", "synthetic"}
    for consumer in ("evaluate", "export-register"):
        arts = tasks[consumer]["inputs"]["artifacts"]
        assert arts["classifiers"]["taskOutputArtifact"]["producerTask"] == syn_loop, consumer
        assert arts["real_classifiers"]["taskOutputArtifact"]["producerTask"] == real_loop, consumer
    assert deps["evaluate"] >= {gan_loop, syn_loop, real_loop, "ingest"}
    assert deps["export-register"] >= {"evaluate", gan_loop, syn_loop, real_loop}
    # the MLflow parent run: opened before every tracked stage (an order: its id is not their input, see
    # test_tasks_take_no_per_run_input); closed by the exit handler
    for t in ("train-gan", "generate", syn_task, real_task, "evaluate", "export-register"):
        assert _sources(spec)[t]["parent_run_id"] == ("pipeline", "parent_run_id"), t
        enclosing = [n for n, m in loops.items() if t in m]
        assert "open-parent-run" in deps[enclosing[0] if enclosing else t], t
    close = spec["root"]["dag"]["tasks"]["close-parent-run"]
    assert close["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"
    assert close["dependentTasks"] == ["exit-handler-1"]
    assert set(spec["root"]["dag"]["tasks"]) == {"close-parent-run", "exit-handler-1"}


def test_tasks_take_no_per_run_input(compiled) -> None:
    """KFP's cache keys a task on its input values (and artefacts): a cached task (a GAN, a classifier)
    must take nothing that is new in every submission (the parent run opened for it, the KFP run id)
    and, of the settings, only its own stage's (never the whole ``overrides``, where any change to
    another stage or family would retrain it)."""
    _, path = compiled
    spec, _ = _load(path)
    tasks, sources = _tasks(spec), _sources(spec)
    work = {"ingest", "train-gan", "generate", "audit", *_classifier_tasks(spec), "evaluate", "export-register"}
    assert work <= set(sources)
    for name, inputs in sources.items():
        if not tasks[name].get("cachingOptions", {}).get("enableCache"):
            continue
        for param, src in inputs.items():
            assert src[:2] != ("task", "open-parent-run"), (name, param, src)
            assert not (src[0] == "constant" and "{{$" in str(src[1])), (name, param, src)  # a run placeholder
            if name in work:
                assert src != ("pipeline", "overrides"), (name, param)
    assert {n for n in work if tasks[n]["cachingOptions"].get("enableCache")} == work - {"export-register"}
    # each stage gets its own settings: outside the loops stage_settings' output of its name, inside a loop
    # its loop item's field of its name (a GAN its family's), and its task key from the item's "key"
    outside = {"ingest", "evaluate", "export-register"}
    for name in outside:
        assert sources[name]["overrides"] == ("task", "stage-settings", name.replace("-", "_")), name
    for name, plan in (("train-gan", "plan-gans"), ("generate", "plan-gans"), ("audit", "plan-gans"),
                       *((t, sources[t]["job"][1]) for t in _classifier_tasks(spec))):
        assert _stage(plan) == ("plan_classifiers" if _stage(name) == "train_classifier" else "plan_gans"), (name, plan)
        assert sources[name]["overrides"] == ("task", plan, "Output", "item", _stage(name)), name
        if _stage(name) in ("train_gan", "train_classifier"):
            assert sources[name]["job"] == ("task", plan, "Output", "item", "key"), name
    outputs = spec["components"][tasks["stage-settings"]["componentRef"]["name"]]["outputDefinitions"]["parameters"]
    assert set(outputs) == {n.replace("-", "_") for n in outside}


def test_images_resources_retries(compiled) -> None:
    gpu, path = compiled
    spec, platform = _load(path)
    executors = spec["deploymentSpec"]["executors"]
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    by_task = {}
    for name, task in _tasks(spec).items():
        comp = spec["components"][task["componentRef"]["name"]]
        if "executorLabel" in comp:
            by_task[name] = (task, executors[comp["executorLabel"]]["container"], k8s.get(comp["executorLabel"], {}))
    for name, (task, container, kube) in by_task.items():
        r = STAGE_RESOURCES[_stage(name)]
        res = container["resources"]
        assert res["resourceCpuLimit"] == r.cpu_limit and res["resourceMemoryLimit"] == r.memory_limit, name
        on_gpu = gpu and r.gpu
        assert ("accelerator" in res) == on_gpu, name
        # the CUDA image with a GPU, the CPU image otherwise; both the settings' (immutable) references
        assert container["image"] == (GPU_IMAGE if on_gpu else CPU_IMAGE), name
        if on_gpu:
            assert res["accelerator"]["resourceCount"] == "1"
            assert kube["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}], name
        else:
            assert "tolerations" not in kube and "nodeSelector" not in kube, name
        assert ("retryPolicy" in task) == (r.retries > 0), name
        assert task.get("cachingOptions", {}).get("enableCache", False) == r.caching, name
    assert any(gpu and STAGE_RESOURCES[_stage(n)].gpu for n in by_task) == gpu


def test_gpu_placement_and_images_are_settings(tmp_path) -> None:
    from lusynth_pipelines.experiment import ClusterSettings, Toleration, compile_pipeline

    digest = "registry.example.invalid/lusynth@sha256:" + "a" * 64
    cluster = ClusterSettings(gpu=True, image="registry.example.invalid/lusynth:1.2.3", gpu_image=digest,
                              gpu_node_selector={"cloud.google.com/gke-accelerator": "nvidia-l4"},
                              gpu_tolerations=(Toleration.parse("pool=gpu:NoExecute"), Toleration.parse("nvidia.com/gpu")))
    spec, platform = _load(compile_pipeline(str(tmp_path / "p.yaml"), cluster=cluster))
    ex = spec["deploymentSpec"]["executors"]
    kube = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert ex["exec-train-gan"]["container"]["image"] == digest and ex["exec-evaluate"]["container"]["image"].endswith(":1.2.3")
    assert kube["exec-train-classifier"]["nodeSelector"] == {"labels": {"cloud.google.com/gke-accelerator": "nvidia-l4"}}
    assert kube["exec-train-gan"]["tolerations"] == [{"key": "pool", "operator": "Equal", "value": "gpu", "effect": "NoExecute"},
                                                     {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert "nodeSelector" not in kube["exec-evaluate"]


@pytest.mark.parametrize("ref", ["localhost/lusynth:0.1.0-cpu", "ghcr.io/lusynth/lusynth:latest", "ghcr.io/lusynth/lusynth",
                                 "registry.example:5000/lusynth"])
def test_mutable_images_are_refused(ref) -> None:
    from lusynth.errors import InputError
    from lusynth_pipelines.experiment import ClusterSettings

    with pytest.raises(InputError, match="immutable"):
        ClusterSettings(image=ref)
    with pytest.raises(InputError, match="--gpu-image"):
        ClusterSettings(gpu_image=ref)
    ClusterSettings(image="registry.example:5000/lusynth:0.1.0")  # a registry port is not a tag


def test_secrets_referenced_and_no_credentials(compiled) -> None:
    # which task gets which Secret, checked against infra/k8s: tests/infra/test_pipeline_ir.py
    _, path = compiled
    text = open(path).read()
    # no literal credential anywhere in the IR
    assert not re.search(r"AKIA[0-9A-Z]{16}", text)
    assert not re.search(r"(?i)(secret_access_key|password)\s*[:=]\s*['\"]?[A-Za-z0-9/+]{8,}", text)


def test_evaluate_reports_a_roc_and_confusion_matrix_per_arm() -> None:
    from lusynth.classifier.params import ARMS
    from lusynth_components.evaluate import evaluate

    outs = evaluate.component_spec.outputs or {}
    rocs = {n for n, o in outs.items() if o.type.startswith("system.ClassificationMetrics")}
    assert rocs == {"roc_" + a.replace("+", "_") for a in ARMS}


def test_compile_and_submit_default_to_cpu() -> None:
    import typer as _typer

    from lusynth.cli import app

    group = _typer.main.get_command(app).commands["pipeline"]
    for cmd in ("compile", "submit", "upload"):
        gpu = next(p for p in group.commands[cmd].params if p.name == "gpu")
        assert gpu.default is False, cmd


def test_cli_compile(tmp_path, capsys) -> None:
    assert main(["pipeline", "compile", "--out", str(tmp_path / "p.yaml")]) == 0
    spec, platform = _load(tmp_path / "p.yaml")
    assert spec["pipelineInfo"]["name"] == "lusynth-experiment"
    assert not any("accelerator" in e["container"]["resources"] for e in spec["deploymentSpec"]["executors"].values())
    assert main(["pipeline", "compile", "--out", str(tmp_path / "g.yaml"), "--gpu", "--gpu-node-selector", "pool=gpu",
                 "--gpu-toleration", "dedicated=ml:NoSchedule"]) == 0
    spec, platform = _load(tmp_path / "g.yaml")
    kube = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-train-gan"]
    assert kube["nodeSelector"] == {"labels": {"pool": "gpu"}}
    assert kube["tolerations"] == [{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}]
    assert spec["deploymentSpec"]["executors"]["exec-train-gan"]["container"]["image"].endswith("-cuda")
    capsys.readouterr()
    assert main(["pipeline", "compile", "--out", str(tmp_path / "x.yaml"), "--image", "localhost/lusynth:latest"]) == 2
    err = capsys.readouterr().err
    assert "--image localhost/lusynth:latest: not an immutable image reference" in err and "Traceback" not in err


def test_submit_to_unreachable_host_fails_fast(capsys) -> None:
    import time

    t = time.perf_counter()
    rc = main(["pipeline", "submit", "--host", "http://127.0.0.1:9", "--schedule", "0 3 * * 1"])
    assert rc == 2 and time.perf_counter() - t < 10
    err = capsys.readouterr().err
    assert "KFP host http://127.0.0.1:9 is not reachable" in err and "Traceback" not in err
