"""`poolbert tune --pack K` on the CPU: the pack stays full, each member is its own trial
(pruned, NaN, out of memory and Ctrl-C each handled for that trial), and the study's records
are those of unpacked trials."""

from __future__ import annotations

import csv

import optuna
import pytest
import torch
from helpers import tiny_bert_dir, tiny_glue_dir, tiny_run_config

from poolbert.pack import Pack
from poolbert.tuning import TuneConfig, pack_worker, run_study
from poolbert.tuning.storage import open_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return tiny_bert_dir(root / "model"), tiny_glue_dir(root / "data", 32, 16)


def settings(tiny, out, **kwargs) -> TuneConfig:
    defaults = {"heads": ["cls", "attention"], "space": "quick", "n_trials": 4, "final_seeds": 0,
                "select_on": "dev", "quiet": True, "pack": 3, "pruner": "none"}
    return TuneConfig(run=tiny_run_config(*tiny), output_dir=str(out), **{**defaults, **kwargs})


def trials(tc: TuneConfig, head: str) -> list:
    return optuna.load_study(study_name=f"{tc.name}-{head}", storage=open_storage(tc)).trials


def rows(tc: TuneConfig) -> list[dict]:
    with (tc.study_dir.path / "trials.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def occupancy(monkeypatch):
    """(members when an epoch starts, trials told before it), for every epoch of the pack."""
    seen, told = [], [0]
    run_epoch, tell = Pack.run_epoch, pack_worker._tell

    def counting_run(self):
        seen.append((len(self.members), told[0]))
        return run_epoch(self)

    def counting_tell(*args, **kwargs):
        told[0] += 1
        return tell(*args, **kwargs)

    monkeypatch.setattr(Pack, "run_epoch", counting_run)
    monkeypatch.setattr(pack_worker, "_tell", counting_tell)
    return seen


def test_a_packed_study_keeps_the_pack_full_and_writes_unpacked_records(tiny, tmp_path,
                                                                        occupancy):
    tc = settings(tiny, tmp_path / "s", final_seeds=2)
    summary = run_study(tc)
    assert summary["budget"]["pack"] == 3
    total = 8  # 4 trials of each of 2 heads, the second head's filling places the first frees
    tuning = [(members, told) for members, told in occupancy if told < total]
    assert len(tuning) >= 3
    for members, told in tuning:
        assert members == min(3, total - told)
    assert {m for m, told in occupancy if told == total} == {2}  # 2 seeds of a head, packed
    for head in ("cls", "attention"):
        found = trials(tc, head)
        assert [t.state.name for t in found] == ["COMPLETE"] * 4
        for t in found:
            assert t.user_attrs["epochs_run"] == t.params["num_train_epochs"]
            assert t.user_attrs["planned_epochs"] == t.params["num_train_epochs"]
            assert len(t.intermediate_values) == t.params["num_train_epochs"]
        best = tc.study_dir.head(head)
        assert best.best.has_model()
        assert best.read_best()["trial_number"] == max(found, key=lambda t: (t.value, -t.number)).number
        assert [r.path.name for r in best.seed_runs()] == ["seed-1", "seed-2"]
        assert summary["heads"][head]["seeds"] == [1, 2]
    assert {r["head"] for r in rows(tc)} == {"cls", "attention"} and len(rows(tc)) == 8


def test_a_pruned_member_leaves_at_once_and_a_new_trial_takes_its_place(tiny, tmp_path,
                                                                       monkeypatch, occupancy):
    original = pack_worker.should_stop

    def prune_trial_1(trial, epoch, last, accuracy):
        original(trial, epoch, last, accuracy)
        return trial.number == 1 and epoch == 1

    monkeypatch.setattr(pack_worker, "should_stop", prune_trial_1)
    tc = settings(tiny, tmp_path / "s", heads=["cls"], n_trials=4)
    run_study(tc)
    found = {t.number: t for t in trials(tc, "cls")}
    assert found[1].state.name == "PRUNED" and found[1].user_attrs["epochs_run"] == 1
    assert sorted(t.state.name for t in found.values()) == ["COMPLETE"] * 3 + ["PRUNED"]
    assert occupancy[1][0] == 3  # after epoch 1 the pruned trial's place was filled again


def test_a_member_with_a_nan_loss_is_pruned_with_its_reason_the_others_complete(tiny, tmp_path,
                                                                               monkeypatch):
    original = Pack._member_losses

    def nan_for_trial_2(self, logits, labels, reduce="mean"):
        losses = original(self, logits, labels, reduce)
        numbers = [m.key.trial.number for m in self.members]
        if reduce == "mean" and 2 in numbers:
            bad = torch.tensor([float("nan") if n == 2 else 1.0 for n in numbers])
            losses = losses * bad
        return losses

    monkeypatch.setattr(Pack, "_member_losses", nan_for_trial_2)
    tc = settings(tiny, tmp_path / "s", heads=["cls"], n_trials=4)
    run_study(tc)
    found = {t.number: t for t in trials(tc, "cls")}
    assert found[2].state.name == "PRUNED"
    assert found[2].user_attrs["fail_reason"].startswith(
        "non-finite loss: training loss became nan at step 1 (epoch 1)")
    assert [found[n].state.name for n in (0, 1, 3)] == ["COMPLETE"] * 3


def test_out_of_memory_halves_the_pack_and_queues_the_trials_that_left(tiny, tmp_path,
                                                                      monkeypatch, occupancy):
    original = Pack._forward_backward
    raised = [False]

    def out_of_memory_once_with_three(self, i):
        if len(self.members) == 3 and not raised[0]:
            raised[0] = True
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(self, i)

    monkeypatch.setattr(Pack, "_forward_backward", out_of_memory_once_with_three)
    tc = settings(tiny, tmp_path / "s", heads=["cls"], n_trials=4)
    run_study(tc)
    found = trials(tc, "cls")
    failed = [t for t in found if t.state.name == "FAIL"]
    assert len(failed) == 2  # a pack of 3 halved to 1: two trials left it
    for t in failed:
        assert t.user_attrs["fail_reason"].startswith("out of memory in a pack of 3")
        retry = [r for r in found if r.user_attrs.get("retry_of") == t.number]
        assert len(retry) == 1 and retry[0].params == t.params  # run again, same parameters
        assert retry[0].state.name == "COMPLETE"
    assert sum(t.state.name == "COMPLETE" for t in found) == 4  # the budget, still met
    assert max(members for members, _ in occupancy[1:]) == 1  # no pack larger than what fit


def test_ctrl_c_marks_every_member_and_the_resume_runs_their_parameters(tiny, tmp_path,
                                                                       monkeypatch):
    original = Pack._forward_backward
    calls = [0]

    def interrupted_at_call_3(self, i):
        calls[0] += 1
        if calls[0] == 3:
            raise KeyboardInterrupt
        return original(self, i)

    monkeypatch.setattr(Pack, "_forward_backward", interrupted_at_call_3)
    tc = settings(tiny, tmp_path / "s", heads=["cls"], n_trials=4)
    with pytest.raises(KeyboardInterrupt):
        run_study(tc)
    found = trials(tc, "cls")
    stopped = [t for t in found if t.state.name == "FAIL"]
    assert len(stopped) == 3 and all(t.user_attrs["fail_reason"] == "interrupted"
                                     for t in stopped)
    queued = [t for t in found if t.state.name == "WAITING"]
    assert sorted(t.user_attrs["retry_of"] for t in queued) == [t.number for t in stopped]
    assert not [t for t in found if t.state.name == "RUNNING"]
    monkeypatch.setattr(Pack, "_forward_backward", original)
    run_study(settings(tiny, tmp_path / "s", heads=["cls"], n_trials=4))
    again = trials(tc, "cls")
    done = [t for t in again if t.state.name == "COMPLETE"]
    assert len(done) == 4
    assert sorted(t.params["learning_rate"] for t in stopped) == sorted(
        t.params["learning_rate"] for t in done if "retry_of" in t.user_attrs)


def test_a_cuda_study_of_an_encoder_that_cannot_pack_says_why_in_its_budget(tmp_path):
    """The CUDA default falls back to one trial at a time for an encoder fusion cannot take,
    and the summary's Budget line says so (an explicit --pack is refused instead)."""
    from types import SimpleNamespace

    from poolbert.config import RunConfig
    from poolbert.tuning.protocol import budget_text
    from poolbert.tuning.results import Budget, StudyResult
    from poolbert.tuning.settings import TuneConfig
    from poolbert.tuning.study import unpacked_reason

    run = RunConfig()
    run.train.device = "cuda"  # what the study would use; nothing runs on it here
    tc = TuneConfig(run=run, output_dir=str(tmp_path / "s"))
    stuck = SimpleNamespace(model_name="enc", pack_refusal=lambda: "Foo (x) holds weights")
    reason = unpacked_reason(tc, stuck)
    assert reason == "enc cannot be packed (Foo (x) holds weights)"
    line = budget_text(StudyResult(budget=Budget(n_trials={"cls": 2}, n_workers=1, pack=1,
                                                       unpacked=reason)))
    assert "one trial at a time (enc cannot be packed (Foo (x) holds weights))" in line
    tc.pack = 1
    assert unpacked_reason(tc, stuck) is None  # asked for: nothing to explain
