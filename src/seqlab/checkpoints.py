"""Reading a checkpoint written by `seqlab.train`, with a clear error when it is not one or does not fit.

A checkpoint is data, whoever wrote it: `torch.load(weights_only=True)` reads it without running code, and
nothing it says is called unless it names one of this project's own classes (the allow-lists below), with
plain values and no Hydra instantiation key (`_target_`, `_args_`...) or interpolation anywhere below. A file
that asks for anything else is refused with one line, before any of it is instantiated.
"""

from __future__ import annotations

import functools
import inspect
from pathlib import Path

import lightning as L
import torch
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from seqlab.config_schema import HYDRA_KEYS
from seqlab.errors import CheckpointError, ConfigError
from seqlab.runs import build

MODULES = (
    "seqlab.models.language_model.LanguageModel",
    "seqlab.models.forecaster.Forecaster",
    "seqlab.models.long_range.LongRangeModel",
)
DATAMODULES = (
    "seqlab.data.text.TextDataModule",
    "seqlab.data.timeseries.ForecastDataModule",
    "seqlab.data.timeseries.SineDataModule",
    "seqlab.data.long_range.LongRangeDataModule",
)
# The net of each module in checkpoints written before the net became `model.net`, a config node of its own.
EARLIER_NETS = {
    "seqlab.models.language_model.LanguageModel": "seqlab.nn.rnn_lm.RNNLanguageModel",
    "seqlab.models.forecaster.Forecaster": "seqlab.nn.lstm_forecaster.LSTMForecaster",
}
NETS = (  # what `model.net` may name
    "seqlab.nn.rnn_lm.RNNLanguageModel",
    "seqlab.nn.awd_lstm.AWDLSTM",
    "seqlab.nn.window_lm.WindowLanguageModel",
    "seqlab.nn.lstm_forecaster.LSTMForecaster",
    "seqlab.nn.long_range_rnn.LongRangeRNN",
)


