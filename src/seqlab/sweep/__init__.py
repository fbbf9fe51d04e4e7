"""Hyperparameter search: an Optuna study whose trials are training runs (`scripts/sweep.py`, `conf/hparams_search/`)."""
