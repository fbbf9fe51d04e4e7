"""The optimiser and schedule of any seqlab module, from the partials its config made."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def optimizers_for(
    module: nn.Module,
    make_optimizer: Callable[..., torch.optim.Optimizer] | None,
    make_scheduler: Callable[..., object] | None,
    monitor: str,
):
    """What `configure_optimizers` returns: Adam when none is configured; a plateau schedule watches `monitor`."""
    optimizer = (make_optimizer or torch.optim.Adam)(params=module.parameters())
    if make_scheduler is None:
        return optimizer
    scheduler = make_scheduler(optimizer=optimizer)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": monitor}}
