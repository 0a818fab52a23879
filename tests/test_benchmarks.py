"""``make bench``'s runner: it finds every benchmark script (only --list here; the benchmarks are slow)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _run_all(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(BENCHMARKS / "run_all.py"), *args], capture_output=True, text=True, timeout=60)


def test_list_names_every_benchmark_script_and_runs_none() -> None:
    res = _run_all("--list")
    assert res.returncode == 0, res.stderr
    names = [line.split()[0] for line in res.stdout.splitlines()]
    assert names == sorted(p.stem.removeprefix("bench_") for p in BENCHMARKS.glob("bench_*.py"))
    assert "gan" in names and "exit" not in res.stdout


def test_list_with_only_selects_and_an_unknown_name_is_an_error() -> None:
    res = _run_all("--list", "--only", "bench_gan.py", "--only", "ingest")
    assert res.returncode == 0 and [line.split()[0] for line in res.stdout.splitlines()] == ["gan", "ingest"]
    bad = _run_all("--list", "--only", "no-such-bench")
    assert bad.returncode == 2 and "no-such-bench: no such benchmark" in bad.stderr and "gan" in bad.stderr


def _history(*points: tuple[int, float, float, float]) -> list[dict[str, float]]:
    """(step, validation MMD^2 in the embedding, test-patient MMD^2, memorisation rate) per evaluation;
    the 1-NN readings are chosen so the default rule picks the step whose nn1 is written 0.5. The
    training-patient 1-NN reaches the 0.70 bar only at step 50."""
    out = []
    for step, mmd, test, mem in points:
        out.append({"step": step, "epoch": step / 10, "nn1_embed": 0.5 if step == 20 else 0.9, "mmd_embed": mmd,
                    "nn1_pixels": 0.9, "mmd_pixels": mmd, "memorisation_rate": mem, "test_mmd_embed_ref": test,
                    "train_nn1_embed_patient": 0.5 if step == 50 else 0.9})
    return out


def test_selection_bench_replays_each_rule_and_scores_it_on_the_test_patients(tmp_path: Path) -> None:
    """A known answer: the default rule picks step 20 (test 0.5), the MMD rules (and the pixel 1-NN rule, all 0.9 there, by its MMD tie-break) step 30 (test 0.4), the
    guarded oracle step 40 (test 0.3), 'last' and the unguarded oracle the memorising step 50 (0.1)."""
    hist = _history((0, 0.0, 0.0, 0.0), (10, 0.8, 0.9, 0.0), (20, 0.6, 0.5, 0.0), (30, 0.2, 0.4, 0.0),
                    (40, 0.3, 0.3, 0.01), (50, 0.1, 0.1, 0.9))
    # the second run: every test reading 0.1 higher, and an eligible checkpoint (step 40) under the 1-NN bar
    shifted = [dict(e, test_mmd_embed_ref=e["test_mmd_embed_ref"] + 0.1, train_nn1_embed_patient=0.65 if e["step"] == 40 else
                    e["train_nn1_embed_patient"]) for e in hist]
    results = {"stores": {"s": {"runs": {"dcgan": {"0": {"history": hist}, "1": {"history": shifted}},
                                         "real-train": {"0": {"history": hist}}}}}}
    src = tmp_path / "generators.json"
    src.write_text(json.dumps(results))
    out = tmp_path / "selection.json"
    res = subprocess.run([sys.executable, str(BENCHMARKS / "bench_selection.py"), "--results", str(src), "--out", str(out)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    got = json.loads(out.read_text())["files"]["generators.json"]["s"]
    assert len(got["runs"]) == 2  # the real-train pseudo-family is not a generator
    steps = {rule: c["step"] for rule, c in got["runs"][0]["choices"].items()}
    assert steps == {"nn1_embed": 20, "nn1_pixels": 30, "mmd_embed": 30, "mmd_pixels": 30,
                     "last": 50, "oracle": 40, "oracle-unguarded": 50}
    s = got["summary"]
    assert s["mmd_embed"]["vs_default"]["mean"] == pytest.approx(-0.1) and s["mmd_embed"]["wins"] == 2
    assert s["oracle"]["test_mmd"] == pytest.approx(0.35) and s["oracle-unguarded"]["memorisation_rate"] == pytest.approx(0.9)
    assert s["nn1_embed"]["vs_default"]["mean"] == 0 and "nn1_embed" in res.stdout
    # the 1-NN bar: reached without copying in the second run only, by a copying checkpoint in both
    assert got["nn1_bar"] == {"bar": 0.7, "runs": 2, "eligible": 1, "copying": 2, "any_copying": 2}
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    res = subprocess.run([sys.executable, str(BENCHMARKS / "bench_selection.py"), "--results", str(bad), "--out", str(out)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and "not a bench_generators.py results file" in res.stderr and "Traceback" not in res.stderr


def test_the_averaged_real_frames_are_what_they_claim_to_be() -> None:
    """bench_generators' known-answer pseudo-families: ``real-train-mixK`` averages each real frame
    with frames of K-1 *other* patients (two patients of constant frames 0 and 200 mix to 100
    everywhere, never with themselves); ``real-train-blurS`` is a Gaussian blur within each frame
    (a constant frame stays itself, a bright pixel spreads but keeps its mass)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import bench_generators as bg
    finally:
        sys.path.remove(str(BENCHMARKS))
    import numpy as np

    floor = np.zeros((6, 16, 16), np.uint8)
    floor[3:] = 200
    floor[2, 8, 8] = 255  # patient a's third frame: a bright pixel
    ev = bg.Evaluator.__new__(bg.Evaluator)
    ev.real_floor, ev.real_floor_patients = floor, np.array(["a", "a", "a", "b", "b", "b"])
    mixed = bg.degraded_floor(ev, "mix", 2, seed=0)
    assert (mixed[:2] == 100).all() and (mixed[3:] == 100).all() and mixed[2, 8, 8] == 228
    blurred = bg.degraded_floor(ev, "blur", 1, seed=0)
    assert (blurred[3:] == 200).all() and (blurred[:2] == 0).all()
    assert 0 < blurred[2, 8, 8] < 255 and blurred[2, 8, 9] > 0 and abs(int(blurred[2].sum()) - 255) < 10
    assert bg._degraded("real-train-blur2") == ("blur", 2) and bg._degraded("real-train-mix4") == ("mix", 4)
    for bad in ("real-train-mix1", "real-train-blur", "real-train-sharpen2"):
        with pytest.raises(SystemExit, match="real-train-blurS"):
            bg._degraded(bad)


