"""KFP's own cache, for real: the pipeline under kfp.local with KFP's caching on (as on a cluster,
where the stage cache is off in the pods), submitted twice, the second time with one generator
family's learning rate changed and, as every submission has, a new MLflow parent run. The other
family's GANs, their synthetic sets and audits, and the ingest are served from KFP's cache; only the
changed family's GANs and what reads them run again, and of the classifiers only the synthetic arm's
(the real arm's task takes no synthetic data). A third submission with only the synthetic arm runs
the real arms' loop as one placeholder task and serves the rest from KFP's cache.

Before the tasks took their own stage's settings and found the parent run by the KFP run id, every
task of the second submission ran again; before the real arms got a loop of their own, every
classifier did."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

GRID = {"experiment": {"fractions": [1.0], "seeds": [0], "gan_seeds": [0], "arms": ["real", "synthetic"],
                       "generators": ["dcgan", "fastgan"], "folds": 1}}


def _executed(run_root: Path) -> dict[str, list[dict]]:
    """task name -> per execution of it in one kfp.local run directory, the metadata of its output
    artefacts, merged (a task served from KFP's cache did not execute there: it has no executor output)."""
    out: dict[str, list[dict]] = {}
    for f in sorted(run_root.rglob("executor_output.json")):
        arts = json.loads(f.read_text()).get("artifacts", {})
        meta = {k: v for a in arts.values() for art in a["artifacts"] for k, v in art.get("metadata", {}).items()}
        out.setdefault(f.parent.name, []).append(meta)
    return out


def test_a_resubmission_runs_only_what_a_change_reaches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lusynth.params import merge_overrides
    from lusynth_pipelines.local import run_local

    monkeypatch.setenv("LUSYNTH_STAGE_CACHE", "off")  # as in a pod: only KFP's cache can serve a task
    first = run_local(tmp_path / "run", profile="tiny", overrides=GRID, kfp_cache=True)
    second = run_local(tmp_path / "run", profile="tiny", overrides=merge_overrides(GRID, {"gan": {"fastgan_lr": 0.0015}}),
                       kfp_cache=True)
    assert first.parent_run_id != second.parent_run_id  # a new parent run, which no task takes as an input
    print(f"first submission {first.seconds:.0f} s, second {second.seconds:.0f} s")  # timings: not asserted (machine load)
    runs = sorted((tmp_path / "run" / "kfp").glob("lusynth-experiment-*"))
    assert len(runs) == 2
    a, b = _executed(runs[0]), _executed(runs[1])
    # the first submission ran everything: 2 classes x 2 families
    assert len(a["train-gan"]) == len(a["generate"]) == len(a["audit"]) == 4 and len(a["ingest"]) == 1
    assert sorted(m["generator"] for m in a["train-gan"]) == ["dcgan", "dcgan", "fastgan", "fastgan"]
    # the second: the frames and the DCGANs (with their synthetic sets and audits) came from KFP's cache
    assert "ingest" not in b
    assert sorted(m["generator"] for m in b["train-gan"]) == ["fastgan", "fastgan"]
    assert len(b["generate"]) == len(b["audit"]) == 2
    assert {"evaluate", "export-register"} <= set(b)
    # the classifiers: the first submission trained a real one per fold and a synthetic one per family; the
    # second retrained only the synthetic arm's (it reads the new FastGAN sets; the real arm's loop takes no
    # synthetic bundle, so its task was served from KFP's cache)
    arms = {run: sorted((m["arm"], m["generator"]) for name, ms in x.items() if name.startswith("train-classifier") for m in ms)
            for run, x in (("first", a), ("second", b))}
    assert arms["first"] == [("real", "dcgan"), ("synthetic", "dcgan"), ("synthetic", "fastgan")]
    assert arms["second"] == [("synthetic", "dcgan"), ("synthetic", "fastgan")]
    # and the report of the second submission still holds every GAN: the DCGANs' records are the first run's
    report = json.loads((second.results / "report.json").read_text())
    assert sorted(x["generator"] for x in report["audits"]) == ["dcgan", "dcgan", "fastgan", "fastgan"]

    # a third, with only the synthetic arm: the real arms' loop has no cell and runs one placeholder task
    # (kfp.local cannot collect an empty loop), whose output evaluate and export drop; every GAN and
    # synthetic-arm classifier comes from KFP's cache
    from lusynth.stages import PLACEHOLDER

    third = run_local(tmp_path / "run", profile="tiny", kfp_cache=True, overrides=merge_overrides(
        GRID, {"gan": {"fastgan_lr": 0.0015}, "experiment": {"arms": ["synthetic"]}}))
    c = _executed(sorted((tmp_path / "run" / "kfp").glob("lusynth-experiment-*"))[-1])
    assert not {"ingest", "train-gan", "generate", "audit"} & set(c)
    assert sorted(n for n in c if n.startswith("train-classifier")) == ["train-classifier"]  # the real loop's task; the synthetic one cached
    assert c["train-classifier"] == [{"placeholder": 1.0}]  # its Metrics output; its model output holds only the marker
    (hole,) = (tmp_path / "run" / "kfp").glob(f"{third.results.parts[-3]}/**/{PLACEHOLDER}")
    assert sorted(p.name for p in hole.parent.iterdir()) == [PLACEHOLDER]
    report = json.loads((third.results / "report.json").read_text())
    assert sorted((x["arm"], x["generator"]) for x in report["classifiers"]) == [("synthetic", "dcgan"), ("synthetic", "fastgan")]
    assert not report["skipped_classifiers"]
    export = json.loads((third.models / "export.json").read_text())
    assert set(export["classifiers"]) == {"synthetic"} and PLACEHOLDER not in json.dumps(export)
