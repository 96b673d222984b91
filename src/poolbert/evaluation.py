"""A saved model scored again: `poolbert evaluate` and `poolbert.evaluate`.

The model is found as export and predict find it (a run directory, its model/ folder, an
exported folder or a study's best head); its run's settings say which data it was trained on,
and data settings given by the caller replace them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .config import RunConfig, apply_overrides
from .data import TokenCache, load_data
from .device import check_precision, precision_reason, resolve_device, resolve_precision
from .exporting import load_classifier, resolve_source
from .files import read_json
from .model import calibration_of, problem_of
from .scoring import ScoreOptions, score_split


def locate(model_dir: str | os.PathLike) -> tuple[Path, Path | None]:
    """(model folder, the run's config.json or None), found as export and predict find them."""
    source = resolve_source(model_dir)
    run_config = source.run.config_file if source.run else None
    return source.model_dir, run_config if run_config and run_config.is_file() else None


def score_saved_model(model_dir: str | os.PathLike, split: str, max_length: int | None,
                      batch_size: int | None, device: str, precision: str,
                      data_settings: dict[str, Any]) -> dict[str, Any]:
    """The model's metrics on `split` of its run's data (or of the data `data_settings` name),
    with the precision they were computed in and why."""
    model_path, run_config = locate(model_dir)
    config = RunConfig.from_dict(read_json(run_config)) if run_config else RunConfig()
    apply_overrides(config, data_settings, "settings")
    model, tokenizer = load_classifier(model_path)  # poolbert's folders and exported ones
    data = load_data(config.data)
    enc = TokenCache(tokenizer).get(getattr(data, split), max_length or config.train.max_length)
    where = resolve_device(device)
    used = resolve_precision(precision, where)
    check_precision(used, where)
    # the model's problem type and calibration, as predict applies them
    options = ScoreOptions(where, used, tokenizer.pad_token_id or 0,
                           batch_size, problem_type=problem_of(model.config),
                           temperature=calibration_of(model.config)[0],
                           threshold=calibration_of(model.config)[1])
    metrics = score_split(model.to(where), enc, options).metrics
    return {**metrics, "precision": used, "precision_reason": precision_reason(precision, where)}
