"""bench/gpu.py's driver on the CPU, with stand-in rows: the ratios JSON, the budget, the exit
status, the model check, and a timed-out row's processes ended with it."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import gpu  # noqa: E402  (bench/ is scripts, not a package)
import gpu_report  # noqa: E402
import model_dirs  # noqa: E402
import procgroup  # noqa: E402

RATIOS = {"train_ratio_vs_trainer_fp32", "first_epoch_ratio", "study_ratio_vs_hpsearch",
          "pack_ratio_vs_one_at_a_time", "bert_base_ratio"}


def test_ratios_are_null_for_rows_that_did_not_run_and_computed_for_those_that_did():
    assert gpu_report.ratios({}) == dict.fromkeys(RATIOS)
    raw = {"single": {"poolbert": {"examples_per_s": 300.0, "epoch_examples_per_s": [150.0, 300.0,
                                                                                     300.0]},
                      "peer": {"train_examples_per_s": 200.0}},
           "study": {"peer": {"wall_s": 90.0}, "poolbert": {"wall_s": 30.0}},
           "pack": {"poolbert": {"wall_s": 30.0}},  # its --pack 1 study failed
           "bert-base": None}
    found = gpu_report.ratios(raw)
    assert found == {"train_ratio_vs_trainer_fp32": 1.5, "first_epoch_ratio": 0.5,
                     "study_ratio_vs_hpsearch": 3.0, "pack_ratio_vs_one_at_a_time": None,
                     "bert_base_ratio": None}


@pytest.fixture
def fake_rows(monkeypatch, tmp_path):
    """Rows that pass, fail and would overrun the budget; results written under tmp_path."""
    def good(b):
        b.raw["study"] = {"peer": {"wall_s": 20.0}, "poolbert": {"wall_s": 10.0}}
        b.row("good", 1.0, 2.0, "2.00x")

    def bad(b):
        raise RuntimeError("poolbert tune failed (exit 1)")

    def big(b):
        raise AssertionError("a row estimated past the budget must not start")

    monkeypatch.setattr(gpu, "ROWS", {"good": good, "bad": bad, "big": big})
    monkeypatch.setattr(gpu, "ESTIMATE_S", {"good": 1, "bad": 1, "big": 10_000})
    monkeypatch.setattr(gpu_report, "HERE", tmp_path)
    monkeypatch.delenv("OUT", raising=False)
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "vocab.txt").write_text("[PAD]\n")
    return model


def test_a_failed_row_exits_1_and_the_table_of_the_rows_that_ran_is_written(fake_rows, tmp_path):
    code = gpu.main(["--model", str(fake_rows), "--data-dir", str(tmp_path), "--rows",
                     "good,bad,big", "--budget", "300"])
    assert code == 1
    written = json.loads((tmp_path / "results" / "gpu-none.json").read_text())
    assert {k: v["status"] for k, v in written["row_times"].items()} == {
        "good": "ok", "bad": "failed", "big": "skipped"}
    assert written["ratios"]["study_ratio_vs_hpsearch"] == 2.0
    assert written["ratios"]["train_ratio_vs_trainer_fp32"] is None
    assert written["device"] == "cpu" and written["date"][:2] == "20"
    assert written["table"] == [["good", "1", "2", "2.00x"]]
    assert any(n.startswith("big: skipped, estimated 10000 s") for n in written["notes"])
    assert any("poolbert tune failed" in n for n in written["notes"])
    assert gpu.main(["--model", str(fake_rows), "--data-dir", str(tmp_path), "--rows",
                     "good"]) == 0


def test_bad_rows_or_model_folders_are_refused_with_exit_2(fake_rows, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        gpu.parse_args(["--rows", "good,nope"])
    assert exc.value.code == 2 and "no such row: nope" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        gpu.parse_args(["--rows", "good", "--model", str(tmp_path)])
    assert exc.value.code == 2 and "holds no config.json" in capsys.readouterr().err


def test_a_model_folder_without_tokenizer_files_falls_back_to_the_stand_in(fake_rows, tmp_path,
                                                                           monkeypatch):
    bench = gpu.Bench(gpu.parse_args(["--rows", "good", "--data-dir", str(tmp_path)]))
    assert gpu.choose_model(bench, str(fake_rows)) == str(fake_rows.resolve())
    (fake_rows / "vocab.txt").unlink()
    monkeypatch.setattr(model_dirs, "stand_in", lambda target, train: target)
    assert gpu.choose_model(bench, str(fake_rows)) == str(bench.work / "minilm-shaped-random")
    assert "no tokenizer files" in bench.notes[-1] and "stood in" in bench.notes[-1]
    shutil.rmtree(bench.work)


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"  # killed, waiting for init to reap it


def test_a_timeout_ends_the_command_and_the_processes_it_started(tmp_path):
    pid_file = tmp_path / "child.pid"
    spawn = ("import subprocess, sys, time; "
             "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
             f"open({str(pid_file)!r}, 'w').write(str(child.pid)); time.sleep(60)")
    start = time.monotonic()
    found = procgroup.run_group([sys.executable, "-c", spawn], timeout=2.0)
    assert found.timed_out and time.monotonic() - start < 2.0 + procgroup.GRACE_S + 5
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while not _gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(child), "the row's spawned child outlived its timeout"
    ok = procgroup.run_group([sys.executable, "-c", "print('done')"], timeout=30)
    assert (ok.returncode, ok.stdout.strip(), ok.timed_out) == (0, "done", False)
