"""Training and evaluation of a multi-horizon forecaster, scored the way the long-horizon tables are.

MSE and MAE on the standardised data are what the published tables report; the same errors in the
file's own units, the baselines' errors on the very same windows, and (with a probabilistic head) the
coverage of the prediction interval are reported beside them.
"""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanAbsoluteError, MeanMetric, MeanSquaredError, MetricCollection

from seqlab.errors import ConfigError
from seqlab.models.allocator import reuse_host_memory
from seqlab.models.baselines import repeat_last, seasonal_naive
from seqlab.models.forecast_plots import ForecastPlots
from seqlab.models.optimizers import optimizers_for
from seqlab.models.weighted_mean import WeightedMean
from seqlab.nn.lstm_forecaster import LSTMForecaster

LOSSES = ("mse", "mae", "huber")


class Forecaster(L.LightningModule):
    def __init__(
        self,
        n_inputs: int,
        n_outputs: int,
        lookback: int,
        horizon: int,
        season: int | None = None,
        net: Callable[..., nn.Module] = LSTMForecaster,
        head: str = "point",
        quantiles: list[float] = (0.1, 0.5, 0.9),
        interval: float = 0.8,
        loss: str = "mse",
        huber_delta: float = 1.0,
        input_noise: float = 0.0,
        scale_noise: float = 0.0,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., object] | None = None,
        monitor: str = "val/mse",
        plot_windows: int = 3,
    ) -> None:
        super().__init__()
        if loss not in LOSSES:
            raise ConfigError(f"model.loss={loss!r} is not one of {list(LOSSES)} (a probabilistic head sets its own)")
        if huber_delta <= 0:
            raise ConfigError(f"model.huber_delta={huber_delta} must be positive, e.g. 1.0")
        if input_noise < 0:
            raise ConfigError(f"model.input_noise={input_noise} must be a standard deviation >= 0 (scaled units), e.g. 0.1")
        if scale_noise < 0:
            raise ConfigError(f"model.scale_noise={scale_noise} must be a standard deviation >= 0, e.g. 0.1")
        if not 0 < interval < 1:
            raise ConfigError(f"model.interval={interval} must be a probability in (0, 1), e.g. 0.8")
        quantiles = [float(q) for q in quantiles]
        # Plain data only in checkpoints: the net, optimiser and schedule are rebuilt from the run's config.
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"], logger=False)
        self.make_optimizer, self.make_scheduler = optimizer, scheduler
        # `net` is `model.net`, completed here with the shapes the data gives and the head the loss is for.
        self.net = net(n_inputs=n_inputs, n_outputs=n_outputs, lookback=lookback, horizon=horizon, head=head,
                       quantiles=quantiles)
        # Targets are the last n_outputs input columns (the datamodules' convention).
        self.target_index = list(range(n_inputs - n_outputs, n_inputs))

        def errors() -> MetricCollection:
            return MetricCollection({"mse": MeanSquaredError(), "mae": MeanAbsoluteError()})

        self.val_errors = errors()
        self.val_loss = WeightedMean()  # weighted by windows: exact over uneven batches and processes
        self.test_errors = nn.ModuleDict(
            {name: errors() for name in ("model", "model_unscaled", "repeat_last", "seasonal_naive")}
        )
        self.test_coverage = MeanMetric()
        self.register_buffer("train_windows", torch.zeros((), dtype=torch.long), persistent=False)
        # Each process counts its own windows (train.py sums them): DDP must not overwrite the count with rank 0's
        # before every step, as it does with buffers.
        self._ddp_params_and_buffers_to_ignore = ["train_windows"]

    def forward(self, x: torch.Tensor, start: torch.Tensor | None = None):
        return self.net(x, start)

    # --- what the head's output means -------------------------------------------------------------
    def point(self, output) -> torch.Tensor:
        """The single forecast scored by MSE/MAE: the mean, or the quantile nearest the median."""
        if self.hparams.head == "gaussian":
            return output[0]
        if self.hparams.head == "quantile":
            return output[..., self.net.head.median]
        return output

    def interval(self, output) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The central `interval` prediction interval (gaussian), or the outer quantiles (quantile)."""
        if self.hparams.head == "gaussian":
            mean, std = output
            z = torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor(0.5 + self.hparams.interval / 2))
            return mean - z * std, mean + z * std
        if self.hparams.head == "quantile":
            return output[..., 0], output[..., -1]
        return None

    def loss(self, output, y: torch.Tensor) -> torch.Tensor:
        if self.hparams.head == "gaussian":
            mean, std = output
            return F.gaussian_nll_loss(mean, y, std.square(), full=True)
        if self.hparams.head == "quantile":
            levels = torch.tensor(self.hparams.quantiles, device=y.device)
            error = y.unsqueeze(-1) - output
            return torch.maximum(levels * error, (levels - 1) * error).mean()  # pinball loss
        if self.hparams.loss == "huber":  # squared below huber_delta, absolute above
            return F.huber_loss(output, y, delta=self.hparams.huber_delta)
        return F.mse_loss(output, y) if self.hparams.loss == "mse" else F.l1_loss(output, y)

    # --- steps ------------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        """Before a Trainer runs steps, not when a model is merely built: large tensors reuse the last step's pages
        (models/allocator.py)."""
        reuse_host_memory()

    def training_step(self, batch, batch_idx):
        x, y, start = batch
        if self.hparams.input_noise:
            # Jitter: the net learns not to trust any single input value, its last-value anchor included.
            x = x + self.hparams.input_noise * torch.randn_like(x)
        if self.hparams.scale_noise:
            x, y = self._stretch(x, y)
        loss = self.loss(self.net(x, start), y)
        self.train_windows += x.shape[0]
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=x.shape[0], sync_dist=True)
        return loss

    def _stretch(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scale augmentation: each window and its target, one variable at a time, stretched about the
        window's last value by a random factor 1 + N(0, scale_noise^2). The net sees swings of sizes the
        training months did not hold, and the pair stays a consistent series."""
        anchor = x[:, -1:, :]
        factor = 1 + self.hparams.scale_noise * torch.randn_like(anchor)
        targets = self.target_index
        return anchor + factor * (x - anchor), anchor[..., targets] + factor[..., targets] * (y - anchor[..., targets])

    def validation_step(self, batch, batch_idx):
        x, y, start = batch
        output = self.net(x, start)
        self.val_loss.update(self.loss(output, y), weight=x.shape[0])
        self.val_errors.update(self.point(output), y)

    def on_validation_epoch_end(self) -> None:
        self.log_dict({f"val/{k}": v for k, v in self.val_errors.compute().items()}, prog_bar=True)
        self.log("val/loss", self.val_loss.compute())
        self.val_errors.reset()
        self.val_loss.reset()

    def test_step(self, batch, batch_idx):
        x, y, start = batch
        output = self.net(x, start)
        prediction = self.point(output)
        horizon = self.hparams.horizon
        self.test_errors["model"].update(prediction, y)
        unscale = self._unscale()
        self.test_errors["model_unscaled"].update(unscale(prediction), unscale(y))
        self.test_errors["repeat_last"].update(repeat_last(x, horizon, self.target_index), y)
        if self.hparams.season:
            self.test_errors["seasonal_naive"].update(
                seasonal_naive(x, horizon, self.hparams.season, self.target_index), y
            )
        bounds = self.interval(output)
        if bounds is not None:
            low, high = bounds
            self.test_coverage.update(((y >= low) & (y <= high)).float())

    def on_test_epoch_end(self) -> None:
        names = {"model": "", "model_unscaled": "unscaled_", "repeat_last": "repeat_last_", "seasonal_naive": "seasonal_naive_"}
        metrics = {}
        for key, prefix in names.items():
            if key == "seasonal_naive" and not self.hparams.season:
                continue
            for name, value in self.test_errors[key].compute().items():
                metrics[f"test/{prefix}{name}"] = value
            self.test_errors[key].reset()
        if self.hparams.head != "point":
            metrics["test/coverage"] = self.test_coverage.compute()
            metrics["test/nominal_coverage"] = torch.tensor(self._nominal_coverage())
            self.test_coverage.reset()
        self.log_dict(metrics)

    def _nominal_coverage(self) -> float:
        if self.hparams.head == "gaussian":
            return self.hparams.interval
        return self.hparams.quantiles[-1] - self.hparams.quantiles[0]

    def _unscale(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """Back to the file's units with the scaler of the data being evaluated (it may not be the training data)."""
        datamodule = getattr(self.trainer, "datamodule", None)
        return getattr(datamodule, "inverse_transform", lambda t: t)

    def configure_optimizers(self):
        return optimizers_for(self, self.make_optimizer, self.make_scheduler, self.hparams.monitor)

    def configure_callbacks(self):
        return [ForecastPlots(self.hparams.plot_windows)]

    def datamodule_kwargs(self) -> dict:
        """A forecaster needs nothing from its checkpoint to read new data: each file is scaled on its own train rows."""
        return {}
