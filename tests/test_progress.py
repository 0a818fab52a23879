"""Progress outside a terminal (KFP task logs): periodic plain lines with counts, rate and ETA."""

from __future__ import annotations

from lusynth.progress import progress


def test_plain_lines_when_not_a_terminal(capsys) -> None:
    with progress(4, "train_gan[x]", unit="steps", every_s=0.0) as advance:
        for i in range(4):
            advance(1, loss_d=0.5 + i)
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("[train_gan[x]] 1/4 steps (25%)")
    assert err[-1].startswith("[train_gan[x]] 4/4 steps (100%)") and "loss_d=3.5" in err[-1] and "ETA" in err[-1]


def test_throttled_and_disabled(capsys) -> None:
    with progress(1000, "x", every_s=3600) as advance:
        for _ in range(1000):
            advance()
    assert len(capsys.readouterr().err.strip().splitlines()) == 1  # only the final line
    with progress(10, "y", enabled=False) as advance:
        advance()
    assert capsys.readouterr().err == ""


def test_note_prints_one_status_line_or_nothing(capsys) -> None:
    from lusynth.progress import note

    note("evaluate", "auditing gan a f=1")
    note("evaluate", "hidden", enabled=False)
    assert capsys.readouterr().err == "evaluate: auditing gan a f=1\n"