def test_the_null_rate_bench_holds_each_patient_out_of_the_filter_it_scores() -> None:
    """bench_nearcopy_null: each training patient's frames are scored by a filter fitted without it. A
    patient duplicated under another id is flagged whole (its twin is in the fitted set); patients far
    apart are not; a class with two patients leaves one fitted patient, which is skipped."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import bench_nearcopy_null as bn
    finally:
        sys.path.remove(str(BENCHMARKS))
    import numpy as np

    from lusynth.metrics.nearcopy import NearCopyPolicy

    rng = np.random.default_rng(0)
    centres = [20, 80, 140, 200]
    train = np.concatenate([np.clip(c + rng.normal(0, 3, (5, 8, 8)), 0, 255) for c in centres]).astype(np.uint8)
    patients = np.repeat(["a", "b", "c", "d"], 5)
    train = np.concatenate([train, train[5:10]])  # patient e: a copy of b
    patients = np.concatenate([patients, np.repeat("e", 5)])
    reference = np.clip(110 + rng.normal(0, 3, (5, 8, 8)), 0, 255).astype(np.uint8)
    rates = bn.held_out_rates(train, patients, reference, NearCopyPolicy())
    assert rates["b"] == rates["e"] == 1.0
    assert rates["a"] == rates["c"] == rates["d"] == 0.0
    assert bn.held_out_rates(train[:10], patients[:10], reference, NearCopyPolicy()) == {}


def test_the_phantom_oracle_draws_one_frame_from_each_of_new_patients_of_the_same_phantom(tmp_path: Path) -> None:
    """bench_generators' ``phantom-oracle``, a perfect generator's known answer: a larger phantom
    ingested the same way has the store's patients with byte-identical frames (a phantom patient does
    not depend on how many there are), and the rest are new patients of the class; each draw is a
    frame of a different new patient. A phantom made otherwise (another seed) is refused."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import bench_generators as bg
    finally:
        sys.path.remove(str(BENCHMARKS))
    import numpy as np

    from lusynth.data.framestore import open_store
    from lusynth.data.ingest import ingest
    from lusynth.data.phantom import PhantomParams

    small = dict(clips_per_patient=1, frames_per_clip=2)
    for name, pp in (("s", PhantomParams(patients=12, **small)), ("f", PhantomParams(patients=20, **small)),
                     ("x", PhantomParams(patients=20, seed=1, **small))):
        ingest(None, tmp_path / name, phantom=pp)
    store, fresh = open_store(tmp_path / "s"), open_store(tmp_path / "f")
    frames, patients = bg.fresh_patient_frames(store, fresh, "consolidation")
    assert len(set(patients)) == 4 and not set(patients) & set(store.manifest["patient_id"])  # patients 13, 15, 17, 19
    assert len(frames) == 8 and frames.shape[1:] == store.frames.shape[1:]
    drawn = bg.oracle_frames(frames, patients, 4, seed=0)
    whose = [patients[next(i for i in range(len(frames)) if np.array_equal(frames[i], d))] for d in drawn]
    assert sorted(whose) == sorted(set(patients))  # one frame from each new patient
    assert not np.array_equal(bg.oracle_frames(frames, patients, 4, seed=0), bg.oracle_frames(frames, patients, 4, seed=3))
    with pytest.raises(SystemExit, match="fresh patients for 5 draws"):
        bg.oracle_frames(frames, patients, 5, seed=0)
    with pytest.raises(SystemExit, match="not the same phantom"):
        bg.fresh_patient_frames(store, open_store(tmp_path / "x"), "consolidation")


