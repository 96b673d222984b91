"""poolbert: fine-tune BERT-family encoders with the pooling head as a tunable choice, and
compare heads with Optuna studies under an honest protocol.

The Python API (each name is imported on first use, so `import poolbert` stays light):

    train     fine-tune one encoder with one head; returns a `Run`
    tune      tune and compare heads (Optuna), seed re-trainings, tests; returns a `Study`
    evaluate  score a saved model again
    report    the figures and HTML page of a study or run
    export    a Hub-ready folder that plain transformers loads (and ONNX)
    push      export and upload to the Hugging Face Hub
    predict   a file or a GLUE split through a model
    load      a model to predict with in Python: a `Classifier`

Example:
    >>> import poolbert
    >>> run = poolbert.train(task="rte", pooling="mean_max", output_dir="runs/mm")
    >>> poolbert.load(run.output_dir).predict([("A man sleeps.", "A man is sleeping.")])
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .version import __version__

# name -> the module that defines it
_HOMES = {
    "train": "api", "tune": "api", "evaluate": "api", "report": "api", "export": "api",
    "push": "api", "predict": "api", "load": "api",
    "Classifier": "classifier", "Run": "outputs", "Study": "outputs",
    "RunConfig": "config", "DEFAULT_MODEL": "config", "PoolbertError": "errors",
}
__all__ = [
    "DEFAULT_MODEL", "Classifier", "PoolbertError", "Run", "RunConfig", "Study", "__version__",
    "evaluate", "export", "load", "predict", "push", "report", "train", "tune",
]

if TYPE_CHECKING:  # for type checkers and editors; at run time names load on first use
    from .api import evaluate, export, load, predict, push, report, train, tune
    from .classifier import Classifier
    from .config import DEFAULT_MODEL, RunConfig
    from .errors import PoolbertError
    from .outputs import Run, Study


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{_HOMES[name]}", __name__), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
