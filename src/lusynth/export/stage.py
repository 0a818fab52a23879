"""The ``export_register`` stage: export the chosen classifiers and generators to ONNX, register
them (promotion gate, model cards, aliases), and record what was done as :class:`ExportedModels`.

Which models: the best classifier per arm by validation AUC (:func:`lusynth.registry.best_per_arm`)
and, per class, the generator with the largest training fraction. The stage's output directory
holds the ``.onnx`` files and ``export.json`` (:meth:`ExportedModels.save` / :meth:`ExportedModels.load`);
callers read it through :meth:`ExportedModels.load`, never by file name.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from lusynth.errors import InputError
from lusynth.keys import Cell, GanKey, family_tag
from lusynth.registry.client import RegisteredVersion, register_classifier, register_generator
from lusynth.registry.gate import NON_INFERIORITY_MARGIN, ClassifierCandidate, RegistryNames, best_per_arm, nominate
from lusynth.util import read_json, slugify

__all__ = ["EXPORT_JSON", "ExportedFile", "ExportedModels", "export_and_register", "load_candidates"]

EXPORT_JSON = "export.json"


@dataclass
class ExportedFile:
    """One exported ONNX file in the stage's directory and the evidence of its parity check."""

    file: str  # name inside ExportedModels.path
    sha256: str
    exporter: str  # "dynamo" | "torchscript"
    opset: int
    max_abs_diff: float
    tolerance: float
    source: str  # the classifier / GAN directory it was exported from
    val_auc: float | None = None  # classifiers only

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if d["val_auc"] is None:  # generators have none: no key, as export.json always had it
            del d["val_auc"]
        return d


@dataclass
class ExportedModels:
    """What ``lusynth export`` wrote (``path``: the directory of the .onnx files) and registered."""

    WHAT: ClassVar[str] = "an export (the output of `lusynth export`)"

    path: Path
    nominee_arm: str
    run_id: str | None  # the stage's MLflow run; None without registration
    classifiers: dict[str, ExportedFile]  # arm -> file
    generators: dict[str, ExportedFile]  # generator id (class; family-class for a family other than the DCGAN) -> file
    registered: list[RegisteredVersion]

    def save(self, dir: str | os.PathLike[str]) -> Path:
        """Write ``export.json`` into ``dir`` (deterministic JSON); its path."""
        from lusynth.atomic import dumps_json

        doc = {"nominee_arm": self.nominee_arm, "run_id": self.run_id,
               "classifiers": {k: f.to_json() for k, f in self.classifiers.items()},
               "generators": {k: f.to_json() for k, f in self.generators.items()},
               "registered": [dataclasses.asdict(v) for v in self.registered]}
        out = Path(dir) / EXPORT_JSON
        out.write_text(dumps_json(doc))
        return out

    def registered_lines(self, *, short: bool = False) -> list[str]:
        """One line per registered version: name, version, aliases, gate decision and why (``short``: the
        reason's first clause only, so a line fits a terminal; `lusynth registry show` has the rest)."""
        def why(reason: str) -> str:
            if not short:
                return reason
            first = reason.split("; ")[0]
            return first if len(first) <= 90 else first[:89] + "…"

        return [f"{v.name} v{v.version} [{', '.join(v.aliases)}]: {v.decision} — {why(v.reason)}" for v in self.registered]

    def summary(self) -> str:
        """What was exported (with the parity check) and registered, for a terminal."""
        lines = [f"classifier {arm}: {self.path / e.file} ({e.exporter}, opset {e.opset}, parity max diff {e.max_abs_diff:.2g} "
                 f"<= {e.tolerance:g})" for arm, e in self.classifiers.items()]
        lines += [f"generator {label}: {self.path / e.file} ({e.exporter}, parity max diff {e.max_abs_diff:g} <= {e.tolerance:g} "
                  "grey level)" for label, e in self.generators.items()]
        lines += [f"registered {line}" for line in self.registered_lines()]
        return "\n".join(lines)

    def markdown(self) -> str:
        """The summary as a Markdown page (the KFP UI shows it)."""
        lines = ["# Exported and registered models", ""]
        lines += [f"- {v.name} v{v.version}: {v.decision} — {v.reason}" for v in self.registered]
        lines += [f"- {arm}: {e.file} (parity max |diff| {e.max_abs_diff:.2e})" for arm, e in self.classifiers.items()]
        return "\n".join(lines) + "\n"

    def kfp_metadata(self) -> dict[str, Any]:
        return {"nominee_arm": self.nominee_arm}

    @classmethod
    def load(cls, dir: str | os.PathLike[str]) -> ExportedModels:
        """The export recorded in ``dir``; :class:`InputError` naming ``dir`` when it holds none."""
        doc = read_json(Path(dir) / EXPORT_JSON, hint="run `lusynth export` (or pass the directory its --out wrote)")
        try:
            return cls(path=Path(dir), nominee_arm=doc["nominee_arm"], run_id=doc.get("run_id"),
                       classifiers={k: ExportedFile(**v) for k, v in doc["classifiers"].items()},
                       generators={k: ExportedFile(**v) for k, v in doc["generators"].items()},
                       registered=[RegisteredVersion(**v) for v in doc["registered"]])
        except (KeyError, TypeError, AttributeError) as exc:
            raise InputError(f"{Path(dir) / EXPORT_JSON}: not an export record ({exc!r}); run `lusynth export` again") from None


