"""The config checks (seqlab/config_schema.py) on configs composed from conf/, and conf/trainer/default.yaml against
the installed lightning.Trainer: every argument is there, at Lightning's default unless listed below on purpose."""

from __future__ import annotations

import inspect

import lightning
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import seqlab.runs  # noqa: F401 (registers the resolvers the configs use)
from seqlab.config_rules import RULES, SET_ELSEWHERE, qualified_name
from seqlab.config_schema import check_config, check_settings, import_target
from seqlab.data.timeseries import ForecastDataModule
from seqlab.errors import ConfigError
from seqlab.sweep.space import check_space
from tests.conftest import REPO

CONF = REPO / "conf"
# Where seqlab's trainer default differs from Lightning's on purpose: key -> (Lightning's default, seqlab's).
DELIBERATE = {
    "accelerator": ("auto", "cpu"),  # the same run on every machine; trainer=gpu opts in
    "devices": ("auto", 1),
    "precision": (None, "32-true"),  # Lightning's None means 32-true: spelled out, next to the alternatives
    "max_epochs": (None, 40),  # Lightning's None means 1000; 40 is the classic word-LM recipe's
    "min_epochs": (None, 1),
    "log_every_n_steps": (None, 50),  # Lightning's None means 50: spelled out
    "gradient_clip_val": (None, 0.25),  # the classic LSTM recipe clips at 0.25 (pytorch/examples, Zaremba et al.)
    "deterministic": (None, False),  # as Lightning's None (torch's default): spelled out
    "default_root_dir": (None, "${paths.output_dir}"),  # Lightning's None is the working directory; ours the run folder
}


def composed(name: str = "train", overrides: list[str] = ()):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose(name, overrides=list(overrides))


