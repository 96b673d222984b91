"""bench/gpu.py's results: the table, its ratios and the machine, written to
bench/results/gpu-<device>.{md,json} (and to $OUT where it is set)."""

from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def machine() -> dict:
    import torch
    import transformers

    info = {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "cpu_count": os.cpu_count()}
    try:
        import optuna

        info["optuna"] = optuna.__version__
    except ImportError:
        info["optuna"] = "not installed"
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _get(raw: dict, *keys: str) -> Any:
    """raw[k1][k2]... or None where any level is missing."""
    for key in keys:
        if not isinstance(raw, dict) or raw.get(key) is None:
            return None
        raw = raw[key]
    return raw


def _div(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def ratios(raw: dict) -> dict[str, float | None]:
    """The headline ratios, each above 1 where poolbert (or packing) is faster; None where a row
    it needs did not run or failed."""
    epochs = _get(raw, "single", "poolbert", "epoch_examples_per_s") or []
    later = epochs[1:]
    return {
        "train_ratio_vs_trainer_fp32": _div(_get(raw, "single", "poolbert", "examples_per_s"),
                                            _get(raw, "single", "peer", "train_examples_per_s")),
        "first_epoch_ratio": _div(epochs[0], sum(later) / len(later)) if later else None,
        "study_ratio_vs_hpsearch": _div(_get(raw, "study", "peer", "wall_s"),
                                        _get(raw, "study", "poolbert", "wall_s")),
        "pack_ratio_vs_one_at_a_time": _div(_get(raw, "pack", "poolbert_pack1", "wall_s"),
                                            _get(raw, "pack", "poolbert", "wall_s")),
        "bert_base_ratio": _div(_get(raw, "bert-base", "poolbert", "examples_per_s"),
                                _get(raw, "bert-base", "peer", "train_examples_per_s")),
    }


def payload(raw: dict, table: list, notes: list[str], rows: dict[str, dict], info: dict,
            started: datetime.datetime) -> dict:
    """The JSON file's content."""
    return {"device": info.get("gpu", "cpu"), "date": started.isoformat(timespec="seconds"),
            "ratios": ratios(raw), "row_times": rows, "machine": info, "rows": raw,
            "table": table, "notes": notes}


def write(raw: dict, table: list, notes: list[str], rows: dict[str, dict],
          started: datetime.datetime, wall_s: float) -> str:
    """Print nothing; write the table and the JSON; return the table's text."""
    info = machine()
    lines = [f"Device: {info.get('gpu', 'no GPU')}; {info['cpu_count']} CPU cores; python "
             f"{info['python']}, torch {info['torch']}, transformers {info['transformers']}, "
             f"optuna {info['optuna']}. Wall time of this bench: {wall_s:.0f} s.", "",
             "| measure | peer | poolbert | poolbert vs peer |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {m} | {p} | {o} | {r} |" for m, p, o, r in table]
    lines += ["", "Ratios (above 1: poolbert, or packing, faster): " + ", ".join(
        f"{k} {'–' if v is None else f'{v:.2f}'}" for k, v in ratios(raw).items())]
    lines += ["", "Rows (status, wall s, H100 estimate s): " + "; ".join(
        f"{name} {r['status']}" + (f" {r['wall_s']:.0f}" if r.get("wall_s") is not None else "")
        + f" (est. {r['estimate_s']:.0f})" for name, r in rows.items())]
    lines += [""] + [f"- {note}" for note in notes]
    text = "\n".join(lines) + "\n"
    name = "gpu-" + "".join(c if c.isalnum() else "-" for c in info.get("gpu", "none")).lower()
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    data = json.dumps(payload(raw, table, notes, rows, info, started), indent=2)
    for folder in [results] + ([Path(os.environ["OUT"])] if os.environ.get("OUT") else []):
        (folder / f"{name}.md").write_text(text)
        (folder / f"{name}.json").write_text(data + "\n")
    return text