# ---------------------------------------------------------------------------------------------
# the other stages' outputs this stage reads (one reader each)


def _read_classifier_metas(classifier_dirs: Sequence[str | os.PathLike[str]]) -> list[tuple[Path, dict[str, Any]]]:
    """Each directory with its ``classifier.json`` record, read once."""
    from lusynth.classifier.run import ClassifierRun

    return [(Path(d), ClassifierRun.load(d).meta) for d in classifier_dirs]


def _read_report(evaluation_dir: Path) -> dict[str, Any]:
    from lusynth.evaluate.result import Evaluation

    return Evaluation.load(evaluation_dir).report


def _holdout_store(report: dict[str, Any] | None) -> Any:
    """The real frame store the evaluation measured the holdout on, when it is reachable from here
    (a KFP task on another pod may not see it); None otherwise."""
    from lusynth.data.framestore import open_store
    from lusynth.errors import LusynthError

    where = ((report or {}).get("config") or {}).get("frames_dir")
    if not where or not Path(where).is_dir():
        return None
    try:
        store = open_store(where)
    except LusynthError:
        return None
    return store if store.digest == report["config"].get("frames_digest") else None  # type: ignore[index]


def _read_gan_meta(gan_dir: Path) -> dict[str, Any]:
    from lusynth.gan.run import GanRun

    return GanRun.load(gan_dir).to_json()


def load_candidates(classifier_dirs: Sequence[str | os.PathLike[str]], evaluation_dir: str | os.PathLike[str] | None = None
                    ) -> list[ClassifierCandidate]:
    """Candidates from classifier directories, with holdout metrics and audits from ``lusynth evaluate``'s report.json."""
    return _candidates(_read_classifier_metas(classifier_dirs), _read_report(Path(evaluation_dir)) if evaluation_dir is not None else None)


def _gan_rank(meta: dict[str, Any]) -> tuple[float, int, int]:
    k = GanKey.from_dict(meta)
    return (-k.fraction, k.fold, k.gan_seed)


def generator_id(key: GanKey) -> str:
    """What export names one class's generator of one family by: the class for the paper's DCGAN
    (as before families), ``family-class`` otherwise (file ``generator-<id>.onnx``)."""
    return family_tag(key.generator, "", after="-") + key.label


def _cell_of(c: dict[str, Any]) -> Cell:
    """The grid cell of a report's classifier entry (its ``fold`` there is the outer fold of its
    repeat; the cell's is the split index, which the entry's name and directory carry)."""
    return Cell(str(c["arm"]), c["fraction"], int(c["seed"]), c.get("ratio", 0) or 0, c.get("gan_seed", 0) or 0,
                int(c.get("split", c.get("fold", 0)) or 0), c.get("generator") or "dcgan")


