"""seqlab: an experiment pipeline for LSTM sequence models (language models and forecasters)."""

__version__ = "0.1.0"
