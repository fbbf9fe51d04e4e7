"""The search space of `hparams_search.params`: checked against the training config, sampled by a trial,
and written back as the Hydra overrides that make the trial's run."""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping

import optuna
from omegaconf import DictConfig, OmegaConf

from seqlab.config_schema import check_config
from seqlab.errors import ConfigError

KINDS = ("float", "int", "categorical")


def check_space(params: Mapping, train_cfg: DictConfig) -> dict[str, dict]:
    """Each searched key as a plain dict, refused early if the training config has no such key or the spec is wrong."""
    space = {}
    for key, spec in params.items():
        # Resolved, so a choice can follow the data (`${data.season}`); a choice that resolves twice counts once.
        spec = OmegaConf.to_container(spec, resolve=True) if isinstance(spec, DictConfig) else dict(spec or {})
        where = f"hparams_search.params.{key}"
        kind = spec.get("type")
        if kind not in KINDS:
            raise ConfigError(f"{where}: type={kind!r} is not one of {list(KINDS)}")
        if kind == "categorical":
            if not spec.get("choices"):
                raise ConfigError(f"{where}: a categorical needs a non-empty list of choices")
            spec["choices"] = list({_key(c): c for c in spec["choices"]}.values())
        elif "low" not in spec or "high" not in spec or not spec["low"] < spec["high"]:
            raise ConfigError(f"{where}: a {kind} needs low < high (got low={spec.get('low')}, high={spec.get('high')})")
        elif spec.get("log") and spec["low"] <= 0:
            raise ConfigError(f"{where}: a log-scale range needs low > 0")
        elif spec.get("log") and spec.get("step"):
            raise ConfigError(f"{where}: give log or step, not both")
        if not has_key(train_cfg, key):
            raise ConfigError(f"{where}: the training config has no key {key}; check its spelling, or write +{key} to add it")
        space[key] = spec
    check_values(space, train_cfg)
    return space


def check_values(space: Mapping[str, dict], train_cfg: DictConfig) -> None:
    """Each choice and both ends of each range through the config checks: a bad value is refused before any trial
    rather than failing the trials that draw it. The ends suffice: every range a check has is an interval."""
    for key, spec in space.items():
        for value in spec["choices"] if spec["type"] == "categorical" else (spec["low"], spec["high"]):
            trial_cfg = copy.deepcopy(train_cfg)
            OmegaConf.update(trial_cfg, key.lstrip("+"), value, force_add=True)
            try:
                check_config(trial_cfg)
            except ConfigError as exc:
                raise ConfigError(f"hparams_search.params.{key}: {exc}") from None


def has_key(cfg: DictConfig, key: str) -> bool:
    """Whether the training config has `key`; a `+key` adds one, so it is always welcome."""
    return key.startswith("+") or OmegaConf.select(cfg, key, default=_MISSING) is not _MISSING


_MISSING = object()


def _key(choice):
    return repr(choice)  # lists and dicts are choices too, and unhashable


def sample(trial: optuna.Trial, space: Mapping[str, dict]) -> dict:
    """The trial's value of each key, drawn through optuna's `suggest_*` (so the dashboard knows the ranges)."""
    values = {}
    for key, spec in space.items():
        name, log = key.lstrip("+"), spec.get("log", False)
        if spec["type"] == "categorical":
            values[key] = trial.suggest_categorical(name, spec["choices"])
        elif spec["type"] == "int":
            values[key] = trial.suggest_int(name, spec["low"], spec["high"], step=spec.get("step", 1), log=log)
        else:
            values[key] = trial.suggest_float(name, spec["low"], spec["high"], step=spec.get("step"), log=log)
    return values


def override_value(value) -> str:
    """A Python value in Hydra's override grammar: strings quoted, None as null, lists and dicts nested."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return {math.inf: "inf", -math.inf: "-inf"}.get(value, "nan")
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{override_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(override_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def overrides_for(values: Mapping) -> list[str]:
    return [f"{key}={override_value(value)}" for key, value in values.items()]
