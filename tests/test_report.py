"""`poolbert report`: figures and index.html from a hand-written study directory (no training)."""

from __future__ import annotations

import ast
import json
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial
from PIL import Image

from poolbert.cli import main
from poolbert.reporting import (
    HeadData,
    best_confusion,
    build_report,
    build_run_report,
    fmt_number,
    load_study_dir,
    plot_loss_curve,
)
from poolbert.reporting.figures._common import FigureSkipped
from poolbert.reporting.figures.history import get_history_info
from poolbert.reporting.figures.slices import get_slices_info
from poolbert.tuning.storage import existing_storage_url, open_existing_storage

REPO_ROOT = Path(__file__).resolve().parents[1]
LABELS = ["entailment", "not_entailment"]
SPACE = {
    "learning_rate": FloatDistribution(1e-5, 1e-4, log=True),
    "num_train_epochs": CategoricalDistribution([2, 3, 4]),
    "max_length": CategoricalDistribution([64, 128]),
    "dropout": FloatDistribution(0.0, 0.2),
}
FIGURES_PER_HEAD = ("history", "importances", "slices", "loss_curve", "intermediate", "parallel")

# (state, value, learning_rate, epochs, max_length, dropout, per-epoch accuracies)
CLS_TRIALS = [
    ("COMPLETE", 0.64, 2e-5, 3, 128, 0.10, [0.55, 0.61, 0.64]),
    ("COMPLETE", 0.70, 7e-5, 4, 128, 0.05, [0.58, 0.66, 0.69, 0.70]),
    ("PRUNED", None, 1e-5, 4, 64, 0.15, [0.50]),
    ("FAIL", None, 9e-5, 2, 64, 0.02, []),
    ("COMPLETE", 0.61, 3e-5, 2, 64, 0.12, [0.57, 0.61]),
    ("COMPLETE", 0.67, 5e-5, 3, 128, 0.08, [0.59, 0.65, 0.67]),
]
MEAN_MAX_TRIALS = [
    ("COMPLETE", 0.60, 2e-5, 2, 64, 0.10, [0.55, 0.60]),
    ("COMPLETE", 0.63, 8e-5, 3, 128, 0.10, [0.56, 0.60, 0.63]),
    ("PRUNED", None, 1.5e-5, 3, 64, 0.10, [0.51, 0.52]),
    ("COMPLETE", 0.62, 4e-5, 4, 128, 0.10, [0.55, 0.58, 0.61, 0.62]),
]


# ---------------------------------------------------------------------------------------------
# A study directory written by hand, as docs/internals.md describes it
# ---------------------------------------------------------------------------------------------

def _frozen(state: str, value, lr, epochs, max_length, dropout, curve):
    params = {"learning_rate": lr, "num_train_epochs": epochs, "max_length": max_length,
              "dropout": dropout}
    return create_trial(
        state=TrialState[state], value=value, params=params, distributions=SPACE,
        intermediate_values={i + 1: v for i, v in enumerate(curve)},
        user_attrs={"fail_reason": "CUDA out of memory <script>alert(1)</script>"}
        if state == "FAIL" else {},
    )


def _history(epochs: int, final: float) -> list[dict]:
    rows, step = [], 0
    for epoch in range(1, epochs + 1):
        for i in range(5):
            step += 1
            rows.append({"type": "step", "step": step, "epoch": epoch - 1 + (i + 1) / 5,
                         "loss": 0.7 / (1 + 0.3 * step), "lr": 5e-5})
        rows.append({"type": "eval", "epoch": epoch, "step": step, "eval_loss": 0.7 - 0.05 * epoch,
                     "eval_accuracy": final - 0.02 * (epochs - epoch), "eval_f1": 0.6})
    return rows


