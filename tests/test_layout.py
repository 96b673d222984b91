"""poolbert.layout: the files of run and study folders, written and read back by one owner."""

from __future__ import annotations

import numpy as np
import pytest

from poolbert.errors import PoolbertError
from poolbert.layout import StudyDir, read_predictions, write_predictions


def test_predictions_round_trip(tmp_path):
    path = tmp_path / "predictions.csv"
    probs = np.array([[0.25, 0.75], [0.9, 0.1], [0.5, 0.5]])
    write_predictions(path, np.array([7, 3, 11]), np.array([1, 0, -1]), np.array([1, 0, 0]),
                      probs, ["entailment", "not_entailment"], "single_label")
    got = read_predictions(path)
    assert got.ids.tolist() == [7, 3, 11] and got.labels.tolist() == [1, 0, -1]
    assert got.preds.tolist() == [1, 0, 0] and got.correct.tolist() == [True, True, False]
    np.testing.assert_allclose(got.probs, probs)
    assert got.label_names == ["entailment", "not_entailment"]


def test_a_file_that_is_not_predictions_is_refused_in_one_line(tmp_path):
    path = tmp_path / "predictions.csv"
    path.write_text("id,label,prediction,prob_a\n1,0,zero,0.5\n")
    with pytest.raises(PoolbertError, match="predictions.csv: a row is not id, label"):
        read_predictions(path)
    path.write_text("index,label\n1,0\n")
    with pytest.raises(PoolbertError, match="not a predictions file"):
        read_predictions(path)


def test_study_paths_are_the_documented_ones(tmp_path):
    study = StudyDir(tmp_path)
    head = study.head("cls")
    assert head.best.model == tmp_path / "heads" / "cls" / "best" / "model"
    assert head.seed(2).predictions_file == tmp_path / "heads/cls/seeds/seed-2/predictions.csv"
    for k in (10, 2):
        head.seed(k).path.mkdir(parents=True)
    (head.seeds / "notes").mkdir()
    assert [r.path.name for r in head.seed_runs()] == ["seed-2", "seed-10"]
    assert study.head_names() == ["cls"]
