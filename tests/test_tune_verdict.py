"""A study's verdict end to end (run_study with stand-ins for training): the baseline, the
primary test with Holm, the verdict that summary.md, the report and the model card open with,
and --race stopping a hopeless head, also across a resume."""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from pathlib import Path

import optuna
import pytest
from helpers import fake_fit, fake_result, tiny_bert_dir, tiny_glue_dir, tiny_run_config

from poolbert.exporting import export_model
from poolbert.layout import StudyDir
from poolbert.reporting import build_report
from poolbert.reporting.figures.head_accuracy import get_head_accuracy_info, tick_label
from poolbert.reporting.load import load_study_dir
from poolbert.tuning import TuneConfig, run_study
from poolbert.tuning.storage import open_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny model, and data with 48 dev examples (half of each class; train's two classes
    tie, so the baseline is class 0 and scores 50%)."""
    root = tmp_path_factory.mktemp("tiny")
    return tiny_bert_dir(root / "model"), tiny_glue_dir(root / "data", 64, 48)


def settings(tiny, out, **kwargs) -> TuneConfig:
    defaults = {"heads": ["cls", "mean"], "space": "quick", "n_trials": 2, "final_seeds": 3,
                "select_on": "dev", "quiet": True}
    return TuneConfig(run=tiny_run_config(*tiny), output_dir=str(out), **{**defaults, **kwargs})


class HeadFit:
    """A train stand-in whose dev accuracy is set per head, moved by one example per seed, so
    the seed runs differ; counts its calls per head."""

    def __init__(self, accuracy: dict[str, float]):
        self.accuracy, self.calls = accuracy, Counter()

    def __call__(self, config, resources, on_epoch=None, quiet=False, epoch_selection="best"):
        head = config.model.pooling
        self.calls[head] += 1
        accuracy = self.accuracy[head] + (config.train.seed % 3 - 1) / 48
        for epoch in range(1, config.train.num_train_epochs + 1):
            if on_epoch is not None:
                on_epoch(epoch, {"eval_accuracy": accuracy})
        return fake_result(config, resources, accuracy, config.train.num_train_epochs)


def test_heads_at_the_baseline_beat_nothing_and_no_difference_is_claimed(tiny, tmp_path):
    summary = run_study(settings(tiny, tmp_path / "s"), HeadFit({"cls": 0.5, "mean": 0.52}))
    assert summary["baseline"] == {"name": "always 'entailment', the best constant on dev",
                                   "value": 0.5}
    assert summary["primary_test"] == "two_level_t"
    assert [h["beats_baseline"] for h in summary["heads"].values()] == [False, False]
    assert all(h["baseline_p_adjusted"] >= 0.05 for h in summary["heads"].values())
    assert not any(c["significant"] for c in summary["comparisons"])
    assert summary["verdict"].startswith(
        "No head beats the baseline, always 'entailment', the best constant on dev")
    assert "not interpreted" in summary["verdict"]


def test_a_clearly_better_head_is_declared_and_the_other_is_labelled(tiny, tmp_path):
    summary = run_study(settings(tiny, tmp_path / "s"), HeadFit({"cls": 0.95, "mean": 0.5}))
    heads = summary["heads"]
    assert heads["cls"]["beats_baseline"] and not heads["mean"]["beats_baseline"]
    assert heads["cls"]["baseline_p_adjusted"] < 0.05
    primary = [c for c in summary["comparisons"] if c.get("primary")]
    assert len(primary) == 1 and primary[0]["test"] == "two_level_t"
    pair = primary[0]
    assert pair["significant"] and pair["p_adjusted"] < 0.05
    assert 0 < pair["min_detectable_effect"] < pair["difference"]
    assert summary["verdict"].startswith("mean does not beat the baseline")
    assert re.search(r"cls > mean by \d+\.\d points \[[\d.]+, [\d.]+\], Holm-adjusted p = ",
                     summary["verdict"])
    for c in summary["comparisons"]:  # "significant" always reads the adjusted p
        assert c["significant"] == (c["p_adjusted"] < c["alpha"])


def test_three_heads_are_held_to_holm_across_the_pairs(tiny, tmp_path):
    tc = settings(tiny, tmp_path / "s", heads=["cls", "mean", "max"], final_seeds=2)
    summary = run_study(tc, HeadFit({"cls": 0.7, "mean": 0.6, "max": 0.5}))
    primary = [c for c in summary["comparisons"] if c.get("primary")]
    assert len(primary) == 3
    ordered = sorted(primary, key=lambda c: c["p_value"])
    assert ordered[0]["p_adjusted"] == pytest.approx(min(1.0, 3 * ordered[0]["p_value"]))
    assert all(c["p_adjusted"] >= c["p_value"] for c in primary)


# ----------------------------------------------------------------------------- opens with it


@pytest.fixture(scope="module")
def clear_study(tiny, tmp_path_factory) -> Path:
    """A finished study where cls is clearly better, its report and cls's export."""
    root = tmp_path_factory.mktemp("clear")
    run_study(settings(tiny, root / "s"), HeadFit({"cls": 0.95, "mean": 0.5}))
    build_report(root / "s")
    export_model(root / "s", root / "export", head="cls")
    return root


