"""Training and evaluation of a recurrent language model, with the state carried across batches.

Lightning 2 has no truncated BPTT of its own, so this module keeps the recurrent state between steps:
detached after each training step, reset when each epoch and each validation or test pass starts
(the sanity check included), one state per stage so a validation pass in mid-epoch leaves training's
state alone. Batches must come in stream order, which `data.stream.TokenStream` guarantees. A stateless net
(`nn.window_lm`, on `data.mode=windows`) returns no state and predicts one token per example: nothing is carried.
"""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
import torch
import torch.nn.functional as F
from lightning.fabric.utilities.apply_func import move_data_to_device
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from seqlab.data.corpus import EOS, UNK, tokenize
from seqlab.data.stream import IGNORE_INDEX
from seqlab.errors import CheckpointError, ConfigError
from seqlab.models.allocator import reuse_host_memory
from seqlab.models.optimizers import optimizers_for
from seqlab.models.weighted_mean import WeightedMean
from seqlab.nn.rnn_lm import RNNLanguageModel, State, detach_state

# How the optimised loss is scaled; the logged loss is always the mean NLL per token.
#   token:    mean over tokens (pytorch/examples: SGD lr 20, clip 0.25 at bptt 35)
#   sequence: summed over the BPTT steps, mean over the batch (Zaremba et al. 2014: SGD lr 1, clip 5)
LOSS_SCALES = ("token", "sequence")


