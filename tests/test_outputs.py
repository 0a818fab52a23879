"""--out never loses data: lusynth.outputs.check_replaceable, through `lusynth ingest`."""

from __future__ import annotations

from pathlib import Path

import pytest

from lusynth.cli import main


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def phantom(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("data") / "src"
    assert main(["phantom", "--out", str(src), "--patients", "8", "--clips-per-patient", "2", "--frames-per-clip", "3",
                 "--no-progress"]) == 0
    return src


def _ingest(src: Path, out: str, *extra: str) -> int:
    return main(["ingest", str(src / "labels.csv"), "--out", out, "--profile", "tiny", "--no-track", "--quiet", "--positive-class", "consolidation", *extra])


@pytest.mark.parametrize("force", [False, True])
@pytest.mark.parametrize("where", ["source", "parent"])
def test_never_the_source_or_its_parent(phantom: Path, where: str, force: bool, capsys: pytest.CaptureFixture[str]) -> None:
    target = phantom if where == "source" else phantom.parent
    before = _snapshot(target)
    assert _ingest(phantom, str(target), *(["--force"] if force else [])) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "never" in err and "Traceback" not in err
    assert _snapshot(target) == before


def test_unrelated_folder_refused_then_forced(phantom: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.docx").write_bytes(b"years of work")
    assert _ingest(phantom, str(folder)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "holds 1 file" in err and "--force" in err
    assert _snapshot(folder) == {"thesis.docx": b"years of work"}
    assert _ingest(phantom, str(folder), "--force") == 0
    assert not (folder / "thesis.docx").exists() and (folder / ".lusynth-stage.json").is_file()


def test_existing_file_refused(phantom: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "thesis.docx"
    f.write_bytes(b"x")
    for extra in ([], ["--force"]):
        assert _ingest(phantom, str(f), *extra) == 2
        assert "existing file" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis.docx"] and f.read_bytes() == b"x"


def test_current_directory_refused(phantom: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("keep")
    monkeypatch.chdir(tmp_path)
    for extra in ([], ["--force"]):
        assert _ingest(phantom, ".", *extra) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "current directory" in err
    assert _snapshot(tmp_path) == {"notes.txt": b"keep"}


def test_empty_dir_and_rerun_accepted(phantom: Path, tmp_path: Path) -> None:
    out = tmp_path / "store"
    out.mkdir()
    assert _ingest(phantom, str(out)) == 0
    assert _ingest(phantom, str(out)) == 0  # its own earlier output is replaced
    assert (out / ".lusynth-stage.json").is_file()


def test_a_folder_holding_only_version_control_ignore_files_counts_as_empty(tmp_path: Path) -> None:
    """A fresh clone of a DVC repository holds reports/plots/.gitignore (DVC names its tracked files
    there): `dvc repro` of evaluate --plots-dir reports/plots must not be refused for it."""
    from lusynth.errors import InputError
    from lusynth.outputs import check_replaceable, check_side_output

    plots = tmp_path / "plots"
    plots.mkdir()
    (plots / ".gitignore").write_text("/roc.csv\n")
    check_side_output(plots, "dir", stage="evaluate", flag="--plots-dir")
    check_replaceable(plots, stage="evaluate")
    (plots / "thesis.tex").write_text("mine")  # anything else still makes it someone's folder
    with pytest.raises(InputError, match="--plots-dir"):
        check_side_output(plots, "dir", stage="evaluate", flag="--plots-dir")