def first_paragraph(markdown: str) -> str:
    """The first paragraph after the first `# ` title (front matter skipped)."""
    body = markdown.split("\n# ", 1)[1] if not markdown.startswith("# ") else markdown[2:]
    return body.split("\n\n")[1]


def test_summary_report_and_card_open_with_the_same_verdict(clear_study):
    folder = StudyDir(clear_study / "s")
    verdict = json.loads(folder.summary_json.read_text(encoding="utf-8"))["verdict"]
    assert "cls > mean" in verdict
    opening = f"Verdict: {verdict}"
    assert first_paragraph(folder.summary_md.read_text(encoding="utf-8")) == opening
    card = (clear_study / "export" / "README.md").read_text(encoding="utf-8")
    assert first_paragraph(card) == opening
    page = (folder.report / "index.html").read_text(encoding="utf-8")
    first_section = re.search(r"<h2 id=\"([^\"]+)\">[^<]*</h2><p>(.*?)</p>", page)
    assert first_section is not None and first_section.group(1) == "verdict"
    assert html.unescape(first_section.group(2)) == opening


def test_baseline_and_power_are_in_the_tables_and_the_figure(clear_study):
    folder = StudyDir(clear_study / "s")
    text = folder.summary_md.read_text(encoding="utf-8")
    table = text.split("## Table 2: accuracy per head (%)")[1].split("##")[0]
    lines = [[c.strip() for c in line.split("|")[1:-1]] for line in table.splitlines()
             if line.startswith("| ")]
    rows = {row[0]: dict(zip(lines[0], row, strict=True)) for row in lines[1:]}
    assert rows["cls"]["beats baseline"] == "yes" and rows["mean"]["beats baseline"] == "no"
    base = rows["baseline: always 'entailment', the best constant on dev"]
    assert base["best model on dev"] == base["seed mean"] == "50.00"
    assert "this study cannot tell differences below" in text
    plan = re.search(r"`poolbert plan (--effect \S+ --n-eval 48 --heads 2 --seeds 3 "
                     r"--seed-std \S+ --example-sd \S+)`", text)
    assert plan is not None
    info = get_head_accuracy_info(load_study_dir(clear_study / "s"))
    assert info.baseline == ("always 'entailment', the best constant on dev", 0.5)
    labels = {h.name: tick_label(h) for h in info.heads}
    assert labels["cls"] == "cls" and "does not beat" in labels["mean"]
    assert (folder.report / "heads_accuracy.png").is_file()


# ----------------------------------------------------------------------------- --race


def hopeless(config) -> float:
    """mean learns nothing (5%); cls is lr_accuracy's 78 to 90%."""
    from helpers import lr_accuracy

    return 0.05 if config.model.pooling == "mean" else lr_accuracy(config)


