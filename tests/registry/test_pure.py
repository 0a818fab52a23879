"""The gate and the model cards are a pure core: importing them pulls in neither mlflow nor torch."""

from __future__ import annotations

import os
import subprocess
import sys

from lusynth.registry import CHALLENGER, AUCEstimate, ClassifierCandidate, GateDecision, RegistryNames, nominate
from lusynth.registry.cards import classifier_model_card


def test_gate_and_cards_import_without_mlflow() -> None:
    code = ("import sys, lusynth.registry.gate, lusynth.registry.cards; "
            "print(sorted(m for m in ('mlflow', 'torch', 'onnx', 'onnxruntime') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy(), check=True)
    assert res.stdout.strip() == "[]", res.stdout + res.stderr


def test_registry_names_keep_the_names_models_were_registered_under() -> None:
    assert RegistryNames().generator("no_consolidation") == "lusynth-lus-generator-no_consolidation"
    assert RegistryNames().generator("B lines/v2.1") == "lusynth-lus-generator-B-lines-v2.1"


def test_nominee_is_the_best_validation_auc_and_real_wins_a_tie(tmp_path) -> None:  # type: ignore[no-untyped-def]
    def cand(arm: str, auc: float, passed: bool | None = True) -> ClassifierCandidate:
        return ClassifierCandidate(tmp_path, arm, 1.0, 0, auc, "d", privacy_passed=passed)

    assert nominate({"real": cand("real", 0.7), "synthetic": cand("synthetic", 0.8)}) == "synthetic"
    assert nominate({"real+synthetic": cand("real+synthetic", 0.8), "real": cand("real", 0.8)}) == "real"
    assert nominate({"real": cand("real", float("nan")), "synthetic": cand("synthetic", 0.5)}) == "synthetic"
    # an arm whose synthetic data did not pass its audit (or has none) is not nominated over an allowed one
    for passed in (False, None):
        assert nominate({"real+aug": cand("real+aug", 0.7), "synthetic": cand("synthetic", 0.99, passed)}) == "real+aug"
    assert nominate({"synthetic": cand("synthetic", 0.9, False), "real+synthetic": cand("real+synthetic", 0.8, False)}) == "synthetic"


def test_classifier_card_states_the_decision_and_the_missing_audit(tmp_path) -> None:  # type: ignore[no-untyped-def]
    c = ClassifierCandidate(tmp_path, "synthetic", 0.5, 1, 0.8, "digest-r", synthetic_digests=["digest-s"],
                            holdout={"auc": {"value": 0.8, "lo": 0.7, "hi": 0.9}}, classes=["a", "b"], image_size=64)
    assert c.holdout_auc == AUCEstimate(0.8, 0.7, 0.9)
    card = classifier_model_card(c, gate=GateDecision(CHALLENGER, "no audit"), onnx_sha256="0" * 64,
                                 pipeline_run_id=None, lineage={"lusynth.profile": "demo"})
    assert "Decision: **challenger** — no audit." in card and "**No privacy audit found**" in card
    assert "| auc | 0.800 (0.700–0.900) | n/a |" in card and "- lusynth.profile: `demo`" in card


def test_generator_card_names_the_exported_architecture_and_an_older_export_is_a_dcgan() -> None:
    from lusynth.registry.cards import generator_model_card

    meta = {"lusynth.label": "a", "lusynth.nz": "100", "lusynth.image_size": "64"}
    gate = GateDecision(CHALLENGER, "no audit")
    fast = generator_model_card({**meta, "lusynth.architecture": "Unconditional FastGAN-lite generator (...)"}, None, gate=gate,
                                onnx_sha256="0" * 64, pipeline_run_id=None)
    assert "Unconditional FastGAN-lite generator (...). Input `z`" in fast and "DCGAN" not in fast
    old = generator_model_card(meta, None, gate=gate, onnx_sha256="0" * 64, pipeline_run_id=None)  # exported before FastGAN
    assert "Unconditional DCGAN generator (Yu et al. 2023). Input `z`" in old