def _candidates(classifiers: Sequence[tuple[Path, dict[str, Any]]], report: dict[str, Any] | None) -> list[ClassifierCandidate]:
    by_dir: dict[str, dict[str, Any]] = {}
    by_key: dict[Cell, dict[str, Any]] = {}
    audits: list[dict[str, Any]] = []
    cfg: dict[str, Any] = {}
    if report is not None:
        for c in report.get("classifiers", []):
            by_dir[str(Path(c.get("dir", "")).resolve())] = c
            by_key[_cell_of(c)] = c
        audits = list(report.get("audits", []))
        cfg = report.get("config", {})
    out = []
    for d, meta in classifiers:
        data = meta.get("data") or {}
        real = str(data.get("real_digest", ""))
        synthetic = sorted({v for v in (data.get("store_digests") or {}).values() if v != real})
        cand = ClassifierCandidate(
            classifier_dir=d, arm=str(meta["arm"]), fraction=float(meta["fraction"]), seed=int(meta["seed"]),
            val_auc=float(meta.get("val_auc", float("nan"))), data_digest=real, synthetic_digests=synthetic,
            threshold=float(meta.get("threshold", 0.5)), classes=list(meta.get("classes", [])),
            image_size=int(meta.get("image_size", 0)), training_run_id=meta.get("mlflow_run_id") or None)
        ev = by_dir.get(str(d.resolve())) or by_key.get(Cell.from_dict(meta))
        if ev is not None:
            metrics = ev.get("metrics", {})
            cand.holdout = (metrics.get("frame") or {}).get("val") or {}
            cand.holdout_patient = (metrics.get("patient") or {}).get("val") or {}
            cand.ci = float((cfg.get("params") or {}).get("ci", 0.95))
            # this classifier's own test patients (its fold's; no model of that fold saw them), else the report's total
            cand.n_holdout_frames = ev.get("n_test_frames", cfg.get("n_holdout_frames"))
            cand.n_holdout_patients = ev.get("n_test_patients", cfg.get("n_holdout_patients"))
        if cand.uses_synthetic and report is not None:
            used = [a for a in audits if a.get("synthetic_digest") in synthetic]
            cand.audits = used
            missing = [s for s in synthetic if s not in {a.get("synthetic_digest") for a in used}]
            if missing or not synthetic:
                cand.privacy_passed = False
                cand.privacy_reasons = [f"no privacy audit of synthetic store {s}" for s in missing] or \
                    ["arm uses synthetic data but the classifier records no synthetic store"]
            else:
                cand.privacy_passed = all(bool(a.get("gate", {}).get("passed")) for a in used)
                cand.privacy_reasons = [f"{a.get('name')}: {r}" for a in used for r in a.get("gate", {}).get("reasons", [])]
        out.append(cand)
    return out


# ---------------------------------------------------------------------------------------------
# the stage


def _exported(r: Any, source: Path, val_auc: float | None = None) -> ExportedFile:
    """An :class:`~lusynth.export.onnx_export.ExportResult` as the stage records it."""
    return ExportedFile(file=r.path.name, sha256=r.sha256, exporter=r.exporter, opset=r.opset, max_abs_diff=r.max_abs_diff,
                        tolerance=r.tolerance, source=str(source), val_auc=val_auc)


