"""poolbert from Python: the functions a notebook or a script calls, and the `poolbert` command
calls too (its modules only parse flags, call these and print).

Settings are keyword arguments named as the config fields (the flags in snake_case:
`--learning-rate` is `learning_rate`, `--model` is `model`); `config=` takes a `RunConfig` or a
settings file (JSON, YAML or TOML; a run's config.json repeats that run). Every rule applies
here, whatever the caller: validation, presets, the custom-data rule, the checks of task and
head names, tracking, output folders written whole or not at all. Bad settings raise
`PoolbertError` with the one-line message the command prints.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from .classifier import Classifier
from .config import RunConfig, run_config
from .errors import PoolbertError
from .outputs import Run, Study

ConfigLike = RunConfig | str | os.PathLike | None


def train(config: ConfigLike = None, *, output_dir: str | os.PathLike, overwrite: bool = False,
          save_model: bool = True, quiet: bool = False, command: list[str] | None = None,
          **settings: Any) -> Run:
    """Fine-tune an encoder with one pooling head and write a run directory.

    Args:
        config: a `RunConfig` or a settings file; keyword settings override it.
        output_dir: the run directory to create; it is written in a temporary folder and
            renamed when complete, so it never holds half a run.
        overwrite: replace an existing `output_dir` (otherwise refused).
        save_model: write model/ (safetensors weights, config and tokenizer).
        quiet: no progress bars.
        command: what config.json records as the command (the `poolbert` command passes its
            command line).
        **settings: any run setting by name, e.g. task, data_dir, model, pooling,
            learning_rate, num_train_epochs, max_train_samples, seed, report_to.

    Returns:
        The `Run`: `metrics` (metrics.json), `history` (history.jsonl), `output_dir`.

    Raises:
        PoolbertError: bad settings or data (one line; nothing is written).

    Example:
        >>> run = poolbert.train(task="rte", pooling="mean_max", num_train_epochs=1,
        ...                      output_dir="runs/mm")
        >>> run.metrics["eval_accuracy"]
    """
    from .files import atomic_dir, check_output_dir
    from .reporting import plot_loss_curve
    from .resources import Resources, run_record
    from .tracking import Plan, check_tools
    from .training import fit

    cfg = run_config(config, settings)
    tools = check_tools(cfg.train.report_to)  # before any work, as the output directory
    out = check_output_dir(output_dir, overwrite)
    resources = Resources.load(cfg)
    # the trackers log into the temporary folder while training; it becomes `out` at the end
    with atomic_dir(out, overwrite) as tmp, Plan(tools, tmp, moves_to=out).start(
            out.resolve().name, cfg.to_dict(), {"head": cfg.model.pooling}) as tracking:
        result = fit(cfg, resources, quiet=quiet, on_record=tracking.on_record)
        result.save(tmp, run_record(cfg, resources.data, command), resources, save_model)
        plot_loss_curve(result.history, tmp / "loss_curve.png",
                        f"{cfg.model.pooling} on {resources.data.source}",
                        result.metrics["metric"], result.metrics["problem_type"])
        tracking.log_artifacts(tmp)
    return Run(out)


def tune(config: ConfigLike = None, *, output_dir: str | os.PathLike, preset: str | None = None,
         quiet: bool = False, command: list[str] | None = None, **settings: Any) -> Study:
    """Tune each pooling head in its own Optuna study, re-train each head's best settings with
    several seeds, compare the heads with paired tests, and draw the report. Calling it again
    with the same settings resumes the study.

    Args:
        config: a `RunConfig` or a settings file of the settings every trial shares.
        output_dir: the study directory (created, or resumed).
        preset: "quick" (the embedded model, a small budget: minutes on a CPU) or "paper"
            (bert-base-uncased and the report's spaces); settings given here win over it.
        quiet: no progress bars (one line per trial is still printed).
        command: what config.json records as the command.
        **settings: study settings (poolings, space, n_trials, pruner, select_on, final_seeds,
            storage, n_workers, pack, ...) and run settings for every trial, by name.

    Returns:
        The `Study`: `summary` (summary.json, typed), `best_run_dir(head)`, `load(head)`.

    Raises:
        PoolbertError: bad settings, data, space or storage (one line; nothing is written).

    Example:
        >>> study = poolbert.tune(preset="quick", poolings=["cls", "mean_max"],
        ...                       output_dir="runs/quick")
        >>> study.summary.heads["mean_max"].mean
    """
    from .interrupts import sigterm_as_interrupt
    from .tuning import run_study
    from .tuning.settings import tune_config

    tc = tune_config(config, settings, output_dir=output_dir, preset=preset, quiet=quiet,
                     command=command)
    with sigterm_as_interrupt():  # SIGTERM stops as Ctrl-C does: finished work is on disk
        run_study(tc)
        _draw_study_report(tc.study_dir.path, tc.storage)
    return Study(tc.study_dir.path)


def _draw_study_report(folder: Path, storage: str | None) -> None:
    """The study's report; a failure here leaves the finished study as it is (a warning)."""
    from .reporting import build_report

    try:
        build_report(folder, storage=storage if storage and "://" in storage else None)
    except Exception as exc:  # the study is on disk; the report can be redone
        print(f"poolbert: warning: report not built ({type(exc).__name__}: {exc}); run "
              f"`poolbert report {folder}`", file=sys.stderr)


def evaluate(model_dir: str | os.PathLike, *, split: str = "validation",
             max_length: int | None = None, batch_size: int | None = None,
             device: str = "auto", precision: str = "auto",
             **data_settings: Any) -> dict[str, Any]:
    """Score a saved model on a split of the data it was trained on, or of other data.

    Args:
        model_dir: a run directory, its model/ folder, an exported folder or a study (its best
            head).
        split: "validation" or "train".
        max_length: tokens per example (default: the run's).
        batch_size: evaluation batch size (default: 128 on CUDA, 32 on CPU).
        device: "auto", "cpu", "cuda", ...
        precision: "auto" (bf16 autocast on a GPU with bf16 and on a CPU that computes bf16
            natively, fp16 on other GPUs, else fp32), "fp32", "bf16" or "fp16".
        **data_settings: data settings (task, data_dir, validation_file, text_columns, ...)
            that replace the run's own.

    Returns:
        The metrics, as metrics.json names them (eval_accuracy, eval_f1, eval_loss, ...), with
        the precision they were computed in and why (precision, precision_reason).

    Example:
        >>> poolbert.evaluate("runs/mm")["eval_accuracy"]
    """
    from .evaluation import score_saved_model

    if split not in ("validation", "train"):
        raise PoolbertError(f"split must be validation or train, got {split!r}")
    return score_saved_model(model_dir, split, max_length, batch_size, device, precision,
                             data_settings)


def report(directory: str | os.PathLike, *, storage: str | None = None) -> Path:
    """Draw the figures and the self-contained HTML page of a study or a run directory from
    its files (nothing is retrained); an existing report/ is replaced.

    Args:
        directory: a study directory or a run directory.
        storage: the Optuna storage URL to read trials from (default: the study's own).

    Returns:
        The path of report/index.html.

    Example:
        >>> poolbert.report("runs/quick")
    """
    from .reporting import build_any_report

    return build_any_report(Path(directory), storage=storage)


def export(source: str | os.PathLike, *, to: str | os.PathLike, head: str = "best",
           overwrite: bool = False, license: str = "apache-2.0", repo_id: str | None = None,
           onnx: bool = False, quantize: bool = False) -> Path:
    """Write a Hub-ready folder that plain transformers loads (weights, config, tokenizer, model
    card, remote code where the head needs it), checked weight by weight before it is put in
    place.

    Args:
        source: a run directory, a study directory (one head's best run) or a model folder.
        to: the folder to create.
        head: for a study, the head to export ("best": the best seed mean).
        overwrite: replace an existing `to` folder.
        license: the license in the model card's metadata.
        repo_id: the Hub repository (user/name) the card's usage snippet names.
        onnx: also model.onnx, checked against PyTorch.
        quantize: with onnx, also model.int8.onnx and both graphs' validation accuracy.

    Returns:
        The exported folder.

    Example:
        >>> poolbert.export("runs/quick", to="exported/")
    """
    from .exporting import export_model

    return export_model(source, to, head=head, overwrite=overwrite, license=license,
                        repo_id=repo_id, onnx=onnx, quantize=quantize)


def push(source: str | os.PathLike, *, repo_id: str, private: bool = False,
         revision: str | None = None, commit_message: str | None = None, dry_run: bool = False,
         head: str = "best", license: str = "apache-2.0") -> list[tuple[str, int]]:
    """Export `source` and upload it to the Hugging Face Hub (the token comes from HF_TOKEN or
    the saved login, never from an argument).

    Args:
        source: a run, a study (its `head`), a model folder or an exported folder.
        repo_id: the Hub repository, e.g. "user/bert-rte".
        private: create the repository as private.
        revision: the branch to push to (default main).
        commit_message: the commit message.
        dry_run: build and check the folder and list its files; nothing is uploaded.
        head: for a study, the head to push.
        license: the license in the model card's metadata.

    Returns:
        The (file name, bytes) pairs uploaded (or that would be, with dry_run).

    Example:
        >>> poolbert.push("runs/quick", repo_id="user/bert-rte-meanmax", dry_run=True)
    """
    from .exporting import push as upload

    return upload(source, repo_id, private=private, revision=revision,
                  commit_message=commit_message, dry_run=dry_run, head=head, license=license)


def predict(model: str | os.PathLike, *, input: str | os.PathLike | None = None,
            output: str | os.PathLike | None = None, task: str | None = None,
            split: str = "test", data_dir: str | None = None,
            glue_submission: str | os.PathLike | None = None,
            text_columns: list[str] | None = None, batch_size: int = 64,
            max_length: int | None = None, device: str = "auto", head: str = "best",
            backend: str = "torch", onnx_file: str | None = None, precision: str = "auto",
            overwrite: bool = False, quiet: bool = False) -> int:
    """Predict a file's rows, or a split of a GLUE task, into a predictions file.

    Args:
        model: a run, study (its `head`), model or exported folder.
        input: a csv, tsv, jsonl, json or parquet file with one or two text columns.
        output: the predictions file (csv, tsv or jsonl, by extension).
        task: a GLUE task whose `split` to predict (instead of `input`).
        split: test, validation or train (with `task`).
        data_dir: the task's local folder (default: $POOLBERT_DATA_DIR/glue/<task>, else
            the Hub).
        glue_submission: also write the GLUE server's file (with `task` and split test).
        text_columns: one or two columns (default: the model's training columns).
        batch_size: rows per batch.
        max_length: tokens per example (default: the training run's, else 128).
        device: "auto", "cpu", "cuda", ...
        head: for a study, which head.
        backend: "torch", or "onnxruntime" for a folder exported with onnx.
        onnx_file: with onnxruntime, the graph in the folder (default model.onnx).
        precision: with torch, "auto" (bf16 autocast on a GPU with bf16 and on a CPU that
            computes bf16 natively, fp16 on other GPUs, else fp32), "fp32", "bf16" or "fp16".
        overwrite: replace existing output files.
        quiet: no progress bar.

    Returns:
        The number of rows predicted.

    Example:
        >>> poolbert.predict("exported/", input="pairs.csv", output="preds.csv")
    """
    from .prediction import PredictOptions, predict_file, predict_split

    options = PredictOptions(text_columns or None, batch_size, max_length, device, head,
                             overwrite, quiet, backend, onnx_file, precision)
    if input is not None and task is not None:
        raise PoolbertError("give either --input or --task, not both")
    if input is not None:
        if output is None:
            raise PoolbertError("--input needs --output")
        if glue_submission is not None:
            raise PoolbertError("--glue-submission needs --task (not --input)")
        return predict_file(model, input, output, options)
    if task is None:
        raise PoolbertError("nothing to predict: give --input FILE or --task TASK --split SPLIT")
    return predict_split(model, task, split, output, glue_submission, data_dir, options)


def load(path: str | os.PathLike, *, head: str = "best", device: str = "auto",
         batch_size: int = 64, max_length: int | None = None,
         backend: str = "torch", precision: str = "auto") -> Classifier:
    """A trained model to predict with, from a run directory, a study directory (its best
    head, or `head`), a model folder or an exported folder.

    Args:
        path: the folder.
        head: for a study, which head ("best": the best seed mean).
        device: "auto", "cpu", "cuda", ...
        batch_size: rows per batch when predicting.
        max_length: tokens per example (default: the training run's, else 128).
        backend: "torch", or "onnxruntime" for a folder exported with onnx.
        precision: with torch, as `predict`'s.

    Returns:
        A `Classifier`: `predict(texts)`, `predict_proba(texts)`, `labels`.

    Example:
        >>> clf = poolbert.load("runs/mm")
        >>> clf.predict([("A man sleeps.", "A man is sleeping.")])
    """
    return Classifier.load(path, head=head, device=device, batch_size=batch_size,
                           max_length=max_length, backend=backend,
                           precision=precision)