class LanguageModel(L.LightningModule):
    def __init__(
        self,
        vocab_size: int,
        net: Callable[..., nn.Module] = RNNLanguageModel,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., object] | None = None,
        loss_scale: str = "token",
        monitor: str = "val/ppl",
        vocabulary: list[str] | None = None,
        tokenizer: str = "word",
        lr_length: int | None = None,
    ) -> None:
        super().__init__()
        if loss_scale not in LOSS_SCALES:
            raise ConfigError(f"model.loss_scale={loss_scale!r} is not one of {list(LOSS_SCALES)}")
        if lr_length is not None and (not isinstance(lr_length, int) or lr_length < 1):
            raise ConfigError(f"model.lr_length={lr_length!r} must be a positive integer (the BPTT length) or null")
        if vocabulary is not None and len(vocabulary) != vocab_size:
            raise ConfigError(f"vocab_size={vocab_size} but the vocabulary has {len(vocabulary)} tokens")
        # Checkpoints hold plain data only, so they load with torch.load(weights_only=True): the net, optimiser
        # and schedule are rebuilt from the run's config (model.net, .optimizer, .scheduler; seqlab.checkpoints),
        # the vocabulary is saved on its own.
        self.save_hyperparameters(ignore=["net", "vocabulary", "optimizer", "scheduler"], logger=False)
        self.make_optimizer, self.make_scheduler = optimizer, scheduler
        # `net` is `model.net` with everything but the sizes the data gives: a class or a partial of one.
        self.net = net(vocab_size=vocab_size)
        self.vocabulary = vocabulary
        # Mean NLL per token, weighted by token count: exp of it is the perplexity of the whole pass.
        self.train_nll, self.val_nll, self.test_nll = WeightedMean(), WeightedMean(), WeightedMean()
        self.val_acc = MulticlassAccuracy(vocab_size, average="micro", ignore_index=IGNORE_INDEX)
        self.test_acc = MulticlassAccuracy(vocab_size, average="micro", ignore_index=IGNORE_INDEX)
        self.state: dict[str, State | None] = {}
        self.batch_length: int | None = None  # steps in the training batch being trained on
        self.register_buffer("train_tokens", torch.zeros((), dtype=torch.long), persistent=False)
        # Each process counts its own tokens (train.py sums them): DDP must not overwrite the count with rank 0's
        # before every step, as it does with buffers.
        self._ddp_params_and_buffers_to_ignore = ["train_tokens"]

    def forward(self, tokens: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        return self.net(tokens, state)

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], split: str) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, targets = batch
        logits, state = self.net(inputs, self.state.get(split))
        if logits.shape[:2] != targets.shape:
            raise ConfigError(
                f"model.net gives {logits.shape[1]} prediction(s) per example but the data has {targets.shape[1]} "
                "target(s): a window net (model=keras_lstm) needs data.mode=windows, a stream net (model=lstm) "
                "data.mode=stream"
            )
        self.state[split] = detach_state(state)
        count = (targets != IGNORE_INDEX).sum()
        # float(): the NLL of a bf16/fp16 logit row is computed in fp32, so perplexity is not rounded.
        nll = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE_INDEX, reduction="sum")
        loss = nll / count.clamp(min=1)
        getattr(self, f"{split}_nll").update(loss, weight=count)
        if split != "train":
            # Top-1 predictions: max(-1).indices is argmax (the first maximum), in under half its time on a CPU.
            getattr(self, f"{split}_acc").update(logits.max(-1).indices.flatten(), targets.flatten())
        return loss, count

    def setup(self, stage: str) -> None:
        """Before a Trainer runs steps, not when a model is merely built: each step's logits reuse the last step's pages
        (models/allocator.py)."""
        reuse_host_memory()

    def on_train_batch_start(self, batch, batch_idx) -> None:
        self.batch_length = batch[0].shape[1]

    def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure=None) -> None:
        """With `lr_length`, a batch of L steps trains at lr * L / lr_length (AWD-LSTM's, with data.variable_bptt):
        a short batch's gradient, a mean over fewer steps, moves the weights less. The optimiser's own learning
        rate, which schedules and the logs see, is back in place after the step."""
        if self.hparams.get("lr_length") is None or self.batch_length is None:
            return super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        rates = [group["lr"] for group in optimizer.param_groups]
        for group in optimizer.param_groups:
            group["lr"] = group["lr"] * self.batch_length / self.hparams.lr_length
        try:
            super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        finally:
            for group, rate in zip(optimizer.param_groups, rates):
                group["lr"] = rate

    def training_step(self, batch, batch_idx):
        loss, count = self._step(batch, "train")
        self.train_tokens += count
        self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=batch[0].shape[0])
        # A net's own penalties on its activations (AWD-LSTM's AR and TAR) train it; the logged loss stays the NLL.
        regularization = getattr(self.net, "regularization", None)
        if regularization is not None:
            loss = loss + regularization()
        if self.hparams.loss_scale == "sequence":
            return loss * batch[0].shape[1]
        return loss

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    # A stage's state starts from zeros at the start of each pass over its stream.
    def on_train_epoch_start(self) -> None:
        self.state["train"] = None

    def on_validation_epoch_start(self) -> None:
        self.state["val"] = None

    def on_test_epoch_start(self) -> None:
        self.state["test"] = None

    def on_train_epoch_end(self) -> None:
        self._log_pass("train")

    def on_validation_epoch_end(self) -> None:
        self._log_pass("val")

    def on_test_epoch_end(self) -> None:
        self._log_pass("test")

    def _log_pass(self, split: str) -> None:
        """Perplexity over the whole pass: exp(total NLL / total tokens), summed across processes."""
        nll_metric = getattr(self, f"{split}_nll")
        nll = nll_metric.compute()
        nll_metric.reset()
        metrics = {f"{split}/ppl": nll.exp()}
        if split != "train":
            acc_metric = getattr(self, f"{split}_acc")
            metrics[f"{split}/loss"] = nll
            metrics[f"{split}/acc"] = acc_metric.compute()
            acc_metric.reset()
        self.log_dict(metrics, prog_bar=split == "val")

    def configure_optimizers(self):
        return optimizers_for(self, self.make_optimizer, self.make_scheduler, self.hparams.monitor)

    def datamodule_kwargs(self) -> dict:
        """What a datamodule needs to feed this trained model: its token ids."""
        return {"vocabulary": self.vocabulary}

    @torch.no_grad()
    def generate(self, prompt: str, num_tokens: int, temperature: float = 1.0) -> str:
        """Continue `prompt` by sampling `num_tokens` tokens (temperature 0: the most likely each time)."""
        if not self.vocabulary:
            raise CheckpointError("this checkpoint carries no vocabulary, so it cannot turn tokens into text")
        index = {token: i for i, token in enumerate(self.vocabulary)}
        tokens = tokenize(prompt, self.hparams.tokenizer)[:-1] if self.hparams.tokenizer == "word" else list(prompt)
        unknown = [t for t in tokens if t not in index and UNK not in index]
        if unknown:
            raise ConfigError(f"prompt tokens not in the vocabulary: {unknown[:5]}; use words the model was trained on")
        # A word-level stream starts after an end of line, as every line of the corpus does.
        start = [index[EOS]] if EOS in index else []
        ids = start + [index.get(t, index.get(UNK)) for t in tokens]
        if not ids:
            raise ConfigError("give a prompt: a character-level model has no start token")
        self.eval()
        logits, state = self.net(torch.tensor([ids], device=self.device))
        generated = []
        for _ in range(num_tokens):
            last = logits[0, -1].float()
            if temperature == 0:
                next_id = int(last.argmax())
            else:
                next_id = int(torch.multinomial(torch.softmax(last / temperature, dim=-1), 1))
            generated.append(next_id)
            # A stateless net (nn.window_lm) keeps nothing between calls: it reads the whole text so far again.
            step = [ids + generated] if state is None else [[next_id]]
            logits, state = self.net(torch.tensor(step, device=self.device), state)
        words = [self.vocabulary[i] for i in generated]
        if self.hparams.tokenizer == "char":
            return prompt + "".join(words)
        return "\n".join(line.strip() for line in " ".join(tokens + words).split(EOS))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["vocabulary"] = self.vocabulary
        # The state carried into the next training batch: a run resumed mid-epoch goes on from it.
        checkpoint["train_state"] = self.state.get("train")

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.vocabulary = checkpoint.get("vocabulary")
        self.state["train"] = move_data_to_device(checkpoint.get("train_state"), self.device)