def export_and_register(
    out_dir: str | os.PathLike[str],
    *,
    classifier_dirs: Sequence[str | os.PathLike[str]],
    gan_dirs: Sequence[str | os.PathLike[str]] = (),
    evaluation_dir: str | os.PathLike[str] | None = None,
    register: bool = True,
    names: RegistryNames = RegistryNames(),
    margin: float = NON_INFERIORITY_MARGIN,
    opset: int = 18,
    profile: str | None = None,
) -> ExportedModels:
    """Export the best classifier per arm and each class's generator (largest training fraction) to
    ``out_dir``; with ``register``, log them to the registry and apply the promotion gate."""
    from lusynth.atomic import atomic_dir
    from lusynth.export.onnx_export import export_classifier, export_generator
    from lusynth.tracking import PARENT_RUN_ENV, dataset_digest, dataset_name, lineage_tags, log_frame_store_input, run_name, stage_run

    if not classifier_dirs:
        raise InputError("export needs at least one classifier directory (--classifier DIR)")
    # a cell generate withheld the synthetic frames of was not trained: nothing to export
    classifiers = [(d, meta) for d, meta in _read_classifier_metas(classifier_dirs) if not meta.get("skipped")]
    if not classifiers:
        raise InputError("export: every classifier given was skipped (not trained); give at least one trained classifier")
    out_dir = Path(out_dir)
    report = _read_report(Path(evaluation_dir)) if evaluation_dir is not None else None
    best = best_per_arm(_candidates(classifiers, report))
    nominee = nominate(best)
    gans: dict[str, tuple[Path, dict[str, Any]]] = {}
    for g in gan_dirs:
        meta = _read_gan_meta(Path(g))
        gid = generator_id(GanKey.from_dict(meta))
        # per class and family: the largest fraction, then the lowest (fold, GAN seed), so the choice does not depend on argument order
        if gid not in gans or _gan_rank(meta) < _gan_rank(gans[gid][1]):
            gans[gid] = (Path(g), meta)
    # a withheld generator's gate is a failed one (generate treats it as memorising): registered with no alias
    audits = [*report.get("audits", []), *report.get("withheld", [])] if report is not None else []
    real_store = _holdout_store(report)
    digests = {"real": best[nominee].data_digest}
    versions: list[RegisteredVersion] = []
    pipeline_run_id = os.environ.get(PARENT_RUN_ENV)
    # the run (when registering) is open for the whole work, the ONNX exports and their parity checks included
    tracked = stage_run("export", local_dir=out_dir.parent, out_dir=out_dir, run_name=run_name("export_register"), data_digests=digests,
                        profile=profile, params={"margin": margin, "opset": opset, "nominee_arm": nominee,
                                                 "classifier_model": names.classifier, "generator_prefix": names.generator_prefix}) \
        if register else contextlib.nullcontext(None)
    with atomic_dir(out_dir) as tmp, tracked as tr:
        clf_results = {arm: export_classifier(c.classifier_dir, tmp / f"classifier-{slugify(arm, keep='A-Za-z0-9_-')}.onnx",
                                              opset=opset) for arm, c in best.items()}
        gen_results = {label: export_generator(d, tmp / f"generator-{slugify(label, keep='A-Za-z0-9_-')}.onnx", opset=opset)
                       for label, (d, _) in sorted(gans.items())}
        run_id = None
        if tr is not None:
            from lusynth.tracking import mlflow_client

            run_id = tr.require_live()  # registering is the work: it cannot wait in a spool
            holdout = None
            if real_store is not None:  # the holdout the logged models' metrics were measured on
                log_frame_store_input(tr, real_store, "holdout")
                holdout = (dataset_name(real_store), dataset_digest(real_store))
            client = mlflow_client(out_dir.parent)
            lineage = {k: v for k, v in lineage_tags(data_digests=digests, profile=profile).items() if not k.startswith("mlflow.")}
            # the nominee last: its gate compares against the champion a reviewer approved, never one of this run
            for arm in sorted(best, key=lambda a: a == nominee):
                v = register_classifier(client, run_id, clf_results[arm].path, best[arm], nominated=arm == nominee,
                                        names=names, margin=margin, pipeline_run_id=pipeline_run_id, lineage=lineage,
                                        holdout_dataset=holdout)
                versions.append(v)
            for gid, res in gen_results.items():
                d, meta = gans[gid]
                # the audit of this very GAN: the full key (class, fraction, GAN seed, fold, family)
                audit = next((a for a in audits if GanKey.from_dict(a) == GanKey.from_dict(meta)), None)
                versions.append(register_generator(client, run_id, res.path, audit=audit, names=names,
                                                   pipeline_run_id=pipeline_run_id,
                                                   training_run_id=meta.get("mlflow_run_id") or meta.get("run_id")))
            tr.set_tags({"lusynth.registered": ", ".join(f"{v.name} v{v.version} ({v.decision})" for v in versions)})
            # metric names take no '+' (an MLflow server refuses real+synthetic): arm and class as slugs
            tr.log_metrics({f"parity_max_abs_diff.{slugify(k, keep='A-Za-z0-9_.-')}": r.max_abs_diff
                            for k, r in {**clf_results, **gen_results}.items()})
        exported = ExportedModels(
            path=out_dir, nominee_arm=nominee, run_id=run_id,
            classifiers={arm: _exported(r, best[arm].classifier_dir, best[arm].val_auc) for arm, r in clf_results.items()},
            generators={label: _exported(r, gans[label][0]) for label, r in gen_results.items()},
            registered=versions)
        exported.save(tmp)
    return exported