def names(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_the_trainer_config_lists_every_trainer_argument_at_lightnings_default():
    signature = inspect.signature(lightning.Trainer).parameters
    ours = OmegaConf.to_container(OmegaConf.load(CONF / "trainer" / "default.yaml"), resolve=False)
    assert ours.pop("_target_") == "lightning.pytorch.trainer.Trainer"
    expected = set(signature) - set(SET_ELSEWHERE[qualified_name(lightning.Trainer)])
    assert set(ours) == expected, f"new in Lightning: {expected - set(ours)}; gone from it: {set(ours) - expected}"
    for key, value in ours.items():
        lightnings, seqlabs = DELIBERATE.get(key, (signature[key].default, signature[key].default))
        assert signature[key].default == lightnings, f"Lightning's default of {key} is now {signature[key].default!r}"
        assert value == seqlabs and type(value) is type(seqlabs), f"trainer.{key}: {value!r}, expected {seqlabs!r}"


@pytest.mark.parametrize("name", sorted(RULES.keys() | SET_ELSEWHERE.keys()))
def test_every_rule_names_a_target_where_it_is_defined(name):
    # A class moved or renamed (by us or by Lightning) would otherwise lose its rules without a word.
    target = import_target(name)
    assert target is not None and qualified_name(target) == name
    RULES.get(name, dict)()


@pytest.mark.parametrize("overrides", [["trainer.limit_train_batches=2"], ["trainer.val_check_interval=0.5"],
                                       ["trainer.accumulate_grad_batches=2", "trainer.max_time=00:01:00:00"]])
def test_any_trainer_argument_is_set_without_a_plus(overrides):
    cfg = composed(overrides=overrides)
    check_config(cfg)
    key, value = overrides[0].split("=")
    assert str(OmegaConf.select(cfg, key)) == value


@pytest.mark.parametrize(
    "overrides, shown, allowed",
    [
        (["data.bptt=0"], "data.bptt=0", "must be a positive integer"),
        (["model.net.dropout=1.5"], "model.net.dropout=1.5", "must be a number in [0, 1)"),
        (["data=etth1", "model=lstm_forecaster", "data.lookback=-1"], "data.lookback=-1", "must be a positive integer"),
        (["trainer.precision=fp8"], "trainer.precision=fp8", "must be one of 64, 32, 16, transformer-engine"),
        (["model.net.hidden_dim=abc"], "model.net.hidden_dim=abc", "must be a positive integer"),
        (["callbacks.early_stopping.patience=-1"], "callbacks.early_stopping.patience=-1", "must be an integer >= 0"),
        (["+callbacks.model_checkpoint.save_topk=2"], "callbacks.model_checkpoint.save_topk=2",
         "did you mean callbacks.model_checkpoint.save_top_k?"),
        (["+data.foo=1"], "data.foo=1", "is not an argument of seqlab.data.text.TextDataModule: allowed: hub_name"),
        (["+data.bpt=1"], "data.bpt=1", "did you mean data.bptt?"),
        (["data=sine", "+data.path=x.csv"], "data.path=x.csv", "is not an argument of seqlab.data.timeseries.Sine"),
        (["model=lstm_forecaster", "model.quantiles=abc"], "model.quantiles=abc", "must be a list of numbers in (0,"),
        (["data=etth1", "data.target=[1,2]"], "data.target=[1,2]", "must be a string or a list of strings"),
        (["model.net.cell=transformer"], "model.net.cell=transformer", "must be one of lstm, gru, rnn"),
        (["model.optimizer.lr=0"], "model.optimizer.lr=0", "must be a number > 0"),
        (["trainer.limit_train_batches=1.5"], "trainer.limit_train_batches=1.5", "or a fraction of them in [0, 1]"),
        (["trainer.accelerator=cuda2"], "trainer.accelerator=cuda2", "must be one of auto, gpu, cpu, cuda"),
        (["+trainer.logger=false"], "trainer.logger=false", "pick loggers with logger=..."),
        (["+model.vocab_size=9"], "model.vocab_size=9", "it comes from the data"),
        (["model._target_=seqlab.models.Nope"], "model._target_=seqlab.models.Nope", "cannot be imported"),
    ],
)
def test_a_bad_value_is_one_line_naming_key_value_and_what_is_allowed(overrides, shown, allowed):
    with pytest.raises(ConfigError) as refused:
        check_config(composed(overrides=overrides))
    message = str(refused.value)
    assert message.startswith(shown + " ") and allowed in message and "\n" not in message


@pytest.mark.parametrize("data", names("data"))
@pytest.mark.parametrize("model", names("model"))
def test_every_data_and_model_config_passes(data, model):
    path = ["data.path=x.csv"] if data in NO_DEFAULT_SOURCE else []
    check_config(composed(overrides=[f"data={data}", f"model={model}", *path]))


NO_DEFAULT_SOURCE = ("csv", "weather", "exchange")  # data configs whose file has no public URL: data.path=FILE
CHOICES = [f"{group}={name}" for group in ("experiment", "trainer", "debug", "callbacks", "logger")
           for name in names(group)]


@pytest.mark.parametrize("choice", CHOICES)
def test_every_experiment_trainer_debug_callbacks_and_logger_config_passes(choice):
    needs = {"experiment=forecast_lstm": ["data=etth1"]}  # the forecasting experiments' base: any series data
    needs.update({f"experiment={name}": ["data.path=x.csv"] for name in names("experiment")
                  if name.startswith(("weather_", "exchange_"))})
    check_config(composed(overrides=[choice, *needs.get(choice, [])]))


@pytest.mark.parametrize("search", names("hparams_search"))
def test_every_search_passes_with_every_value_it_can_draw(search):
    needs = {"forecast_optuna": ["data=etth1"], **{name: ["data.path=x.csv"] for name in names("hparams_search")
                                                   if name.startswith(("weather", "exchange"))}}
    cfg = composed("sweep", [f"hparams_search={search}", *needs.get(search, [])])
    check_config(cfg)
    assert check_space(cfg.hparams_search.params, cfg)


@pytest.mark.parametrize("overrides, cycles", [
    (["hparams_search=forecast_optuna", "data=etth1"], [None, 24]),
    (["hparams_search=forecast_optuna", "data=csv"], [None]),  # no season: the two choices are one
    (["hparams_search=ettm1"], [None, 96]),
    (["hparams_search=weather_l96"], [None, 144]),
])
def test_a_searched_choice_follows_the_data(overrides, cycles):
    cfg = composed("sweep", [*overrides, "data.path=x.csv"])
    assert check_space(cfg.hparams_search.params, cfg)["model.net.cycle_length"]["choices"] == cycles


def test_a_search_range_reaching_a_bad_value_is_refused_before_any_trial():
    cfg = composed("sweep", ["hparams_search=lm_optuna"])
    cfg.hparams_search.params["model.net.dropout"].high = 1.5
    with pytest.raises(ConfigError, match=r"^hparams_search.params.model.net.dropout: model.net.dropout=1.5 must be"):
        check_space(cfg.hparams_search.params, cfg)


def test_changes_to_a_checkpoints_data_are_checked_too():
    check_settings({"path": "x.csv", "eval_batch_size": 64}, ForecastDataModule, "data")
    with pytest.raises(ConfigError, match=r"^data.eval_batch_size=0 must be a positive integer$"):
        check_settings({"eval_batch_size": 0}, ForecastDataModule, "data")
