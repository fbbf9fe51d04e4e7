"""What each `_target_` accepts beyond its signature's types: ranges, choices, and the keys the config must not set.

The types come from the signatures themselves (seqlab/config_schema.py reads them); this table holds only what a
type cannot say, such as "a positive integer" or "one of lstm, gru, rnn". A rule written for a class holds for its
subclasses too (ForecastDataModule's for SineDataModule). The choices are the modules' own tuples, not copies.
Tables are keyed by the class's defining module and name, and each is built on first use, so that checking a
language model's config never imports the forecasting side (pandas, datasets: half a second).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Allowed:
    """What one key accepts, said the way the error message says it ("must be <text>").

    `test` sees only values of the annotated type, never null; `own_type`: the test checks the type itself,
    for an annotation too narrow for what the config writes (a mapping with null values, say).
    """

    text: str
    test: Callable[[Any], bool]
    own_type: bool = False


def shown(value: Any) -> str:
    """A value as a user types it on the command line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(shown(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{shown(v)}" for k, v in value.items()) + "}"
    return str(value)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def one_of(*choices: Any) -> Allowed:
    choices = tuple(c for c in choices if c is not None)  # null is the annotation's business
    return Allowed("one of " + ", ".join(shown(c) for c in choices), lambda v: v in choices)


def at_least(low: int, note: str = "") -> Allowed:
    return Allowed(f"an integer >= {low}{note}", lambda v: v >= low)


POSITIVE = Allowed("a positive integer", lambda v: v >= 1)
POSITIVE_NUMBER = Allowed("a number > 0", lambda v: v > 0)
NOT_NEGATIVE = Allowed("a number >= 0", lambda v: v >= 0)
PROBABILITY = Allowed("a number in (0, 1)", lambda v: 0 < v < 1)
FRACTION = Allowed("a number in [0, 1)", lambda v: 0 <= v < 1)
DROPOUT = FRACTION  # never 1: nothing would get through
DECAY = Allowed("a number in [0, 1]", lambda v: 0 <= v <= 1)
# Lightning's reading of limit_*_batches and overfit_batches (trainer/setup.py, _determine_batch_limits).
BATCHES = Allowed(
    "a number of batches (an integer >= 0) or a fraction of them in [0, 1]",
    lambda v: (is_int(v) and v >= 0) or (is_number(v) and 0 <= v <= 1),
)
DURATION = re.compile(r"^\d+:\d\d:\d\d:\d\d$")  # Lightning's DD:HH:MM:SS
TIME_UNITS = {"days", "hours", "minutes", "seconds"}


def _is_duration(value: Any) -> bool:
    if isinstance(value, str):
        return bool(DURATION.match(value))
    return isinstance(value, dict) and set(value) <= TIME_UNITS and all(is_number(v) and v >= 0 for v in value.values())


def _is_devices(value: Any) -> bool:
    if is_int(value):
        return value >= 1 or value == -1
    if isinstance(value, str):
        return value == "auto" or bool(re.fullmatch(r"-1|\d+|(\d+,)+\d*", value.strip()))
    return isinstance(value, list) and bool(value) and all(is_int(v) and v >= 0 for v in value)


def _text_data() -> dict[str, Allowed]:
    from seqlab.data.corpus import SPLITS, TOKENIZERS

    def is_files(value: Any) -> bool:
        return isinstance(value, dict) and set(value) <= set(SPLITS) and all(
            f is None or isinstance(f, str) for f in value.values()
        )

    from seqlab.data.token_windows import MODES

    return {
        "batch_size": POSITIVE, "eval_batch_size": POSITIVE, "bptt": POSITIVE, "max_length": POSITIVE,
        "mode": one_of(*MODES),
        "tokenizer": one_of(*TOKENIZERS),
        "val_fraction": FRACTION, "test_fraction": FRACTION,
        "files": Allowed(f"a file name or null for each of {', '.join(SPLITS)}", is_files, own_type=True),
    }


def _forecast_data() -> dict[str, Allowed]:
    from seqlab.data.tables import FEATURE_MODES, FILLS
    from seqlab.data.windows import SPLITS

    return {
        "lookback": POSITIVE, "horizon": POSITIVE, "stride": POSITIVE, "season": POSITIVE,
        "batch_size": POSITIVE, "eval_batch_size": POSITIVE, "num_workers": at_least(0),
        "features": Allowed(f"one of {', '.join(FEATURE_MODES)} or a list of column names",
                            lambda v: v in FEATURE_MODES or isinstance(v, list)),
        "split": one_of(*SPLITS),
        "fill": one_of(*FILLS),
    }


def _language_model() -> dict[str, Allowed]:
    from seqlab.models.language_model import LOSS_SCALES

    return {"loss_scale": one_of(*LOSS_SCALES)}


def _rnn_lm() -> dict[str, Allowed]:
    from seqlab.nn.cells import CELLS

    return {
        "embedding_dim": POSITIVE, "hidden_dim": POSITIVE, "num_layers": POSITIVE, "dropout": DROPOUT,
        "cell": one_of(*CELLS),
    }


def _window_lm() -> dict[str, Allowed]:
    from seqlab.nn.cells import CELLS

    return {"embedding_dim": POSITIVE, "hidden_dim": POSITIVE, "dropout": DROPOUT, "cell": one_of(*CELLS)}


def _forecaster() -> dict[str, Allowed]:
    from seqlab.models.forecaster import LOSSES
    from seqlab.nn.forecast_heads import HEADS

    return {
        "head": one_of(*HEADS), "loss": one_of(*LOSSES),
        "quantiles": Allowed("a list of numbers in (0, 1)", lambda v: all(0 < q < 1 for q in v)),
        "interval": PROBABILITY, "huber_delta": POSITIVE_NUMBER, "input_noise": NOT_NEGATIVE,
        "scale_noise": NOT_NEGATIVE, "plot_windows": at_least(0),
    }


def _awd_lstm() -> dict[str, Allowed]:
    dropouts = ("dropout", "dropout_hidden", "dropout_input", "dropout_embedding", "weight_dropout")
    return {"embedding_dim": POSITIVE, "hidden_dim": POSITIVE, "num_layers": POSITIVE, **dict.fromkeys(dropouts, DROPOUT),
            "activation_penalty": NOT_NEGATIVE, "temporal_penalty": NOT_NEGATIVE}


def _lstm_forecaster() -> dict[str, Allowed]:
    from seqlab.nn.cells import CELLS
    from seqlab.nn.instance_norm import INSTANCE_NORMS
    from seqlab.nn.lstm_forecaster import DECODERS

    return {
        "hidden_dim": POSITIVE, "num_layers": POSITIVE, "dropout": DROPOUT, "instance_norm": one_of(*INSTANCE_NORMS),
        "segment_length": POSITIVE, "decoder": one_of(*DECODERS), "cell": one_of(*CELLS), "cycle_length": POSITIVE,
        "segment_stride": POSITIVE,
    }


def _long_range_data() -> dict[str, Allowed]:
    from seqlab.data.long_range import TASKS

    return {
        "task": one_of(*TASKS), "gap": at_least(2, " (the adding task puts a marker in each half)"),
        "n_train": POSITIVE, "n_val": POSITIVE, "n_test": POSITIVE,
        "batch_size": POSITIVE, "eval_batch_size": POSITIVE, "num_workers": at_least(0),
    }


def _long_range_rnn() -> dict[str, Allowed]:
    from seqlab.nn.cells import CELLS

    return {"cell": one_of(*CELLS), "hidden_dim": POSITIVE}


def _trainer() -> dict[str, Allowed]:
    from lightning.pytorch.accelerators import AcceleratorRegistry
    from lightning.pytorch.strategies import StrategyRegistry

    return {
        # Lightning's own names: the registries it checks against, and "auto" / "gpu", which it resolves itself.
        "accelerator": one_of("auto", "gpu", *sorted(AcceleratorRegistry.available_accelerators())),
        "strategy": one_of("auto", *StrategyRegistry.available_strategies()),
        "devices": Allowed(
            "a number of devices (-1: all), auto, or a list of device indices", _is_devices, own_type=True
        ),
        "num_nodes": POSITIVE,
        "fast_dev_run": Allowed("true, false or a number of batches >= 0", lambda v: v >= 0),
        "max_epochs": at_least(-1, " (-1: no limit)"), "min_epochs": at_least(0),
        "max_steps": at_least(-1, " (-1: no limit)"), "min_steps": at_least(0),
        "max_time": Allowed("a duration DD:HH:MM:SS or {days,hours,minutes,seconds}", _is_duration),
        "limit_train_batches": BATCHES, "limit_val_batches": BATCHES, "limit_test_batches": BATCHES,
        "limit_predict_batches": BATCHES, "overfit_batches": BATCHES,
        "val_check_interval": Allowed(
            "a number of batches (an integer >= 1), a fraction of an epoch in (0, 1], or a duration DD:HH:MM:SS",
            lambda v: (is_int(v) and v >= 1) or (is_number(v) and 0 < v <= 1) or _is_duration(v),
        ),
        "check_val_every_n_epoch": POSITIVE,
        "num_sanity_val_steps": at_least(-1, " (-1: all)"),
        "log_every_n_steps": at_least(0),
        "accumulate_grad_batches": POSITIVE,
        "gradient_clip_val": NOT_NEGATIVE,
        "gradient_clip_algorithm": one_of("norm", "value"),
        "profiler": one_of("simple", "advanced", "pytorch", "xla"),  # Lightning's names (trainer/setup.py)
        "reload_dataloaders_every_n_epochs": at_least(0),
    }


def _progress_bar() -> dict[str, Allowed]:
    from seqlab.progress import STYLES

    return {"style": one_of(*STYLES), "every_seconds": NOT_NEGATIVE, "mode": one_of("min", "max")}


# Each target, by its defining module and name, with the function that builds its table: {argument: what it accepts}.
RULES: dict[str, Callable[[], dict[str, Allowed]]] = {
    "seqlab.data.text.TextDataModule": _text_data,
    "seqlab.data.timeseries.ForecastDataModule": _forecast_data,
    "seqlab.data.timeseries.SineDataModule": lambda: {"length": POSITIVE, "n_series": POSITIVE, "noise": NOT_NEGATIVE},
    "seqlab.models.language_model.LanguageModel": _language_model,
    "seqlab.nn.rnn_lm.RNNLanguageModel": _rnn_lm,
    "seqlab.nn.awd_lstm.AWDLSTM": _awd_lstm,
    "seqlab.nn.window_lm.WindowLanguageModel": _window_lm,
    "seqlab.models.forecaster.Forecaster": _forecaster,
    "seqlab.nn.lstm_forecaster.LSTMForecaster": _lstm_forecaster,
    "seqlab.data.long_range.LongRangeDataModule": _long_range_data,
    "seqlab.nn.long_range_rnn.LongRangeRNN": _long_range_rnn,
    "torch.optim.optimizer.Optimizer": lambda: {
        "lr": POSITIVE_NUMBER, "weight_decay": NOT_NEGATIVE, "momentum": NOT_NEGATIVE,
    },
    "torch.optim.lr_scheduler.ReduceLROnPlateau": lambda: {
        "factor": PROBABILITY, "patience": at_least(0), "cooldown": at_least(0),
    },
    "torch.optim.lr_scheduler.ExponentialLR": lambda: {"gamma": POSITIVE_NUMBER},
    "lightning.pytorch.trainer.trainer.Trainer": _trainer,
    "lightning.pytorch.callbacks.model_checkpoint.ModelCheckpoint": lambda: {
        "mode": one_of("min", "max"), "save_top_k": at_least(-1, " (-1: all)"),
        "every_n_train_steps": at_least(0), "every_n_epochs": at_least(0),
    },
    "lightning.pytorch.callbacks.early_stopping.EarlyStopping": lambda: {
        "mode": one_of("min", "max"), "patience": at_least(0),
    },
    "lightning.pytorch.callbacks.weight_averaging.EMAWeightAveraging": lambda: {
        "decay": DECAY, "update_every_n_steps": POSITIVE,
    },
    "lightning.pytorch.callbacks.rich_model_summary.RichModelSummary": lambda: {
        "max_depth": at_least(-1, " (-1: all layers)"),
    },
    "seqlab.progress.progress_bar": _progress_bar,
}

# Arguments the config never sets, and where they come from instead.
SET_ELSEWHERE: dict[str, dict[str, str]] = {
    "seqlab.data.text.TextDataModule": {"vocabulary": "a checkpoint's vocabulary, passed when it is evaluated"},
    "seqlab.models.language_model.LanguageModel": {
        name: "it comes from the data" for name in ("vocab_size", "vocabulary", "tokenizer")
    },
    "seqlab.nn.rnn_lm.RNNLanguageModel": {"vocab_size": "it comes from the data"},
    "seqlab.nn.awd_lstm.AWDLSTM": {"vocab_size": "it comes from the data"},
    "seqlab.nn.window_lm.WindowLanguageModel": {"vocab_size": "it comes from the data"},
    "seqlab.nn.lstm_forecaster.LSTMForecaster": {
        **{name: "it comes from the data" for name in ("n_inputs", "n_outputs", "lookback", "horizon")},
        **{name: f"set model.{name}: the loss is made for it too" for name in ("head", "quantiles")},
    },
    "seqlab.models.forecaster.Forecaster": {
        name: "it comes from the data" for name in ("n_inputs", "n_outputs", "lookback", "horizon", "season")
    },
    "seqlab.models.long_range.LongRangeModel": {
        name: "it comes from the data (data.task)" for name in ("task", "n_inputs", "n_outputs")
    },
    "seqlab.nn.long_range_rnn.LongRangeRNN": {
        **{name: "it comes from the data (data.task)" for name in ("n_inputs", "n_outputs")},
        "readout": "it follows data.task (the last step for adding, every step for copy)",
    },
    "lightning.pytorch.trainer.trainer.Trainer": {
        "callbacks": "pick them with callbacks=... and change them with callbacks.NAME.KEY=VALUE",
        "logger": "pick loggers with logger=... (logger=none for none)",
        "enable_checkpointing": "seqlab sets it; callbacks.model_checkpoint=null trains without checkpoints",
        "plugins": "plugins are Python objects, not config values",
    },
}


def qualified_name(target: Callable) -> str:
    """The key of a target in RULES and SET_ELSEWHERE: where it is defined, not where the config imports it from."""
    return f"{target.__module__}.{target.__qualname__}"