def test_the_generator_summary_pairs_each_family_with_the_dcgan_and_the_perfect_generator_by_seed() -> None:
    """bench_generators' summary: ``_minus_dcgan`` and ``_minus_oracle`` are per-seed differences with
    a t interval over the seeds both were run with; a pseudo-family with no reading (NaN) gets none."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import bench_generators as bg
    finally:
        sys.path.remove(str(BENCHMARKS))

    def run(value: float) -> dict:
        return {"chosen": {m: value for m in bg.REPORTED}}

    entry = {"runs": {"dcgan": {"0": run(0.8), "1": run(0.9), "2": run(0.7)},
                      "fastgan": {"0": run(0.7), "1": run(0.7), "2": run(0.6), "3": run(0.1)},
                      "phantom-oracle": {"0": run(0.5), "1": run(0.5), "2": run(0.5)},
                      "real-unseen": {"0": run(float("nan")), "1": run(float("nan"))}}}
    bg._summarise(entry, [0, 1, 2, 3])
    s = entry["summary"]
    d = s["fastgan"]["nn1_embed_minus_dcgan"]
    assert d["mean"] == pytest.approx(-0.1333, abs=1e-4) and d["min"] == pytest.approx(-0.2) and d["ci95_low"] < d["mean"] < d["ci95_high"]
    o = s["fastgan"]["nn1_embed_minus_oracle"]  # seed 3 has no oracle run: not paired
    assert o["mean"] == pytest.approx(0.1667, abs=1e-4) and o["max"] == pytest.approx(0.2)
    assert s["dcgan"]["nn1_embed_minus_oracle"]["mean"] == pytest.approx(0.3)
    assert s["phantom-oracle"]["nn1_embed_minus_dcgan"]["mean"] == pytest.approx(-0.3)
    assert "nn1_embed_minus_oracle" not in s["phantom-oracle"] and "nn1_embed_minus_dcgan" not in s["dcgan"]
    assert not any(k.endswith(("_minus_dcgan", "_minus_oracle")) for k in s["real-unseen"])


def test_the_budget_curve_reads_each_budget_paired_within_it_over_the_shared_seeds(tmp_path: Path) -> None:
    """bench_generators --curve: one row per (budget, family), sorted by budget, over the seeds every
    file ran; each family's distance from the DCGAN and the perfect generator is paired per seed at
    its own budget; files of one budget, or a file without the store, are one clear error."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import bench_generators as bg
    finally:
        sys.path.remove(str(BENCHMARKS))
    import json

    def run(value: float, steps: int) -> dict:
        return {"steps": steps, "chosen": {m: value for m in bg.REPORTED}}

    def results(path: Path, budget: float, dcgan: list[float], fastgan: list[float]) -> Path:
        runs = {"dcgan": {str(s): run(v, 100) for s, v in enumerate(dcgan)},
                "fastgan": {str(s): run(v, 50) for s, v in enumerate(fastgan)},
                "phantom-oracle": {str(s): run(0.4, 0) for s in range(len(dcgan))}}
        path.write_text(json.dumps({"stores": {"phantom64": {"budget_cpu_seconds": budget, "runs": runs}}}))
        return path

    big = results(tmp_path / "x4.json", 138.0, [0.50, 0.52, 0.48], [0.56, 0.58, 0.54])
    small = results(tmp_path / "x1.json", 34.5, [0.58, 0.60, 0.56, 0.9], [0.50, 0.52, 0.51, 0.1])  # seed 3: only here
    curve = bg.budget_curve([big, small], "phantom64", families=["fastgan"])
    assert curve["seeds"] == [0, 1, 2]  # seed 3 is not in every file
    rows = curve["rows"]
    assert [(r["budget_cpu_seconds"], r["family"]) for r in rows] == [(34.5, "fastgan"), (138.0, "fastgan")]
    low, high = rows
    assert low["nn1_embed_patient"]["mean"] == pytest.approx(0.51)
    assert low["nn1_embed_patient_minus_dcgan"]["mean"] == pytest.approx(-0.07)  # FastGAN ahead at the small budget
    assert high["nn1_embed_patient_minus_dcgan"]["mean"] == pytest.approx(0.06)  # behind at the large one
    assert high["nn1_embed_patient_minus_oracle"]["mean"] == pytest.approx(0.16)
    assert high["nn1_embed_patient_minus_dcgan"]["ci95_low"] > 0  # the same +0.06 in every seed: resolved
    assert low["steps"]["mean"] == 50 and "| 34.5 | fastgan | 50 | 0.510 |" in bg._curve_table(curve)
    with pytest.raises(SystemExit, match="share a budget"):
        bg.budget_curve([big, big], "phantom64")
    with pytest.raises(SystemExit, match="not a bench_generators.py results file with store 'pocus'"):
        bg.budget_curve([big], "pocus")


