"""GLUE tasks: their text columns, label names and the splits the hub and GLUE's TSVs use."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import PoolbertError

HUB_DATASET = "nyu-mll/glue"


@dataclass
class TaskSpec:
    name: str
    text_columns: list[str]
    label_names: list[str]
    validation_split: str = "validation"
    test_split: str = "test"
    # the original GLUE TSVs name some columns differently from the hub (original -> hub name)
    tsv_aliases: dict[str, str] = field(default_factory=dict)


GLUE_TASKS: dict[str, TaskSpec] = {
    "rte": TaskSpec("rte", ["sentence1", "sentence2"], ["entailment", "not_entailment"]),
    "cola": TaskSpec("cola", ["sentence"], ["unacceptable", "acceptable"]),
    "sst2": TaskSpec("sst2", ["sentence"], ["negative", "positive"]),
    "mrpc": TaskSpec(
        "mrpc", ["sentence1", "sentence2"], ["not_equivalent", "equivalent"],
        tsv_aliases={"#1 String": "sentence1", "#2 String": "sentence2", "Quality": "label"},
    ),
    "qqp": TaskSpec(
        "qqp", ["question1", "question2"], ["not_duplicate", "duplicate"],
        tsv_aliases={"is_duplicate": "label"},
    ),
    "mnli": TaskSpec(
        "mnli", ["premise", "hypothesis"], ["entailment", "neutral", "contradiction"],
        validation_split="validation_matched", test_split="test_matched",
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