class RaceFit(HeadFit):
    def __init__(self):
        super().__init__({})

    def __call__(self, config, resources, on_epoch=None, quiet=False, epoch_selection="best"):
        self.calls[config.model.pooling] += 1
        accuracy = hopeless(config)
        for epoch in range(1, config.train.num_train_epochs + 1):
            if on_epoch is not None:
                on_epoch(epoch, {"eval_accuracy": accuracy})
        return fake_result(config, resources, accuracy, config.train.num_train_epochs)


def head_trials(tc: TuneConfig, head: str) -> list:
    return optuna.load_study(study_name=f"{tc.name}-{head}", storage=open_storage(tc)).trials


def test_race_stops_a_hopeless_head_and_reports_the_trials_saved(tiny, tmp_path):
    tc = settings(tiny, tmp_path / "s", n_trials=6, final_seeds=2, race=True,
                  pruner="none")
    fit = RaceFit()
    summary = run_study(tc, fit)
    mean, cls = summary["heads"]["mean"], summary["heads"]["cls"]
    # TPE's 2 start-up trials each, then the race: mean is far behind, with 4 trials left
    assert (mean["race_stopped"], mean["race_stopped_after"], mean["trials_saved_by_race"]) == (
        True, 2, 4)
    assert (cls["race_stopped"], cls["n_complete"], cls["trials_saved_by_race"]) == (False, 6, 0)
    assert len(head_trials(tc, "mean")) == 2
    assert summary["race"]["stopped"] == ["mean"] and summary["race"]["trials_saved"] == 4
    assert "confidence" in summary["race"]["rule"]
    assert mean["seeds"] == [1, 2]  # a stopped head is still re-trained with seeds
    assert fit.calls == {"cls": 6 + 2, "mean": 2 + 2}
    # the heads took turns: mean's first trial started before cls's second
    first_mean = head_trials(tc, "mean")[0].datetime_start
    assert first_mean < head_trials(tc, "cls")[1].datetime_start
    text = tc.study_dir.summary_md.read_text(encoding="utf-8")
    assert "| mean | 6 | 2 | 0 | 0 | 0 | after 2 trials | 4 |" in text
    assert "Race (--race): the heads took turns" in text and "trials saved in all: 4" in text


def test_a_resumed_race_keeps_the_stopped_head_stopped(tiny, tmp_path):
    run_study(settings(tiny, tmp_path / "s", n_trials=6, final_seeds=0, race=True), RaceFit())
    # a larger budget: 4 start-up trials now, so the race alone would not judge mean (2 trials)
    again = RaceFit()
    tc = settings(tiny, tmp_path / "s", n_trials=12, final_seeds=0, race=True)
    summary = run_study(tc, again)
    assert again.calls == {"cls": 6}
    assert len(head_trials(tc, "mean")) == 2
    assert summary["heads"]["mean"]["trials_saved_by_race"] == 10
    assert summary["heads"]["mean"]["race_stopped_after"] == 2


def test_without_race_heads_run_one_after_the_other_and_nothing_stops(tiny, tmp_path):
    tc = settings(tiny, tmp_path / "s", n_trials=3, final_seeds=0)
    summary = run_study(tc, fake_fit)
    assert "race" not in summary and "race_stopped" not in summary["heads"]["cls"]
    assert head_trials(tc, "cls")[-1].datetime_complete <= head_trials(tc, "mean")[0].datetime_start


def test_a_packed_race_fills_the_pack_with_each_head_in_turn(tiny, tmp_path):
    tc = settings(tiny, tmp_path / "s", n_trials=2, final_seeds=0, race=True, pack=2,
                  pruner="none")
    run_study(tc)  # real (tiny) training: packs train their members together
    cls, mean = head_trials(tc, "cls"), head_trials(tc, "mean")
    assert [t.state.name for t in cls + mean] == ["COMPLETE"] * 4
    # the first pack holds one trial of each head (without --race: cls's two trials)
    assert mean[0].datetime_start < cls[0].datetime_complete
    assert cls[1].datetime_start > min(cls[0].datetime_complete, mean[0].datetime_complete)
