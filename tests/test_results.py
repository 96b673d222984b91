"""A study's results as one typed model (tuning.results) and its tables built once
(tuning.tables): summary.md, the report page and the model card show the same numbers."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from helpers import fake_result, tiny_bert_dir, tiny_glue_dir, tiny_run_config

from poolbert.errors import PoolbertError
from poolbert.exporting import export_model
from poolbert.layout import StudyDir
from poolbert.reporting import build_report
from poolbert.tuning import TuneConfig, run_study
from poolbert.tuning.markdown import summary_markdown
from poolbert.tuning.results import Baseline, StudyResult, read_result

METRIC = "accuracy per head (%)"
TESTS = "paired tests between heads"

# what summary.json has held since --metric and packs (the keys, in their order)
SUMMARY_KEYS = ["task", "model", "selection", "select_on_description", "metric", "metric_name",
                "problem_type", "label_names", "n_eval", "n_train", "study_name", "storage",
                "preset", "budget", "heads", "comparisons", "wall_time_s",
                "verdict", "baseline", "primary_test"]  # the last three: since verdicts
HEAD_KEYS = ["n_trials", "n_requested", "n_complete", "n_pruned", "n_failed", "best_trial",
             "best_value", "best_params", "best_epoch", "dev_value_best", "dev_precision",
             "dev_recall", "seeds", "seed_values", "mean", "std", "ci95",
             "epochs_saved_by_pruning", "beats_baseline", "baseline_p_adjusted"]
BUDGET_KEYS = ["n_trials", "space", "pruner", "max_train_samples", "device", "final_seeds",
               "n_workers", "trials_per_gpu", "pack", "timeout", "precision", "precision_reason"]
PAIR_KEYS = {"a", "b", "test", "alpha", "basis", "statistic", "p_value", "significant",
             "p_adjusted"}
DISCORDANT = {"a_correct_b_wrong", "b_correct_a_wrong"}
TEST_KEYS = {"two_level_t": PAIR_KEYS | DISCORDANT | {"primary", "difference", "ci95",
                                                      "min_detectable_effect", "example_sd"},
             "mcnemar": PAIR_KEYS | DISCORDANT,
             "paired_bootstrap": PAIR_KEYS | DISCORDANT | {"difference", "ci95", "n_resamples"},
             "paired_t_seeds": PAIR_KEYS | {"difference"}}

# summary.json as the first `poolbert tune` wrote it: no metric_name, problem_type or
# label_names; dev_accuracy_best and seed_accuracies; a budget without device, pack or
# trials_per_gpu
OLD_SUMMARY = {
    "task": "rte", "model": "bert-base-uncased", "selection": "dev",
    "select_on_description": "dev: every trial was scored on the validation set",
    "metric": "eval_accuracy", "n_eval": 277, "n_train": 2490, "study_name": "old",
    "storage": None, "preset": None,
    "budget": {"n_trials": {"cls": 20, "mean": 20}, "space": "paper.yaml", "pruner": "none",
               "max_train_samples": None, "final_seeds": 3, "n_workers": 1, "timeout": None},
    "heads": {h: {"n_trials": 20, "n_requested": 20, "n_complete": 20, "n_pruned": 0,
                  "n_failed": 0, "best_trial": 7, "best_value": v, "best_params": {
                      "learning_rate": 3e-5}, "best_epoch": 2, "dev_accuracy_best": v,
                  "seeds": [1, 2, 3], "seed_accuracies": [v - 0.01, v, v + 0.01],
                  "mean": v, "std": 0.01, "ci95": [v - 0.0248, v + 0.0248],
                  "epochs_saved_by_pruning": 0}
              for h, v in (("cls", 0.6643), ("mean", 0.6787))},
    "comparisons": [{"a": "cls", "b": "mean", "alpha": 0.05, "basis": "majority vote",
                     "a_correct_b_wrong": 20, "b_correct_a_wrong": 24, "test": "mcnemar",
                     "statistic": 20, "p_value": 0.6516, "significant": False}],
    "wall_time_s": 5230.4,
}


def varied_fit(config, resources, on_epoch=None, quiet=False, epoch_selection="best"):
    """A train stand-in whose accuracy (on 16 dev examples) depends on the head and the seed,
    so seed statistics, paired tests and the t-test over seeds all have numbers."""
    seed = config.train.seed
    accuracy = (0.75 + 0.0625 * (seed % 3) if config.model.pooling == "cls"
                else 0.625 + 0.0625 * (seed % 2))
    for epoch in range(1, config.train.num_train_epochs + 1):
        if on_epoch is not None:
            on_epoch(epoch, {"eval_accuracy": accuracy})
    return fake_result(config, resources, accuracy, config.train.num_train_epochs)


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    """A finished two-head study (holdout protocol, three seeds), its report and the export
    of its `mean` head."""
    root = tmp_path_factory.mktemp("results")
    tiny = tiny_bert_dir(root / "model"), tiny_glue_dir(root / "data", 32, 16)
    tc = TuneConfig(run=tiny_run_config(*tiny), output_dir=str(root / "s"),
                    heads=["cls", "mean"], space="quick", n_trials=2, final_seeds=3,
                    select_on="holdout", quiet=True)
    run_study(tc, varied_fit)
    build_report(root / "s")
    export_model(root / "s", root / "export", head="mean")
    return root


def markdown_tables(text: str) -> dict[str, list[list[str]]]:
    """Each Markdown table (header row first) under the heading above it, lowercased and
    without summary.md's "Table N: "."""
    tables: dict[str, list[list[str]]] = {}
    title = ""
    for line in text.splitlines():
        if line.startswith("#"):
            title = re.sub(r"^#+ (Table \d+: )?", "", line).lower()
        elif line.startswith("|") and not set(line) <= set("|-"):
            cells = re.split(r"(?<!\\)\|", line)[1:-1]
            tables.setdefault(title, []).append([c.strip().replace("\\|", "|") for c in cells])
    return tables


