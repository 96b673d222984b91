"""GLUE tasks: their text columns, labels, problem type, official metric, and the splits and
column names the hub and GLUE's own TSV files use."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import PoolbertError

HUB_DATASET = "nyu-mll/glue"


@dataclass
class TaskSpec:
    name: str
    text_columns: list[str]
    label_names: list[str]  # for regression: the target's name
    problem_type: str = "single_label"  # or "regression"
    metric: str = "accuracy"  # the task's official metric (poolbert.metrics names)
    validation_split: str = "validation"
    test_split: str = "test"
    # further splits scored at the end of a run, by name (MNLI's mismatched genres)
    extra_validation: dict[str, str] = field(default_factory=dict)
    # the original GLUE TSVs name some columns differently from the hub (original -> hub name)
    tsv_aliases: dict[str, str] = field(default_factory=dict)
    # column names of GLUE TSVs distributed without a header line (CoLA's train and dev)
    headerless_columns: list[str] | None = None


GLUE_TASKS: dict[str, TaskSpec] = {
    "rte": TaskSpec("rte", ["sentence1", "sentence2"], ["entailment", "not_entailment"]),
    "cola": TaskSpec("cola", ["sentence"], ["unacceptable", "acceptable"], metric="mcc",
                     headerless_columns=["source", "label", "author_label", "sentence"]),
    "sst2": TaskSpec("sst2", ["sentence"], ["negative", "positive"]),
    "mrpc": TaskSpec(
        "mrpc", ["sentence1", "sentence2"], ["not_equivalent", "equivalent"], metric="f1",
        tsv_aliases={"#1 String": "sentence1", "#2 String": "sentence2", "Quality": "label"},
    ),
    "qqp": TaskSpec(
        "qqp", ["question1", "question2"], ["not_duplicate", "duplicate"], metric="f1",
        tsv_aliases={"is_duplicate": "label"},
    ),
    "stsb": TaskSpec("stsb", ["sentence1", "sentence2"], ["similarity"],
                     problem_type="regression", metric="pearson",
                     tsv_aliases={"score": "label"}),
    "mnli": TaskSpec(
        "mnli", ["premise", "hypothesis"], ["entailment", "neutral", "contradiction"],
        validation_split="validation_matched", test_split="test_matched",
        extra_validation={"mismatched": "validation_mismatched"},
        tsv_aliases={"sentence1": "premise", "sentence2": "hypothesis", "gold_label": "label"},
    ),
    "qnli": TaskSpec("qnli", ["question", "sentence"], ["entailment", "not_entailment"]),
    "wnli": TaskSpec("wnli", ["sentence1", "sentence2"], ["not_entailment", "entailment"]),
}


def task_spec(task: str | None) -> TaskSpec | None:
    """The GLUE preset for `task` (case-insensitive), None for custom data."""
    if task is None or task == "":
        return None
    spec = GLUE_TASKS.get(task.lower())
    if spec is None:
        known = ", ".join(sorted(GLUE_TASKS))
        raise PoolbertError(f"unknown task {task!r}; known tasks: {known} (or none: custom data)")
    return spec
