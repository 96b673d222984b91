"""Precision on a CPU: auto is bf16 where the processor computes bf16 natively and fp32
elsewhere, whatever this machine has (the capability is forced on and off); runs, `evaluate` and
`predict` say which precision they used and why."""

from __future__ import annotations

import json
from types import MappingProxyType

import pytest
import torch
from helpers import tiny_bert_dir, tiny_glue_dir, tiny_run_config

from poolbert import device as device_module
from poolbert.cli import main
from poolbert.config import RunConfig
from poolbert.errors import PoolbertError
from poolbert.exporting import resolve_source
from poolbert.prediction import PredictOptions, Predictor
from poolbert.resources import Resources
from poolbert.tracking import History
from poolbert.training import Steps, fit

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cpu_precision")
    return tiny_bert_dir(root / "model"), tiny_glue_dir(root / "data", 32, 16)


@pytest.fixture
def native_bf16(monkeypatch):
    """This CPU computes bf16 natively (AMX), whatever the machine running the test has."""
    monkeypatch.setattr(device_module, "cpu_bf16_feature", lambda: "amx_bf16")


@pytest.fixture
def no_native_bf16(monkeypatch):
    """This CPU only emulates bf16, whatever the machine running the test has."""
    monkeypatch.setattr(device_module, "cpu_bf16_feature", lambda: None)


def config_for(setup, **train) -> RunConfig:
    config = tiny_run_config(*setup, num_train_epochs=1, **train)
    config.model.pooling = "mean_max"
    return config.validate()


class LinearDtypes:
    """The dtypes the model's Linear layers computed in while the block ran (autocast's work)."""

    def __enter__(self) -> set[torch.dtype]:
        self.seen: set[torch.dtype] = set()

        def hook(module, args, output):
            if isinstance(module, torch.nn.Linear):
                self.seen.add(output.dtype)

        self.handle = torch.nn.modules.module.register_module_forward_hook(hook)
        return self.seen

    def __exit__(self, *exc) -> None:
        self.handle.remove()


@pytest.mark.parametrize("capabilities, expected", [
    ({"avx2": True, "avx512_f": True, "avx512_bw": True, "avx512_bf16": False}, None),
    ({"avx512_f": True, "avx512_bf16": True}, "avx512_bf16"),
    ({"amx_tile": True, "amx_bf16": True, "avx512_bf16": True}, "amx_bf16"),
    ({"neon": True, "bf16": True, "architecture": "arm64"}, None),
])
def test_the_native_bf16_feature_is_read_from_the_cpu(monkeypatch, capabilities, expected):
    """AVX-512 without AVX512-BF16 is not native (oneDNN calls bf16 "supported" there)."""
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: MappingProxyType(capabilities))
    assert device_module.cpu_bf16_feature() == expected


def test_without_torch_capabilities_the_flags_of_proc_cpuinfo_decide(monkeypatch, tmp_path):
    monkeypatch.delattr(torch.cpu, "get_capabilities")
    read_flags = device_module._cpuinfo_flags.__wrapped__  # uncached
    cpuinfo = tmp_path / "cpuinfo"
    monkeypatch.setattr(device_module, "_cpuinfo_flags", lambda: read_flags(cpuinfo))
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n")
    assert device_module.cpu_bf16_feature() == "avx512_bf16"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f\n")
    assert device_module.cpu_bf16_feature() is None
    assert read_flags(tmp_path / "missing") == frozenset()  # not Linux: no native bf16


def test_auto_is_bf16_on_a_native_cpu_and_explicit_settings_stay(native_bf16):
    assert device_module.resolve_precision("auto", CPU) == "bf16"
    assert device_module.resolve_precision("fp32", CPU) == "fp32"
    assert device_module.precision_reason("auto", CPU) == "bf16: auto, the cpu has amx_bf16"
    assert device_module.precision_reason("fp32", CPU) == "fp32: asked for"


def test_auto_is_fp32_on_a_cpu_without_native_bf16(no_native_bf16):
    assert device_module.resolve_precision("auto", CPU) == "fp32"
    assert device_module.resolve_precision("bf16", CPU) == "bf16"  # still there when asked
    assert "no native bf16" in device_module.precision_reason("auto", CPU)
    assert device_module.precision_reason("bf16", CPU).startswith("bf16: asked for; emulated")


@pytest.mark.parametrize("native", [True, False])
def test_a_study_summary_says_which_precision_its_trials_used_and_why(monkeypatch, tmp_path,
                                                                      native):
    from poolbert.tuning.protocol import budget_text
    from poolbert.tuning.results import Budget, StudyResult
    from poolbert.tuning.settings import tune_config
    from poolbert.tuning.space import load_space
    from poolbert.tuning.study import budget

    monkeypatch.setattr(device_module, "cpu_bf16_feature",
                        lambda: "avx512_bf16" if native else None)
    tc = tune_config(None, {"device": "cpu"}, output_dir=tmp_path / "s", preset="quick")
    recorded = Budget.from_json(budget(tc, load_space(tc.space), 1, 1))
    assert recorded.precision == ("bf16" if native else "fp32")
    expected = ("bf16: auto, the cpu has avx512_bf16" if native else
                "fp32: auto, the cpu has no native bf16 (no amx_bf16 or avx512_bf16)")
    assert recorded.precision_reason == expected
    assert f"on cpu (the quick preset: all of train on a GPU, a fixed subset on a CPU) in " \
        f"{expected}" in budget_text(StudyResult(budget=recorded, preset="quick"))