def load_trained(ckpt_path: str | None) -> tuple[L.LightningModule, dict]:
    """The trained module and the resolved config of the run that wrote the checkpoint."""
    if not ckpt_path:
        raise CheckpointError("no checkpoint given: add ckpt_path=PATH (a run's checkpoints/last.ckpt, say)")
    path = Path(ckpt_path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({err.__class__.__name__})") from None
    config = checkpoint.get("seqlab_config") if isinstance(checkpoint, dict) else None
    if not isinstance(config, dict):
        raise CheckpointError(f"{path} was not written by scripts/train.py (it holds no seqlab_config)")
    check_names(checkpoint, path)
    module_class = get_class(config["model"]["_target_"])
    try:
        model = module_class(**module_arguments(config["model"], checkpoint.get("hyper_parameters", {})))
        model.on_load_checkpoint(checkpoint)
        model.load_state_dict(checkpoint["state_dict"])
    except CheckpointError:
        raise
    except Exception as err:  # wrong or missing arguments, shapes, keys: a checkpoint of another model
        lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
        # load_state_dict's first line is a header ("Error(s) in loading state_dict for ..."); the next says what.
        message = (lines[1] if len(lines) > 1 and lines[0].startswith("Error(s)") else lines[0]) if lines \
            else err.__class__.__name__
        raise CheckpointError(f"{path} does not fit {module_class.__name__}: {message[:300]}") from None
    model.eval()
    return model, config


def check_names(checkpoint: dict, path: Path) -> None:
    """Refuse a checkpoint that would have anything but seqlab's own module and datamodule instantiated."""

    def refuse(what: str) -> CheckpointError:
        return CheckpointError(f"{path} is refused: {what}. A seqlab checkpoint names only seqlab's own classes")

    config = checkpoint["seqlab_config"]
    for section, allowed in (("model", MODULES), ("data", DATAMODULES)):
        conf = config.get(section)
        target = conf.get("_target_") if isinstance(conf, dict) else None
        if not isinstance(target, str) or target not in allowed:
            raise refuse(f"its {section} is {_shown(target)}, not one of {', '.join(allowed)}")
    net = config["model"].get("net")
    if net is not None:
        target = net.get("_target_") if isinstance(net, dict) else None
        if not isinstance(target, str) or target not in NETS:
            raise refuse(f"its model.net is {_shown(target)}, not one of {', '.join(NETS)}")
    hparams = checkpoint.get("hyper_parameters", {})
    if not isinstance(hparams, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise refuse("its hyper_parameters or state_dict is not a mapping")
    vocabulary = checkpoint.get("vocabulary")
    if vocabulary is not None and not (isinstance(vocabulary, list) and all(isinstance(t, str) for t in vocabulary)
                                       and len(vocabulary) == hparams.get("vocab_size", len(vocabulary))):
        raise CheckpointError(f"{path} is refused: its vocabulary is not a list of words, one per row of the model's")
    places = {"data": {k: v for k, v in config["data"].items() if k != "_target_"}, "hyper_parameters": hparams,
              "model.net": net_settings(net) if net is not None else {}}
    for place, values in places.items():
        found = _instantiation_key(values)
        if found:
            raise refuse(f"its {place} holds {found}, which would be called on load")


def module_arguments(model_config: dict, hparams: dict) -> dict:
    """The module's arguments: its hyperparameters, and its net built from `model.net`; in a checkpoint written
    before the net had a node of its own, from the net's settings among the hyperparameters."""
    net = model_config.get("net")
    if net is not None:
        return {**hparams, "net": functools.partial(get_class(net["_target_"]), **net_settings(net))}
    earlier = EARLIER_NETS.get(model_config["_target_"])
    if earlier is None:
        return dict(hparams)
    net_class = get_class(earlier)
    own = set(inspect.signature(net_class).parameters) - set(inspect.signature(get_class(model_config["_target_"])).parameters)
    return {**{k: v for k, v in hparams.items() if k not in own},
            "net": functools.partial(net_class, **{k: v for k, v in hparams.items() if k in own})}


def net_settings(net: dict) -> dict:
    """The arguments of `model.net`, without the keys that tell Hydra what to build."""
    return {k: v for k, v in net.items() if k not in ("_target_", "_partial_")}


def _instantiation_key(value) -> str | None:
    """The first Hydra instantiation key, Lightning `_instantiator` or `${...}` interpolation in `value`, however
    deep (a crafted file may nest thousands of levels: walked with a stack, not recursion)."""
    stack = [("", value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, dict):
            for key, child in reversed(list(item.items())):
                here = f"{where}.{key}" if where else str(key)
                if key in HYDRA_KEYS or key == "_instantiator":
                    return f"{here}={_shown(child)}"
                stack.append((here, child))
        elif isinstance(item, (list, tuple)):
            stack.extend((f"{where}[{i}]", child) for i, child in reversed(list(enumerate(item))))
        elif isinstance(item, str) and "${" in item:
            return f"{where}={_shown(item)} (an interpolation)"
    return None


def _shown(value) -> str:
    """A value quoted in a one-line message: short, and only strings and numbers as themselves."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        text = repr(value)
        return text if len(text) <= 80 and "\n" not in text else text[:77].replace("\n", " ") + "..."
    return f"a {type(value).__name__}"


def start_from(model: L.LightningModule, trained: L.LightningModule, ckpt_path: str) -> None:
    """Give `model` the weights of `trained` (`init_from=`: a new run, its optimiser and counters fresh), refused
    when the two are not the same module with the same net."""
    if type(model) is not type(trained):
        raise CheckpointError(
            f"{ckpt_path} holds a {type(trained).__name__}, not the {type(model).__name__} this run trains; "
            "pick the model= it was trained with"
        )
    try:
        model.load_state_dict(trained.state_dict())
    except RuntimeError as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        raise CheckpointError(
            f"{ckpt_path} does not fit this run's model.net ({lines[1] if len(lines) > 1 else lines[0]}); "
            "use the net settings it was trained with"
        ) from None


def check_fits(model: L.LightningModule, data_kwargs: dict, ckpt_path: str) -> None:
    """The data must give the model the sizes it was trained with (vocabulary, channels, horizon...)."""
    for key, value in data_kwargs.items():
        trained = model.hparams.get(key)
        if trained is not None and isinstance(value, (int, str)) and trained != value:
            raise CheckpointError(
                f"{ckpt_path} was trained with {key}={trained} but this data gives {key}={value}; "
                "evaluate on data shaped like the training data"
            )


def load_with_data(
    ckpt_path: str | None, data: DictConfig | None = None, changes: dict | None = None, cache_dir: str | None = None
) -> tuple[L.LightningModule, L.LightningDataModule]:
    """A trained module and a datamodule ready to test it: `data` if given, else the checkpoint's own
    data config with `changes` applied (a new `path`, say); refused if its shapes do not fit.

    The checkpoint's own data config writes its token cache to this machine's `cache_dir`, never to a
    folder the checkpoint names."""
    model, trained_config = load_trained(ckpt_path)
    if data is None:
        if "cache_dir" in trained_config["data"]:
            changes = {**(changes or {}), "cache_dir": cache_dir}
        accepted = inspect.signature(get_class(trained_config["data"]["_target_"])).parameters
        unknown = sorted(set(changes or {}) - set(accepted))  # by the class: a setting newer than the checkpoint too
        if unknown:
            raise ConfigError(
                f"data.{unknown[0]}= does not apply to {ckpt_path}: its data ({trained_config['data'].get('_target_')}) "
                f"has no '{unknown[0]}' setting. Drop the override."
            )
        data = OmegaConf.merge(trained_config["data"], changes or {})
    datamodule = build(data, **model.datamodule_kwargs())
    datamodule.prepare_data()
    datamodule.setup("test")
    check_fits(model, datamodule.model_kwargs(), ckpt_path)
    return model, datamodule