def test_the_phantom_audit_bench_releases_new_patients_or_the_audited_members(tmp_path: Path) -> None:
    """bench_audit_phantom's known answers: the ``perfect`` folder holds frames of new patients only
    (none of the store's frames), the ``copier`` folder only frames of the members at the fraction
    (the class's training patients ``train@F`` of the audit); the summary counts decisions per cell."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import bench_audit_phantom as ba
        import bench_generators as bg
    finally:
        sys.path.remove(str(BENCHMARKS))
    import numpy as np

    from lusynth.data.framestore import open_store
    from lusynth.data.ingest import ingest
    from lusynth.data.phantom import PhantomParams

    small = dict(clips_per_patient=1, frames_per_clip=2)
    ingest(None, tmp_path / "s", phantom=PhantomParams(patients=12, **small))
    ingest(None, tmp_path / "f", phantom=PhantomParams(patients=20, **small))
    store, more = open_store(tmp_path / "s"), open_store(tmp_path / "f")
    fresh = {label: bg.fresh_patient_frames(store, more, label) for label in store.classes}
    known = {f.tobytes() for f in np.asarray(store.frames)}
    perfect = ba.synthetic(store, fresh, "perfect", 1.0, 4, seed=0)
    assert sorted(perfect) == sorted(store.classes) and all(len(v) == 4 for v in perfect.values())
    assert not any(f.tobytes() in known for v in perfect.values() for f in v)
    copier = ba.synthetic(store, fresh, "copier", 0.5, 6, seed=0)
    for label, frames in copier.items():
        members = {f.tobytes() for f in ba.member_frames(store, label, 0.5)}
        unseen = {f.tobytes() for role in ("val", "test") for f in np.asarray(store.frames[store.view(0, role, label=label)])}
        assert members and all(f.tobytes() in members for f in frames) and not members & unseen
        assert members < {f.tobytes() for f in ba.member_frames(store, label, 1.0)}  # half the training patients
    folder = ba.write_folder(tmp_path / "syn", copier)
    assert sorted(p.name for p in folder.iterdir()) == sorted(store.classes) and len(list((folder / store.classes[0]).glob("*.png"))) == 6
    runs = [{"generator": "perfect", "fraction": 0.5, "decision": d, "checks": {"copy_rate": 0.0}} for d in ("pass", "insufficient_evidence")]
    runs.append({"generator": "copier", "fraction": 0.5, "decision": "fail", "checks": {"copy_rate": 1.0}})
    t = ba.summarise(runs)
    assert t["perfect@0.5"]["n"] == 2 and t["perfect@0.5"]["fail"]["rate"] == 0 and t["perfect@0.5"]["pass"]["rate"] == 0.5
    assert t["copier@0.5"]["fail"]["rate"] == 1 and t["copier@0.5"]["median_copy_rate"] == 1.0
