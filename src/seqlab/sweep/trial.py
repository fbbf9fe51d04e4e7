"""The training run's side of a sweep trial: report validation to the study, so its pruner can stop the run.

`scripts/sweep.py` gives each trial's run a `trial` node (storage, study, number, metric, pruner); a plain
training run has `trial: null` and never imports optuna.
"""

from __future__ import annotations

from hydra.utils import instantiate
from omegaconf import DictConfig


def pruning_callbacks(trial: DictConfig | None) -> list:
    """optuna-integration's Lightning callback, bound to this run's trial in the shared study."""
    if not trial:
        return []
    import optuna
    from optuna_integration import PyTorchLightningPruningCallback

    from seqlab.sweep.study import open_storage

    storage = open_storage(trial.storage)
    study = optuna.load_study(study_name=trial.study_name, storage=storage, pruner=instantiate(trial.pruner))
    trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(trial.study_name), trial.number)
    return [PyTorchLightningPruningCallback(optuna.trial.Trial(study, trial_id), monitor=trial.metric)]


def is_pruned(exc: BaseException) -> bool:
    import optuna

    return isinstance(exc, optuna.TrialPruned)
