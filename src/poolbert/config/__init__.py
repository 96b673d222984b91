"""Settings: what a run and a study are asked to do, declared once and checked by the same rules
whether they come from flags, a settings file or keyword arguments.

    fields  `setting` (a field declared with its help and flag) and `coerce` (a value to the
            field's type)
    run     DataConfig, ModelConfig, TrainConfig, RunConfig and their checks
    build   a settings file, a config object and keyword arguments turned into a checked config
"""

from .build import CUSTOM_DATA_KEYS, read_settings_file, run_config
from .fields import Setting, check_choices, coerce, may_be_none, setting, settings_of, value_type
from .run import (
    ALIASES,
    ATTENTION_BACKENDS,
    DEFAULT_MODEL,
    GLUE_NAMES,
    GLUE_TASK_NAMES,
    METRICS,
    POOLING_NAMES,
    PRECISIONS,
    PROBLEM_TYPES,
    RECORD_ONLY_KEYS,
    SECTIONS,
    DataConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    apply_overrides,
    explicit_weights,
    flag_for,
    flatten,
    section_of,
    validate,
)

__all__ = [
    "ALIASES", "ATTENTION_BACKENDS", "CUSTOM_DATA_KEYS", "DEFAULT_MODEL", "GLUE_NAMES",
    "GLUE_TASK_NAMES", "METRICS", "POOLING_NAMES", "PRECISIONS", "PROBLEM_TYPES",
    "RECORD_ONLY_KEYS", "SECTIONS", "DataConfig", "Setting", "ModelConfig", "RunConfig", "TrainConfig",
    "apply_overrides", "check_choices", "coerce", "explicit_weights", "flag_for", "flatten",
    "may_be_none", "read_settings_file", "run_config", "section_of", "setting", "settings_of",
    "validate",
    "value_type",
]