def _metrics(accuracy: float, n_eval: int = 100) -> dict:
    right = round(accuracy * n_eval)
    return {"eval_loss": 0.6, "eval_accuracy": accuracy, "eval_f1": 0.6,
            "eval_confusion": [[right // 2, 50 - right // 2], [n_eval - right - 50 + right // 2,
                                                                right - right // 2]],
            "label_names": LABELS, "n_eval": n_eval, "best_epoch": 2, "epochs_run": 3,
            "epoch": 2, "eval_runtime": 0.5, "train_runtime": 10.0,
            "train_samples_per_second": 100.0}


def _write_run_dir(path: Path, accuracy: float, epochs: int, pooling: str) -> None:
    path.mkdir(parents=True)
    (path / "history.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in _history(epochs, accuracy)))
    (path / "metrics.json").write_text(json.dumps(_metrics(accuracy)))
    (path / "config.json").write_text(json.dumps({"model": {"pooling": pooling},
                                                  "data": {"task": "rte"}}))
    (path / "predictions.csv").write_text("id,label,prediction\n0,0,0\n1,1,0\n")


def make_study(root: Path, heads: dict[str, list[tuple]], storage: str = "sqlite",
               name: str = "study") -> Path:
    """A finished study: Optuna storage, trials.csv, heads/<head>/..., summary.json/.md."""
    root.mkdir(parents=True)
    if storage == "sqlite":
        url = f"sqlite:///{root / 'study.db'}"
    else:
        from optuna.storages.journal import JournalFileBackend

        url = optuna.storages.JournalStorage(JournalFileBackend(str(root / "journal.log")))
    config = {"study_name": name, "poolings": list(heads), "n_trials": 6,
              "pruner": "median", "sampler": "tpe", "select_on": "holdout",
              "final_seeds": 3, "space": {h: {"n_trials": 6, "params": {
                  "learning_rate": {"type": "float", "low": 1e-5, "high": 1e-4, "log": True},
                  "max_length": {"type": "categorical", "choices": [64, 128]}}}
                  for h in heads},
              "data": {"task": "rte"}, "model": {"model_name_or_path": "tiny-bert"}}
    (root / "config.json").write_text(json.dumps(config))
    csv_lines = ["head,number,state,value,params_dropout,params_learning_rate,params_max_length,"
                 "params_num_train_epochs,epochs_run,duration_s,fail_reason"]
    summary_heads = {}
    for head, trials in heads.items():
        study = optuna.create_study(study_name=f"{name}-{head}", storage=url, direction="maximize")
        for spec in trials:
            study.add_trial(_frozen(*spec))
        for t in study.get_trials():
            value = "" if t.value is None else t.value
            reason = t.user_attrs.get("fail_reason", "")
            csv_lines.append(f"{head},{t.number},{t.state.name},{value},{t.params['dropout']},"
                             f"{t.params['learning_rate']},{t.params['max_length']},"
                             f"{t.params['num_train_epochs']},3,1.5,\"{reason}\"")
        states = [t[0] for t in trials]
        counts = {"n_trials": len(trials), "n_complete": states.count("COMPLETE"),
                  "n_pruned": states.count("PRUNED"), "n_failed": states.count("FAIL")}
        if "COMPLETE" not in states:  # nothing to re-train: no best/ or seeds/
            summary_heads[head] = {**counts, "best_trial": None, "best_value": None}
            continue
        best = study.best_trial
        head_dir = root / "heads" / head
        _write_run_dir(head_dir / "best", best.value, best.params["num_train_epochs"], head)
        (head_dir / "best.json").write_text(json.dumps({
            "head": head, "trial_number": best.number, "value": best.value,
            "params": best.params, "selection": "holdout"}))
        seed_acc = [round(best.value - 0.01 * k, 4) for k in range(3)]
        for k, acc in enumerate(seed_acc, 1):
            (head_dir / "seeds" / f"seed-{k}").mkdir(parents=True)
            (head_dir / "seeds" / f"seed-{k}" / "metrics.json").write_text(
                json.dumps(_metrics(acc)))
        summary_heads[head] = {
            **counts, "best_trial": best.number, "best_value": best.value,
            "best_params": best.params, "dev_accuracy_best": best.value - 0.004, "seeds": [1, 2, 3],
            "seed_accuracies": seed_acc, "mean": sum(seed_acc) / 3, "std": 0.0100000001,
            "ci95": [sum(seed_acc) / 3 - 0.0248, sum(seed_acc) / 3 + 0.0248],
            "epochs_saved_by_pruning": 2}
    comparisons = []
    if len(heads) > 1:
        comparisons = [{"a": "cls", "b": "mean_max", "test": "mcnemar", "statistic": 1.23456,
                        "p_value": 0.26667, "a_correct_b_wrong": 12, "b_correct_a_wrong": 8,
                        "significant": False, "alpha": 0.05,
                        "basis": "majority vote over 3 seed runs"}]
    summary = {"task": "rte", "model": "tiny-bert", "selection": "holdout",
               "select_on_description": "accuracy on a 10% stratified holdout of train",
               "metric": "eval_accuracy", "n_eval": 100, "heads": summary_heads,
               "comparisons": comparisons, "wall_time_s": 12.5}
    (root / "summary.json").write_text(json.dumps(summary))
    (root / "summary.md").write_text("# summary\n")
    (root / "trials.csv").write_text("\n".join(csv_lines) + "\n")
    return root


class _PageParser(HTMLParser):
    """img src / a href references, table cells by table id, and the notes of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.tables: dict[str, list[list[str]]] = {}
        self.notes: list[str] = []
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._note: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.refs.append(attrs.get("src", ""))
        elif tag == "a" and "href" in attrs:
            self.refs.append(attrs["href"])
        elif tag == "table":
            self._table = attrs.get("id", f"table-{len(self.tables)}")
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "p" and attrs.get("class") == "note":
            self._note = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None
        elif tag == "p" and self._note is not None:
            self.notes.append("".join(self._note))
            self._note = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._note is not None:
            self._note.append(data)


def parse_page(index: Path) -> _PageParser:
    parser = _PageParser()
    parser.feed(index.read_text(encoding="utf-8"))
    return parser


def table_as_dicts(rows: list[list[str]]) -> list[dict[str, str]]:
    return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


def assert_png(path: Path) -> None:
    assert path.is_file(), f"missing {path.name}"
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width > 200 and image.height > 200, (path.name, image.size)


@pytest.fixture(scope="module")
def two_heads(tmp_path_factory) -> Path:
    root = make_study(tmp_path_factory.mktemp("r") / "study",
                      {"cls": CLS_TRIALS, "mean_max": MEAN_MAX_TRIALS})
    build_report(root)
    return root


@pytest.fixture(scope="module")
def one_trial(tmp_path_factory) -> Path:
    root = make_study(tmp_path_factory.mktemp("r") / "single", {"cls": CLS_TRIALS[:1]})
    build_report(root)
    return root


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------

def test_every_figure_is_a_png_of_readable_size(two_heads):
    report = two_heads / "report"
    for head in ("cls", "mean_max"):
        for figure in FIGURES_PER_HEAD:
            assert_png(report / f"{head}_{figure}.png")
    assert_png(report / "heads_accuracy.png")
    assert_png(report / "confusion_matrices.png")
    assert not [p for p in two_heads.iterdir() if p.name.startswith(".report")]


def test_page_is_self_contained_and_references_only_existing_files(two_heads):
    report = two_heads / "report"
    page = parse_page(report / "index.html")
    embedded = [r for r in page.refs if r.startswith("data:image/png;base64,")]
    assert len(embedded) == len(list(report.glob("*.png"))) == 2 * len(FIGURES_PER_HEAD) + 2
    local = [r for r in page.refs if not r.startswith(("data:", "#"))]
    assert local, "the page links the PNG files"
    for ref in local:
        assert "://" not in ref and not ref.startswith("/"), ref
        assert (report / ref).is_file(), ref
    text = (report / "index.html").read_text()
    assert "<script" not in text  # nothing to run; the fail reason below is escaped
    assert "CUDA out of memory &lt;script&gt;" in text


def test_comparison_table_numbers_match_summary(two_heads):
    summary = json.loads((two_heads / "summary.json").read_text())
    page = parse_page(two_heads / "report" / "index.html")
    rows = table_as_dicts(page.tables["metric"])
    assert [r["head"] for r in rows] == ["cls", "mean_max"]
    for row in rows:  # accuracy in percent, as summary.md and the model card print it
        h = summary["heads"][row["head"]]
        assert row["best trial (holdout)"] == f"{100 * h['best_value']:.2f}"
        assert row["best model on dev"] == f"{100 * h['dev_accuracy_best']:.2f}"  # older key
        assert row["seeds"] == str(len(h["seed_accuracies"]))
        assert row["seed mean"] == f"{100 * h['mean']:.2f}"
        assert row["seed std"] == f"{100 * h['std']:.2f}"
        assert row["95% t-interval"] == f"[{100 * h['ci95'][0]:.2f}, {100 * h['ci95'][1]:.2f}]"
    trials = {r["head"]: r for r in table_as_dicts(page.tables["trials"])}
    for head, h in summary["heads"].items():
        assert [trials[head][k] for k in ("complete", "pruned", "failed")] == [
            str(h["n_complete"]), str(h["n_pruned"]), str(h["n_failed"])]
    params = table_as_dicts(page.tables["hyperparameters"])
    best_trial = next(r for r in params if r["parameter"] == "best trial")
    assert [best_trial[h] for h in ("cls", "mean_max")] == [
        str(summary["heads"][h]["best_trial"]) for h in ("cls", "mean_max")]


def test_paired_test_table_matches_summary(two_heads):
    comparison = json.loads((two_heads / "summary.json").read_text())["comparisons"][0]
    rows = table_as_dicts(parse_page(two_heads / "report" / "index.html").tables["tests"])
    assert rows == [{"A": "cls", "B": "mean_max", "test": "mcnemar",
                     "statistic": fmt_number(comparison["statistic"]), "p-value": "0.2667",
                     "difference (A − B)": "–", "A right, B wrong": "12",
                     "B right, A wrong": "8", "significant (p < alpha)": "no",
                     "alpha": "0.0500", "basis": "majority vote over 3 seed runs"}]


def test_page_states_protocol_evaluator_and_config(two_heads):
    text = (two_heads / "report" / "index.html").read_text()
    assert "fANOVA" in text  # importance evaluator named
    assert "exact McNemar" in text and "re-trained with 3 seeds" in text
    assert "accuracy on a 10% stratified holdout of train" in text
    assert "learning_rate float in [1e-05, 0.0001], log scale; max_length one of 64, 128" in text
    assert "&quot;study_name&quot;: &quot;study&quot;" in text  # config.json shown, escaped


def test_single_head_one_trial_gives_notes_not_a_crash(one_trial):
    report = one_trial / "report"
    page = parse_page(report / "index.html")
    notes = " ".join(page.notes)
    assert "at least 2 complete trials" in notes
    assert "single head" in notes
    for figure in ("history", "loss_curve", "intermediate"):
        assert_png(report / f"cls_{figure}.png")
    for figure in ("importances", "slices", "parallel"):
        assert not (report / f"cls_{figure}.png").exists()
    assert_png(report / "heads_accuracy.png")
    assert "tests" not in page.tables


def test_head_without_complete_trials_gives_notes(tmp_path):
    trials = [CLS_TRIALS[2], CLS_TRIALS[3]]  # one pruned, one failed
    root = make_study(tmp_path / "study", {"cls": CLS_TRIALS[:2], "attention": trials})
    page = parse_page(build_report(root))
    notes = " ".join(page.notes)
    assert "No trial of this head completed" in notes
    assert "heads/attention/best/history.jsonl is missing" in notes
    assert_png(root / "report" / "attention_history.png")  # the pruned trial's last value
    assert_png(root / "report" / "attention_intermediate.png")
    rows = table_as_dicts(page.tables["metric"])
    assert [r["best trial (holdout)"] for r in rows] == ["70.00", "–"]


def test_without_storage_falls_back_to_trials_csv(tmp_path):
    root = make_study(tmp_path / "study", {"cls": CLS_TRIALS})
    (root / "study.db").unlink()
    page = parse_page(build_report(root))
    assert any("No Optuna storage found" in n for n in page.notes)
    assert any("intermediate values" in n for n in page.notes)
    for figure in ("history", "importances", "slices", "parallel"):
        assert_png(root / "report" / f"cls_{figure}.png")


def test_unreachable_storage_falls_back_without_showing_its_password(tmp_path):
    root = make_study(tmp_path / "study", {"cls": CLS_TRIALS[:1]})
    index = build_report(root, storage="postgresql://user:s3cret@127.0.0.1:1/optuna")
    notes = " ".join(parse_page(index).notes)
    assert "Could not open the Optuna storage postgresql://user:***@127.0.0.1:1/optuna" in notes
    assert "s3cret" not in index.read_text()
    assert_png(root / "report" / "cls_history.png")  # from trials.csv


def test_password_query_value_of_the_storage_is_masked(tmp_path):
    root = make_study(tmp_path / "study", {"cls": CLS_TRIALS[:1]})
    index = build_report(root, storage="postgresql://user@127.0.0.1:1/optuna?password=s3cret")
    notes = " ".join(parse_page(index).notes)
    assert "Could not open the Optuna storage postgresql://user@127.0.0.1:1/optuna?password=***" in notes
    assert "s3cret" not in index.read_text()


def test_open_existing_storage_takes_paths_and_urls(tmp_path):
    root = make_study(tmp_path / "study", {"cls": CLS_TRIALS[:1]})
    url = existing_storage_url(str(root / "study.db"))
    assert url == f"sqlite:///{(root / 'study.db').resolve()}"
    assert existing_storage_url(url) == url
    journal = make_study(tmp_path / "journal", {"cls": CLS_TRIALS[:1]}, storage="journal")
    log = journal / "journal.log"
    for storage in (str(root / "study.db"), url, str(log), f"journal://{log}"):
        assert optuna.study.get_all_study_names(open_existing_storage(storage)) == ["study-cls"]
    with pytest.raises(FileNotFoundError):
        open_existing_storage(str(tmp_path / "missing.log"))
    assert not (tmp_path / "missing.log").exists()  # nothing created while refusing


def test_figure_data_is_read_apart_from_drawing(two_heads):
    head = load_study_dir(two_heads).heads["cls"]
    info = get_history_info(head, "holdout accuracy")
    assert [n for n, _ in info.complete] == [0, 1, 4, 5] and info.failed == [3]
    assert info.pruned == [(2, 0.5)]  # a pruned trial at its last reported value
    assert info.best_so_far == [0.64, 0.7, 0.7, 0.7]
    assert info.ylabel == "holdout accuracy (fraction correct)"
    one = HeadData("cls", head.by_state("COMPLETE")[:1])
    with pytest.raises(FigureSkipped, match="at least 2 complete trials"):
        get_slices_info(one, "holdout accuracy")


def test_only_the_figure_modules_import_matplotlib():
    package = REPO_ROOT / "src" / "poolbert" / "reporting"
    assert package.is_dir()
    for path in package.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names]
        imported += [node.module or "" for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom)]
        if any(name.split(".")[0] == "matplotlib" for name in imported):
            assert path.parent.name == "figures", path


def test_journal_storage_is_read(tmp_path):
    root = make_study(tmp_path / "study", {"cls": CLS_TRIALS[:3]}, storage="journal")
    build_report(root)
    assert_png(root / "report" / "cls_intermediate.png")  # only in the storage, not trials.csv


def test_run_report_for_a_train_run(tmp_path):
    run = tmp_path / "run"
    _write_run_dir(run, 0.7, 3, "attention")
    index = build_run_report(run)
    assert_png(run / "report" / "loss_curve.png")
    assert_png(run / "report" / "confusion_matrix.png")
    rows = table_as_dicts(parse_page(index).tables["metrics"])
    assert {"metric": "validation accuracy (multi-label: exact match)",
            "key in metrics.json": "eval_accuracy",
            "value": "0.7000"} in rows


def test_confusion_uses_dev_predictions_over_the_selection_set(tmp_path):
    best = tmp_path / "heads" / "cls" / "best"
    _write_run_dir(best, 0.7, 2, "cls")  # metrics.json: scored on the holdout slice
    head = HeadData("cls", [], best_dir=best)
    assert best_confusion(head, "holdout")["evaluated_on"] == "holdout slice of train"
    (best.parent / "dev_predictions.csv").write_text(
        "id,label,prediction,prob_yes,prob_no\n1,0,0,.9,.1\n2,1,0,.6,.4\n3,1,1,.2,.8\n"
        "4,-1,1,.3,.7\n")
    found = best_confusion(head, "holdout")
    assert found["eval_confusion"] == [[1, 0], [1, 1]]  # the unlabelled row is left out
    assert found["evaluated_on"] == "validation set" and found["n_eval"] == 3
    assert found["label_names"] == LABELS  # from metrics.json


def test_plot_loss_curve_keeps_its_signature(tmp_path):
    path = plot_loss_curve(_history(2, 0.7), tmp_path / "curve.png", title="cls")
    assert_png(path)


def test_cli_report_replaces_an_existing_report(tmp_path, capsys):
    root = make_study(tmp_path / "study", {"cls": CLS_TRIALS[:2]})
    (root / "report").mkdir()
    (root / "report" / "stale.png").write_bytes(b"old")
    assert main(["report", str(root)]) == 0
    assert (root / "report" / "index.html").is_file()
    assert not (root / "report" / "stale.png").exists()
    assert [p.name for p in root.iterdir() if p.name.startswith(".")] == []  # no temp dirs left
    run = tmp_path / "run"
    _write_run_dir(run, 0.7, 2, "cls")
    assert main(["report", str(run)]) == 0  # a run directory gets a run report
    assert_png(run / "report" / "loss_curve.png")
    assert capsys.readouterr().out.count("report written") == 2


def test_cli_missing_directory_is_one_line_exit_2(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("poolbert: error: directory not found")


def test_cli_empty_directory_is_one_line_exit_2(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no study found" in err


@pytest.mark.slow
@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(),
                    reason="needs Debian's chromium (apt-get install -y chromium)")
def test_page_renders_in_headless_chromium(two_heads, tmp_path):
    shot = tmp_path / "shot.png"
    subprocess.run(["bash", str(REPO_ROOT / "scripts" / "screenshot_report.sh"),
                    str(two_heads / "report" / "index.html"), str(shot), "1280,2400"],
                   check=True, timeout=180, capture_output=True)
    with Image.open(shot) as image:
        assert image.size == (1280, 2400)
        colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
    assert colours is None or len(colours) > 50, "the screenshot is (nearly) a single colour"


def test_page_needs_no_network(two_heads):
    # every image is inline and there is no script: the page opens offline, e.g. as an attachment
    text = (two_heads / "report" / "index.html").read_text()
    assert "http://" not in text and "https://" not in text