class _Tables(HTMLParser):
    """Each HTML table (header row first) under the <h3> above it, lowercased."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.title, self._text, self._in = "", [], ""

    def handle_starttag(self, tag, attrs):
        if tag in ("h3", "td", "th"):
            self._in, self._text = tag, []
        elif tag == "tr":
            self.tables.setdefault(self.title, []).append([])

    def handle_endtag(self, tag):
        if tag == "h3":
            self.title = "".join(self._text).strip().lower()
        elif tag in ("td", "th"):
            self.tables[self.title][-1].append("".join(self._text).strip())
        if tag == self._in:
            self._in = ""

    def handle_data(self, data):
        if self._in:
            self._text.append(data)


def html_tables(path: Path) -> dict[str, list[list[str]]]:
    parser = _Tables()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser.tables


def test_summary_md_report_and_card_show_the_same_tables(study):
    folder = StudyDir(study / "s")
    result = read_result(folder)
    md = markdown_tables(folder.summary_md.read_text(encoding="utf-8"))
    page = html_tables(folder.report / "index.html")
    card = markdown_tables((study / "export" / "README.md").read_text(encoding="utf-8"))

    assert md[METRIC] == page[METRIC] == card[METRIC]
    rows = {row[0]: dict(zip(md[METRIC][0], row, strict=True)) for row in md[METRIC][1:]}
    for name, head in result.heads.items():  # summary.json's numbers, in percent
        row = rows[name]
        assert row["best trial (holdout)"] == f"{100 * head.best_value:.2f}"
        assert row["best model on dev"] == f"{100 * head.dev_value_best:.2f}"
        assert row["seed mean"] == f"{100 * head.mean:.2f}"
        assert row["seed std"] == f"{100 * head.std:.2f}" != "0.00"
        assert row["95% t-interval"] == f"[{100 * head.ci95[0]:.2f}, {100 * head.ci95[1]:.2f}]"

    tests = md[TESTS]
    assert page[TESTS] == tests
    assert card["paired tests involving mean"] == tests  # both heads: every test involves mean
    header = tests[0]
    assert "difference (A − B)" in header and "alpha" in header
    t_test = dict(zip(header, next(r for r in tests if r[2] == "paired_t_seeds"), strict=True))
    difference = next(c.difference for c in result.comparisons if c.test == "paired_t_seeds")
    assert t_test["difference (A − B)"] == f"{100 * difference:.2f}"  # percentage points

    assert set(md) - {f"poolbert study s: rte, {result.model}"} <= set(page)
    for title, table in md.items():  # every table of summary.md, on the page as it is
        if title in page:
            assert page[title] == table, title
    assert card["trials"] == md["trials"] == page["trials"]


def test_the_budget_line_is_printed_once_in_each(study):
    folder = StudyDir(study / "s")
    for text in (folder.summary_md.read_text(encoding="utf-8"),
                 (folder.report / "index.html").read_text(encoding="utf-8"),
                 (study / "export" / "README.md").read_text(encoding="utf-8")):
        assert text.count("Budget: trials per head cls 2, mean 2;") == 1
        assert text.count("Each head has its own Optuna study (s-&lt;head&gt;)"
                          if "<html" in text else
                          "Each head has its own Optuna study (s-<head>)") == 1


def test_summary_json_keeps_its_keys_and_reads_back_unchanged(study):
    path = StudyDir(study / "s").summary_json
    written = json.loads(path.read_text(encoding="utf-8"))
    assert list(written) == SUMMARY_KEYS and list(written["budget"]) == BUDGET_KEYS
    assert all(list(h) == HEAD_KEYS for h in written["heads"].values())
    assert {c["test"] for c in written["comparisons"]} == set(TEST_KEYS)
    for comparison in written["comparisons"]:
        assert set(comparison) == TEST_KEYS[comparison["test"]]
    assert StudyResult.from_json(written).to_json() == written


def test_older_summaries_are_read(tmp_path):
    result = StudyResult.from_json(OLD_SUMMARY)
    assert (result.metric_name, result.problem_type, result.label_names) == (
        "accuracy", "single_label", [])
    cls = result.heads["cls"]
    assert cls.dev_value_best == 0.6643 and cls.seed_values == [0.6543, 0.6643, 0.6743]
    assert (result.budget.pack, result.budget.device) == (1, None)
    assert result.comparisons[0].difference is None and result.comparisons[0].statistic == 20
    text = summary_markdown(result)
    assert "| cls | 66.43 | 66.43 | 3 | 66.43 | 1.00 | [63.95, 68.91] |" in text
    assert "| cls | 1, 2, 3 | 65.43, 66.43, 67.43 |" in text
    assert "max_train_samples all; final seeds 3; 1 worker process(es); timeout none" in text
    f1 = StudyResult.from_json({**OLD_SUMMARY, "metric": "eval_f1"})  # the key names the metric
    assert f1.metric_name == "macro_f1"


def test_statistics_added_later_are_written_only_when_set():
    result = StudyResult.from_json(OLD_SUMMARY)
    assert not {"verdict", "baseline", "primary_test"} & set(result.to_json())
    assert "p_adjusted" not in result.to_json()["comparisons"][0]
    result.verdict, result.baseline = "mean is not better than cls", Baseline("majority", 0.527)
    result.heads["cls"].beats_baseline = False
    result.comparisons[0].p_adjusted, result.comparisons[0].primary = 1.0, True
    data = result.to_json()
    assert data["verdict"] == "mean is not better than cls"
    assert data["baseline"] == {"name": "majority", "value": 0.527}
    assert data["heads"]["cls"]["beats_baseline"] is False  # a "no" is written
    assert "beats_baseline" not in data["heads"]["mean"]
    assert data["comparisons"][0]["p_adjusted"] == 1.0 and data["comparisons"][0]["primary"]
    assert StudyResult.from_json(data).to_json() == data
    text = summary_markdown(StudyResult.from_json(data))
    assert "Verdict: mean is not better than cls" in text
    assert "| primary | statistic | p-value | p (Holm) | significant (Holm p < alpha) |" in text
    assert "adjusted with Holm's method" in text and "not adjusted" not in text


def test_a_summary_that_is_not_one_is_refused_naming_the_file(tmp_path):
    folder = StudyDir(tmp_path)
    assert read_result(folder) is None
    folder.summary_json.write_text("[1, 2]")
    with pytest.raises(PoolbertError, match=r"summary\.json: not a poolbert study summary"):
        read_result(folder)
    folder.summary_json.write_text(json.dumps({"heads": {"cls": {"best_value": 1.0}},
                                               "comparisons": [{"test": "mcnemar"}]}))
    with pytest.raises(PoolbertError, match="names no heads"):
        read_result(folder)