def test_a_run_on_a_native_cpu_trains_and_scores_in_bf16_and_says_why(setup, native_bf16,
                                                                      tmp_path):
    config = config_for(setup)
    resources = Resources.load(config)
    with LinearDtypes() as dtypes:
        result = fit(config, resources, quiet=True)
    assert dtypes == {torch.bfloat16}  # training and the epoch's evaluation alike
    assert result.metrics["precision"] == "bf16"
    assert result.metrics["precision_reason"] == "bf16: auto, the cpu has amx_bf16"
    # float32 master weights: the saved model is float32
    assert {p.dtype for p in result.model.parameters()} == {torch.float32}
    result.save(tmp_path / "run", {"train": {"precision": "auto"}}, resources, save_model=False)
    record = json.loads((tmp_path / "run" / "config.json").read_text())
    assert record["train"]["precision"] == "auto"  # the setting, so a rerun resolves again
    assert record["precision_resolved"] == "bf16"
    assert record["precision_reason"] == "bf16: auto, the cpu has amx_bf16"


def test_a_run_on_a_cpu_without_native_bf16_stays_fp32(setup, no_native_bf16):
    config = config_for(setup)
    with LinearDtypes() as dtypes:
        result = fit(config, quiet=True)
    assert dtypes == {torch.float32}
    assert result.metrics["precision"] == "fp32"
    assert "no native bf16" in result.metrics["precision_reason"]


def test_the_cpu_optimiser_step_is_fused_adamw(setup):
    config = config_for(setup)
    resources = Resources.load(config)
    model = resources.fresh_model(config, CPU)
    enc = resources.cache.get(resources.data.train, 32)
    steps = Steps(model, config, resources, enc, CPU, "fp32", History(None))
    assert isinstance(steps.optimizer, torch.optim.AdamW)
    assert all(group["fused"] for group in steps.optimizer.param_groups)


@pytest.fixture(scope="module")
def run_dir(setup, tmp_path_factory):
    out = tmp_path_factory.mktemp("precision_run") / "run"
    model_dir, data_dir = setup
    assert main(["train", "--data-dir", str(data_dir), "--model", str(model_dir), "--pooling",
                 "mean", "--num-train-epochs", "1", "--max-length", "32", "--batch-size", "8",
                 "--device", "cpu", "--precision", "fp32", "--output-dir", str(out),
                 "--quiet"]) == 0
    return out


def test_predict_follows_auto_and_the_precision_flag(run_dir, native_bf16):
    source = resolve_source(run_dir)
    assert Predictor.load(source, PredictOptions(device="cpu")).backend.precision == "bf16"
    fp32 = Predictor.load(source, PredictOptions(device="cpu", precision="fp32"))
    assert fp32.backend.precision == "fp32"
    with LinearDtypes() as dtypes:
        fp32.probs(["the cat sat"], ["yes"])
    assert dtypes == {torch.float32}
    with pytest.raises(PoolbertError, match="--precision must be one of"):
        Predictor.load(source, PredictOptions(device="cpu", precision="bf17"))
    with pytest.raises(PoolbertError, match="--precision is for --backend torch"):
        Predictor.load(source, PredictOptions(device="cpu", precision="fp32",
                                              backend="onnxruntime"))


def test_evaluate_scores_in_the_precision_asked_and_says_why(run_dir, no_native_bf16, capsys):
    capsys.readouterr()
    assert main(["evaluate", str(run_dir), "--quiet"]) == 0
    auto = json.loads(capsys.readouterr().out)
    assert auto["precision"] == "fp32" and "no native bf16" in auto["precision_reason"]
    with LinearDtypes() as dtypes:
        assert main(["evaluate", str(run_dir), "--precision", "bf16", "--quiet"]) == 0
    forced = json.loads(capsys.readouterr().out)
    assert dtypes == {torch.bfloat16}
    assert forced["precision"] == "bf16" and "emulated" in forced["precision_reason"]
    # the same weights in bf16 and fp32: the same decisions on this small split
    assert forced["eval_accuracy"] == pytest.approx(auto["eval_accuracy"], abs=1 / 16 + 1e-9)


def test_scoring_casts_each_weight_to_bf16_once_per_split_not_per_batch(setup):
    from torch.profiler import profile

    from poolbert.scoring import ScoreOptions, predict_logits

    config = config_for(setup)
    resources = Resources.load(config)
    model = resources.fresh_model(config, CPU)
    enc = resources.cache.get(resources.data.validation, 32)  # 16 rows: 4 batches of 4
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    with profile(record_shapes=True) as prof:
        predict_logits(model, enc, ScoreOptions(CPU, "bf16", resources.pad_id, batch_size=4))
    weight_shapes = [list(m.weight.shape) for m in linears]
    # casts of a weight-shaped tensor: the weights (activations are (batch, ...), batch 4)
    weight_casts = sum(e.name == "aten::_to_copy" and e.input_shapes[0] in weight_shapes
                       for e in prof.events())
    assert weight_casts == len(linears)
