"""A study's results, typed: what summary.json holds, read and written here only.

`StudyResult.to_json()` gives summary.json's content (the keys `poolbert tune` has always
written); `StudyResult.from_json()` reads it back, including files written by older versions
(`dev_accuracy_best` / `seed_accuracies` before --metric, no `metric_name`, no `device` or
`pack` in the budget). Fields marked `when_set` (the statistics added on top of the paired
tests) are written only when they hold a value, so a study without them writes what it always
did. Pure data: no I/O but `read_result`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from ..errors import PoolbertError
from ..files import read_json
from ..layout import StudyDir
from ..metrics import METRIC_KEYS

WHEN_SET = {"when_set": True}  # field metadata: left out of the JSON while unset


def _optional() -> Any:
    return field(default=None, metadata=WHEN_SET)


def _to_json(obj: Any) -> dict[str, Any]:
    """The dataclass's fields in declaration order; `when_set` ones only when set (not None,
    and not a False that is the field's default)."""
    out = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        unset = value is None or (value is False and f.default is False)
        if not (f.metadata.get("when_set") and unset):
            out[f.name] = value
    return out


def _known(cls: Any, data: dict[str, Any]) -> dict[str, Any]:
    """The keys of `data` that are fields of `cls` (others, e.g. from newer versions, dropped)."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{where} is not an object")
    return value


@dataclass
class Budget:
    """What the study was allowed: trials per head, space, pruner, seeds, workers, time."""

    n_trials: dict[str, int] = field(default_factory=dict)
    space: str | None = None
    pruner: str | None = None
    max_train_samples: int | None = None
    device: str | None = None  # not recorded by the first versions
    final_seeds: int | None = None
    n_workers: int | None = None
    trials_per_gpu: int | None = None
    pack: int = 1  # studies written before packs trained one trial per worker
    timeout: float | None = None
    # why the CUDA default trained one trial at a time (an encoder fusion cannot take)
    unpacked: str | None = _optional()
    # the precision trials computed in and why (device.precision_reason); not recorded before
    precision: str | None = _optional()
    precision_reason: str | None = _optional()

    def to_json(self) -> dict[str, Any]:
        return _to_json(self)

    @classmethod
    def from_json(cls, data: Any) -> Budget:
        data = _known(cls, _object(data, "budget"))
        return cls(**{**data, "pack": data.get("pack") or 1})


@dataclass
class HeadResult:
    """One head: its trials, best trial, best model on dev and seed re-trainings."""

    n_trials: int | None = None  # complete + pruned + failed
    n_requested: int | None = None
    n_complete: int | None = None
    n_pruned: int | None = None
    n_failed: int | None = None
    best_trial: int | None = None
    best_value: float | None = None  # the best trial's objective on the selection set
    best_params: dict[str, Any] | None = None
    best_epoch: int | None = None
    dev_value_best: float | None = None  # the best trial's model on dev, the study's metric
    dev_precision: list[float] | None = None  # per class, of that model on dev
    dev_recall: list[float] | None = None
    seeds: list[int] = field(default_factory=list)
    seed_values: list[float] = field(default_factory=list)  # per seed, the metric on dev
    mean: float | None = None
    std: float | None = None
    ci95: list[float] | None = None
    epochs_saved_by_pruning: int | None = None
    # issue 20: against the baseline (computed elsewhere, written when set)
    beats_baseline: bool | None = _optional()
    baseline_p_adjusted: float | None = _optional()
    # --race: whether the race stopped the head, after how many finished trials, and the
    # trials of its budget it did not run (requested minus finished)
    race_stopped: bool | None = _optional()
    race_stopped_after: int | None = _optional()
    trials_saved_by_race: int | None = _optional()

    def to_json(self) -> dict[str, Any]:
        return _to_json(self)

    @classmethod
    def from_json(cls, data: Any, name: str = "") -> HeadResult:
        data = dict(_object(data, f"heads.{name}"))
        # studies written before --metric name the study's metric "accuracy"
        if "dev_value_best" not in data and "dev_accuracy_best" in data:
            data["dev_value_best"] = data["dev_accuracy_best"]
        if "seed_values" not in data and "seed_accuracies" in data:
            data["seed_values"] = data["seed_accuracies"]
        data = _known(cls, data)
        data["seeds"] = list(data.get("seeds") or [])
        data["seed_values"] = list(data.get("seed_values") or [])
        return cls(**data)


@dataclass
class Comparison:
    """One paired test between heads a and b on the same dev examples."""

    a: str
    b: str
    # the order summary.json has always had (but for paired_t_seeds, which put test first)
    alpha: float | None = None
    basis: str | None = None
    a_correct_b_wrong: int | None = _optional()  # classification: the discordant counts
    b_correct_a_wrong: int | None = _optional()
    test: str = "test"
    statistic: float | None = None
    p_value: float | None = None
    difference: float | None = _optional()  # A - B (not for McNemar)
    ci95: list[float] | None = _optional()  # bootstrap interval of the difference
    n_resamples: int | None = _optional()
    significant: bool | None = None
    # issue 20 (computed elsewhere, written when set)
    p_adjusted: float | None = _optional()  # Holm-adjusted
    primary: bool = field(default=False, metadata=WHEN_SET)
    min_detectable_effect: float | None = _optional()
    example_sd: float | None = _optional()  # per-example sd of the difference (plan's input)

    def to_json(self) -> dict[str, Any]:
        return _to_json(self)

    @classmethod
    def from_json(cls, data: Any) -> Comparison:
        data = _object(data, "a comparison")
        if "a" not in data or "b" not in data:
            raise ValueError("a comparison names no heads a and b")
        return cls(**_known(cls, data))


@dataclass
class Baseline:
    """What every head is held against: the best prediction that never reads the text, on
    dev (for accuracy, dev's most frequent class; tuning.baseline)."""

    name: str
    value: float | None

    def to_json(self) -> dict[str, Any]:
        return _to_json(self)


@dataclass
class RaceResult:
    """--race: the stopping rule in words, the heads it stopped and the trials it saved over
    all heads (per head: HeadResult's race fields)."""

    rule: str
    stopped: list[str] = field(default_factory=list)
    trials_saved: int = 0

    def to_json(self) -> dict[str, Any]:
        return _to_json(self)


@dataclass
class StudyResult:
    """summary.json: a whole study's results."""

    task: str | None = None
    model: str | None = None
    selection: str | None = None  # "dev" or "holdout"
    select_on_description: str | None = None
    metric: str = "eval_accuracy"  # the metrics.json key
    metric_name: str = "accuracy"  # the --metric name
    problem_type: str = "single_label"
    label_names: list[str] = field(default_factory=list)
    n_eval: int | None = None
    n_train: int | None = None
    study_name: str | None = None
    storage: str | None = None
    preset: str | None = None
    budget: Budget | None = None
    heads: dict[str, HeadResult] = field(default_factory=dict)
    comparisons: list[Comparison] = field(default_factory=list)
    wall_time_s: float | None = None
    # issue 20 (computed elsewhere, written when set)
    verdict: str | None = _optional()
    baseline: Baseline | None = _optional()
    primary_test: str | None = _optional()
    race: RaceResult | None = _optional()

    def to_json(self) -> dict[str, Any]:
        out = _to_json(self)
        out["budget"] = self.budget.to_json() if self.budget else None
        out["heads"] = {name: head.to_json() for name, head in self.heads.items()}
        out["comparisons"] = [c.to_json() for c in self.comparisons]
        if self.baseline is not None:
            out["baseline"] = self.baseline.to_json()
        if self.race is not None:
            out["race"] = self.race.to_json()
        return out

    @classmethod
    def from_json(cls, data: Any) -> StudyResult:
        """summary.json's content, from any poolbert version; ValueError for what is none."""
        data = _known(cls, _object(data, "summary"))
        metric = data.get("metric") or "eval_accuracy"
        named = {key: name for name, key in METRIC_KEYS.items()}
        heads = _object(data.get("heads") or {}, "heads")
        comparisons = data.get("comparisons") or []
        if not isinstance(comparisons, list):
            raise ValueError("comparisons is not a list")
        baseline, race = data.get("baseline"), data.get("race")
        return cls(**{
            **data, "metric": metric,
            # older studies judged every run by accuracy and did not name the metric
            "metric_name": data.get("metric_name") or named.get(metric, "accuracy"),
            "problem_type": data.get("problem_type") or "single_label",
            "label_names": list(data.get("label_names") or []),
            "budget": Budget.from_json(data["budget"]) if data.get("budget") else None,
            "heads": {str(h): HeadResult.from_json(v, str(h)) for h, v in heads.items()},
            "comparisons": [Comparison.from_json(c) for c in comparisons],
            "baseline": Baseline(**_known(Baseline, _object(baseline, "baseline")))
            if baseline else None,
            "race": RaceResult(**_known(RaceResult, _object(race, "race"))) if race else None,
        })

    def ordered_heads(self, order: list[str] | None = None) -> list[str]:
        """This study's heads: those in `order` first (as a page lists them), then the rest."""
        first = [h for h in order or [] if h in self.heads]
        return first + [h for h in self.heads if h not in first]


def read_result(folder: StudyDir) -> StudyResult | None:
    """The study's summary.json, or None when it has none; a file that is not a summary is a
    one-line error naming it."""
    if not folder.summary_json.is_file():
        return None
    try:
        return StudyResult.from_json(read_json(folder.summary_json))
    except (TypeError, ValueError) as exc:
        raise PoolbertError(f"{folder.summary_json}: not a poolbert study summary "
                            f"({exc})") from None
