"""Reliability under careless and hostile use (issue 15): one table of what went wrong.

    .venv/bin/python benchmarks/bench_reliability.py     # about 2-4 minutes on 2 cores; loopback only

Every ingest runs as the real CLI (``lusynth ingest``) in its own process, with a private TMPDIR,
no tracking and no stage cache. Rows:

- inputs tried: the malformed corpus (tests/data/corpus.py: bad files, damaged copies of every
  decodable file, a hostile folder), ingested in folder mode and in CSV mode, plus malformed labels
  CSVs and ``--out`` abuse, each one CLI run;
- crashes: a run that exits other than 0 or 2 (2 = the clean one-line InputError) or prints a
  traceback, plus any exception other than RejectedInput when each input is decoded on its own;
- files lost: SHA-256 of every file in the source and in a sentinel folder ("a thesis") before
  and after all runs, including ``--out`` = the source, its parent, the thesis folder, ``.``, an
  existing file, with and without ``--force``;
- files unaccounted: inputs without a report line (folder and CSV mode);
- bytes leaked to temp: the private TMPDIR after all runs, and temporary folders left beside the
  output after ``kill -9`` of an ingest (phantom; s3:// through a loopback moto server) followed by
  a second run (the bytes a kill leaves are shown too: the next run removes them);
- peak RSS of ingesting a folder holding the 140 KB 12000x12000 PNG (rejected from its header);
- serving under abuse, from ``benchmarks/serve_abuse.py`` when it exists.

Results: benchmarks/results/reliability.json.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
sys.path[:0] = [str(ROOT), str(HERE)]

CLI = [sys.executable, "-c", "import sys; from lusynth.cli import main; sys.exit(main())"]
RUN_LIMIT_S = 120  # one CLI run; the whole benchmark stays well under 5 minutes


class Bench:
    """Runs CLI ingests with a private TMPDIR and tallies crashes."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.tmpdir = work / "private-tmp"
        self.tmpdir.mkdir()
        self.env = {**os.environ, "TMPDIR": str(self.tmpdir), "OMP_NUM_THREADS": "1", "LUSYNTH_STAGE_CACHE": "off",
                    "PYTHONWARNINGS": "ignore", "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
        self.runs = 0
        self.crashes: list[str] = []

    def ingest(self, *args: str, cwd: Path | None = None, what: str = "") -> subprocess.CompletedProcess[str]:
        """One ``lusynth ingest`` run; a non-clean exit or a traceback counts as a crash."""
        self.runs += 1
        cmd = [*CLI, "ingest", *args, "--quiet", "--no-track", "--no-cache"]
        try:
            res = subprocess.run(cmd, env=self.env, cwd=cwd or self.work, capture_output=True, text=True, timeout=RUN_LIMIT_S)
        except subprocess.TimeoutExpired:
            self.crashes.append(f"{what or args}: hung for {RUN_LIMIT_S} s")
            return subprocess.CompletedProcess(cmd, -1, "", "timeout")
        if res.returncode not in (0, 2) or "Traceback" in res.stderr:
            self.crashes.append(f"{what or args}: exit {res.returncode}: {res.stderr.strip().splitlines()[-1:]}")
        return res


_BATCH = r"""
import contextlib, io, json, os, sys, traceback
from lusynth.cli import main
out = []
for argv, cwd in json.loads(sys.stdin.read()):
    err = io.StringIO()
    here = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = main(argv)
    except BaseException:
        rc, err = -1, io.StringIO(traceback.format_exc())
    finally:
        os.chdir(here)
    out.append([rc, err.getvalue()])
print(json.dumps(out))
"""


def ingest_batch(bench: Bench, runs: list[tuple[list[str], Path | None, str]]) -> list[int]:
    """Many ``lusynth ingest`` runs through the CLI's ``main`` in one child process (one interpreter
    start instead of one per run); exit codes as the console script would return them."""
    jobs = [(["ingest", *args, "--quiet", "--no-track", "--no-cache"], str(cwd or bench.work)) for args, cwd, _ in runs]
    res = subprocess.run([sys.executable, "-c", _BATCH], input=json.dumps(jobs), env=bench.env, cwd=bench.work,
                         capture_output=True, text=True, timeout=RUN_LIMIT_S * 2)
    bench.runs += len(runs)
    if res.returncode != 0:
        bench.crashes.append(f"batch child exit {res.returncode}: {res.stderr.strip().splitlines()[-1:]}")
        return [-1] * len(runs)
    codes = []
    for (rc, err), (_, _, what) in zip(json.loads(res.stdout.strip().splitlines()[-1]), runs, strict=True):
        if rc not in (0, 2) or "Traceback" in err:
            bench.crashes.append(f"{what}: exit {rc}: {err.strip().splitlines()[-1:]}")
        codes.append(rc)
    return codes


def _checksums(*roots: Path) -> dict[str, str]:
    sums = {}
    for root in roots:
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                p = Path(dirpath) / name
                if p.is_file() and not p.is_symlink():
                    sums[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return sums


def _bytes_under(root: Path, pattern: str = "*") -> int:
    total = 0
    for p in root.glob(pattern):
        for dirpath, _dirs, files in os.walk(p) if p.is_dir() else [(str(p.parent), [], [p.name])]:
            for name in files:
                f = Path(dirpath) / name
                if f.is_file() and not f.is_symlink():
                    total += f.stat().st_size
    return total


def _noise_png(path: Path, seed: int) -> None:
    import numpy as np
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(1, 255, (72, 64), dtype=np.uint8)).save(path)


def build_source(data: Path) -> list[str]:
    """The folder-mode source: corpus, damaged copies, hostile entries and 4 good patients per class.
    Returns every input as the report names it."""
    from tests.data.corpus import build_bad_input_corpus, build_hostile_folder, build_mutated_corpus

    inputs = [f"a/corpus/{rel}" for rel in build_bad_input_corpus(data / "a" / "corpus")]
    inputs += [f"b/{rel}" for rel in build_mutated_corpus(data / "b")]
    inputs += list(build_hostile_folder(data))
    for c in "ab":
        for p in range(4):
            _noise_png(data / c / f"good{c}{p}" / "0.png", seed=zlib.crc32(f"{c}{p}".encode()))
            inputs.append(f"{c}/good{c}{p}/0.png")
    return inputs


def unaccounted(report: dict[str, Any], inputs: list[str]) -> int:
    """Inputs with no report line: not accepted and not named among the rejected."""
    named = {r["file"] for r in report.get("rejected", [])}
    return max(0, len(inputs) - int(report.get("files_accepted", 0)) - len(named & set(inputs)))


def decode_each(root: Path, inputs: list[str]) -> list[str]:
    """Decode every input on its own in a child process; the exceptions other than RejectedInput."""
    code = r"""
import json, sys
from pathlib import Path
from lusynth.data.ingest import IngestParams, _decode
from lusynth.data.sources import SourceItem
from lusynth.errors import RejectedInput
root, names = Path(sys.argv[1]), json.loads(sys.stdin.read())
bad = []
for rel in names:
    p = root / rel
    if not p.is_file() or p.is_symlink():
        continue  # folders, FIFOs, links: the listing reports them; opening a FIFO would block
    try:
        _decode(SourceItem(p, rel, "a", "p", "v"), IngestParams())
    except RejectedInput:
        pass
    except BaseException as exc:
        bad.append(f"{rel}: {type(exc).__name__}: {exc}")
print(json.dumps(bad))
"""
    res = subprocess.run([sys.executable, "-c", code, str(root)], input=json.dumps(inputs), capture_output=True, text=True,
                         timeout=RUN_LIMIT_S, env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"})
    if res.returncode != 0:
        return [f"decode child exit {res.returncode}: {res.stderr.strip().splitlines()[-1:]}"]
    return json.loads(res.stdout)


BAD_CSVS: dict[str, bytes] = {
    "latin1.csv": "path,label,patient_id\na/good_a0/0.png,a,Jos\xe9\n".encode("latin-1"),
    "nul.csv": b"path,label,patient_id\nx.png,a,p\0\n",
    "empty.csv": b"",
    "header_only.csv": b"path,label,patient_id\n",
    "wrong_columns.csv": b"file;diagnosis\nx.png;a\n",
    "binary.csv": bytes(range(256)) * 4,
    "quotes.csv": b'path,label,patient_id\n"unterminated,a,p\n',
    "outside.csv": b"path,label,patient_id\n/etc/passwd,a,p\n../../etc/hostname,a,q\n",
}


def kill_then_rerun(bench: Bench, source: str | None, out: Path, ready: str, extra: tuple[str, ...] = ()) -> dict[str, int]:
    """Start an ingest, ``kill -9`` it once ``ready`` (a glob under out's parent; the store's atomic
    folder: the scratch is complete by then) matches, run it again;
    bytes of temporary folders beside the output right after the kill and after the second run."""
    args = ([source] if source else []) + ["--out", str(out), *extra]
    cmd = [*CLI, "ingest", *args, "--quiet", "--no-track", "--no-cache"]
    proc = subprocess.Popen(cmd, env=bench.env, cwd=bench.work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None and not list(out.parent.glob(ready)):
        time.sleep(0.01)
    killed = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    temp_glob = ".*tmp-*"
    after_kill = _bytes_under(out.parent, temp_glob)
    bench.ingest(*args, what=f"rerun after kill -9 of {source or 'phantom'}")
    return {"killed_mid_run": int(killed), "bytes_left_by_kill": after_kill, "bytes_left_after_rerun": _bytes_under(out.parent, temp_glob)}


def s3_kill(bench: Bench, data: Path) -> dict[str, int] | str:
    """The kill -9 case with an s3:// source (its raw download is the scratch), on a loopback moto server."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        return "moto not installed"
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        fake = "bench"  # moto accepts any credentials
        bench.env |= {"LUSYNTH_S3_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": fake,
                      "AWS_SECRET_ACCESS_KEY": fake, "AWS_DEFAULT_REGION": "us-east-1"}
        import boto3

        s3 = boto3.client("s3", endpoint_url=f"http://{host}:{port}", aws_access_key_id=fake,
                          aws_secret_access_key=fake, region_name="us-east-1")
        s3.create_bucket(Bucket="lus")
        for p in sorted(data.rglob("*")):
            if p.is_file() and not p.is_symlink() and "\n" not in p.name and p.name.isascii():
                s3.upload_file(str(p), "lus", f"raw/{p.relative_to(data).as_posix()}")
        out = bench.work / "s3run" / "frames"
        out.parent.mkdir()
        return kill_then_rerun(bench, "s3://lus/raw", out, ".tmp-frames-*", ("--positive-class", "a"))
    finally:
        server.stop()


def bomb_rss(bench: Bench) -> dict[str, float]:
    """Peak RSS (MB) of a CLI ingest of a small folder with and without the 12000x12000 PNG."""
    from tests.data.corpus import BOMB_SIDE, bomb_png

    peaks = {}
    for with_bomb in (False, True):
        src = bench.work / f"bomb-{with_bomb}"
        for c in "ab":
            for p in range(3):
                _noise_png(src / c / f"{c}{p}" / "0.png", seed=zlib.crc32(f"{c}{p}bomb".encode()))
        if with_bomb:
            bomb_png(src / "a" / "a0" / "bomb.png", BOMB_SIDE, BOMB_SIDE)
        cmd = [*CLI, "ingest", str(src), "--out", str(bench.work / f"bomb-out-{with_bomb}"), "--positive-class", "a",
               "--quiet", "--no-track", "--no-cache", "--workers", "1"]
        # a wrapper child, so RUSAGE_CHILDREN is this ingest's peak alone
        code = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]).returncode; "
                "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024); sys.exit(r)")
        res = subprocess.run([sys.executable, "-c", code, *cmd], env=bench.env, capture_output=True, text=True, timeout=RUN_LIMIT_S)
        bench.runs += 1
        if res.returncode != 0:
            bench.crashes.append(f"bomb ingest: exit {res.returncode}: {res.stderr.strip().splitlines()[-1:]}")
        peaks["with_bomb" if with_bomb else "without"] = float(res.stdout.strip().splitlines()[-1]) if res.stdout.strip() else float("nan")
    return peaks


def _num(value: Any, digits: int = 0) -> str:
    """A number for the table; anything else (None: not measured) as text."""
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else str(value)


def serving_rows() -> dict[str, Any] | None:
    """The serving abuse measurements from benchmarks/serve_abuse.py, None when the file is absent."""
    if not (HERE / "serve_abuse.py").is_file():
        return None
    import serve_abuse  # written by the serving work; absent before its merge

    result: dict[str, Any] = serve_abuse.run(clients=100)
    return result


def main() -> int:
    """Run every measurement, print the table, write results/reliability.json."""
    t0 = time.monotonic()
    timings: dict[str, float] = {}

    def phase(name: str) -> None:
        timings[name] = round(time.monotonic() - t0 - sum(timings.values()), 1)
        print(f"[{time.monotonic() - t0:5.0f} s] {name} done", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="bench-reliability-") as tmp:
        work = Path(tmp)
        bench = Bench(work)
        data, thesis = work / "ws" / "data", work / "ws" / "thesis"
        inputs = build_source(data)
        thesis.mkdir(parents=True)
        (thesis / "chapter1.tex").write_text("\\chapter{Years of work}\n" * 100)
        (thesis / "figures").mkdir()
        (thesis / "figures" / "fig1.png").write_bytes(os.urandom(4096))
        before = _checksums(data, thesis)
        phase("build")
        tmp_before = _bytes_under(bench.tmpdir)

        # folder mode over every input
        folder = bench.ingest(str(data), "--out", str(work / "runs" / "folder"), "--positive-class", "a", what="folder mode")
        report_path = work / "runs" / "folder-report" / "ingest_report.json"
        folder_report = json.loads(report_path.read_text()) if report_path.is_file() else {}
        lost_folder = unaccounted(folder_report, inputs) if folder_report else len(inputs)
        phase("folder mode")
        # CSV mode over the regular files (links, folders and FIFOs cannot be CSV rows)
        listed = [i for i in inputs if (data / i).is_file() and not (data / i).is_symlink() and "\n" not in i
                  and i.isascii() and not i.endswith(".csv")]
        import csv

        labels = data / "bench_labels.csv"
        with open(labels, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["path", "label", "patient_id"])
            for i in listed:
                w.writerow([i, i.split("/")[0], i.split("/")[1]])
        before[str(labels)] = hashlib.sha256(labels.read_bytes()).hexdigest()
        bench.ingest(str(labels), "--out", str(work / "runs" / "csv"), "--positive-class", "a", what="CSV mode")
        csv_report_path = work / "runs" / "csv-report" / "ingest_report.json"
        csv_report = json.loads(csv_report_path.read_text()) if csv_report_path.is_file() else {}
        lost_csv = unaccounted(csv_report, listed) if csv_report else len(listed)
        phase("csv mode")
        decode_crashes = decode_each(data, inputs)
        phase("decode each")

        # malformed labels CSVs (each must end in one clean line, exit 2, or a report) and --out
        # abuse (each must be refused, exit 2, and nothing may change), in one child process
        csv_dir = work / "csvs"
        csv_dir.mkdir()
        batch: list[tuple[list[str], Path | None, str]] = []
        for name, blob in BAD_CSVS.items():
            (csv_dir / name).write_bytes(blob)
            batch.append(([str(csv_dir / name), "--out", str(work / "runs" / f"csv-{name}"), "--positive-class", "a"], None, name))
        abuse = {"--out = the source": ([str(data), "--out", str(data)], None),
                 "--out = its parent": ([str(data), "--out", str(data.parent)], None),
                 "--out = a folder with a thesis": ([str(data), "--out", str(thesis)], None),
                 "--out = . (inside the thesis)": ([str(data), "--out", "."], thesis),
                 "--out = an existing file": ([str(data), "--out", str(thesis / "chapter1.tex")], None),
                 "--out = the source, --force": ([str(data), "--out", str(data), "--force"], None),
                 "--out = its parent, --force": ([str(data), "--out", str(data.parent), "--force"], None)}
        batch += [([*args, "--positive-class", "a"], cwd, what) for what, (args, cwd) in abuse.items()]
        codes = ingest_batch(bench, batch)
        refused = sum(rc == 2 for rc in codes[len(BAD_CSVS):])
        phase("csvs + abuse")
        after = _checksums(data, thesis)
        files_lost = sum(1 for p, h in before.items() if after.get(p) != h)

        # kill -9 mid-run, then run again
        phantom_out = work / "killrun" / "frames"
        phantom_out.parent.mkdir()
        phantom_kill = kill_then_rerun(bench, None, phantom_out, ".tmp-frames-*", ("--patients", "12", "--frames-per-clip", "4"))
        phase("phantom kill")
        s3 = s3_kill(bench, data)
        phase("s3 kill")
        tmp_after = _bytes_under(bench.tmpdir)
        rss = bomb_rss(bench)
        phase("bomb rss")
        inputs_tried = len(inputs) + len(BAD_CSVS) + len(abuse)

    serving = serving_rows()
    crashes = bench.crashes + decode_crashes
    rows: list[tuple[str, str, str]] = [
        ("inputs tried", str(inputs_tried), f"{len(inputs)} files/entries (corpus, damaged copies, hostile folder), "
         f"{len(BAD_CSVS)} malformed CSVs, {len(abuse)} --out abuses; {bench.runs} CLI runs"),
        ("crashes", str(len(crashes)), "exit other than 0/2 or a traceback; exceptions other than RejectedInput per input"),
        ("files lost", str(files_lost), f"of {len(before)} checksummed (source + thesis); {refused}/{len(abuse)} --out abuses refused"),
        ("files unaccounted (folder mode)", str(lost_folder), f"of {len(inputs)} inputs; ingest exit {folder.returncode}"),
        ("files unaccounted (CSV mode)", str(lost_csv), f"of {len(listed)} listed files"),
        ("bytes leaked to TMPDIR", str(tmp_after - tmp_before), "private TMPDIR, after every run and both kills"),
        ("bytes left by kill -9 (phantom)", str(phantom_kill["bytes_left_by_kill"]),
         f"beside the output; after the next run: {phantom_kill['bytes_left_after_rerun']}"),
    ]
    if isinstance(s3, dict):
        rows.append(("bytes left by kill -9 (s3:// raw download)", str(s3["bytes_left_by_kill"]),
                     f"beside the output; after the next run: {s3['bytes_left_after_rerun']}"))
    else:
        rows.append(("bytes left by kill -9 (s3://)", "not measured", s3))
    rows.append(("peak RSS, ingest with a 140 KB 12000² PNG", f"{rss['with_bomb']:.0f} MB",
                 f"without it: {rss['without']:.0f} MB (rejected as too_many_pixels from the header)"))
    if serving is None:
        serving_line = "serving: not measured (benchmarks/serve_abuse.py absent)"
    else:
        serving_line = ""
        rows += [("serving RSS before / peak / after abuse",
                  f"{_num(serving.get('rss_before_mb'))} / {_num(serving.get('rss_peak_mb'))} / {_num(serving.get('rss_after_mb'))} MB",
                  "serve_abuse.run(clients=100)"),
                 ("/healthz p99 under load", f"{_num(serving.get('healthz_p99_ms'), 1)} ms", ""),
                 ("slow clients", _num(serving.get("slow_clients")), f"a slow body is cut after {_num(serving.get('slow_body_cut_s'), 1)} s")]
    print("| measure | value | note |\n|---|---|---|")
    for name, value, note in rows:
        print(f"| {name} | {value} | {note} |")
    if serving_line:
        print(f"\n{serving_line}")
    for c in crashes:
        print(f"crash: {c}", file=sys.stderr)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "reliability.json").write_text(json.dumps({
        "inputs_tried": inputs_tried, "cli_runs": bench.runs, "crashes": crashes, "files_lost": files_lost,
        "files_checksummed": len(before), "out_abuse_refused": refused, "out_abuse_cases": list(abuse),
        "files_unaccounted_folder": lost_folder, "files_unaccounted_csv": lost_csv,
        "bytes_leaked_tmpdir": tmp_after - tmp_before, "kill_phantom": phantom_kill, "kill_s3": s3,
        "peak_rss_mb": rss, "serving": serving, "seconds": round(time.monotonic() - t0, 1), "seconds_by_phase": timings,
    }, indent=2, sort_keys=True) + "\n")
    return 0 if not crashes and not files_lost and not lost_folder and not lost_csv and tmp_after == tmp_before else 1


if __name__ == "__main__":
    sys.exit(main())
