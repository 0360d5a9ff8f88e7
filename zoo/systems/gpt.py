"""Training the GPT: next-token cross-entropy with nanoGPT's optimiser and schedule; perplexity at each eval.

The training step is kept as lean as nanoGPT's loop (see benchmarks/text.py): one forward, the
loss, nothing synchronised per step (the loss is logged on the progress bar and to the logger every
``log_every_n_steps`` only, by Lightning).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torchmetrics.text import Perplexity

from zoo.checks import check_int
from zoo.models.gpt import GPT
from zoo.systems.base import GenerativeSystem, run_dir


def warmup_cosine(step: int, warmup: int, decay_steps: int, min_ratio: float) -> float:
    """nanoGPT's learning-rate multiplier: linear warm-up for `warmup` steps, cosine down to
    `min_ratio` at `decay_steps`, flat after."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    if step >= decay_steps:
        return min_ratio
    progress = (step - warmup) / max(1, decay_steps - warmup)
    return min_ratio + 0.5 * (1.0 + math.cos(math.pi * progress)) * (1.0 - min_ratio)


class GPTSystem(GenerativeSystem):
    """Trains a GPT on token windows; logs {train,val,test}/loss (nats per token) and val/test perplexity.

    A fresh net (``vocab_size: null`` in the recipe) takes its vocabulary size and tokenizer from the
    datamodule; a net that has a tokenizer already (``init_from``, evaluation) hands it to the datamodule.
    At each validation a text sample is written to ``<log_dir>/samples/step=N.txt`` (and TensorBoard).

    Args:
        net: the GPT to train (its init arguments are the model's config).
        lr, min_lr: peak learning rate and the end of the cosine decay.
        warmup_steps: linear warm-up steps; the cosine runs over the whole training (max steps).
        weight_decay: AdamW decay on matrices and embeddings (not on biases and LayerNorms).
        betas: AdamW betas.
        sample_tokens: length of the text sample written at each validation (0: none).
        init_from: a pretrained name or folder to fine-tune (its architecture and tokenizer replace `net`'s).

    Example::

        system = GPTSystem(GPT(n_layer=4, n_head=4, n_embd=128))
        L.Trainer(max_epochs=8).fit(system, datamodule=TextDataModule("tinyshakespeare"))
    """

    def __init__(self, net: GPT | None = None, lr: float = 1e-3, min_lr: float = 1e-4, warmup_steps: int = 100,
                 weight_decay: float = 0.1, betas: tuple[float, float] = (0.9, 0.99), sample_tokens: int = 200,
                 init_from: str | None = None):
        if not 0 < min_lr <= lr:
            raise ValueError(f"lr and min_lr must satisfy 0 < min_lr <= lr, got lr={lr}, min_lr={min_lr}")
        check_int("warmup_steps", warmup_steps, 0)
        check_int("sample_tokens", sample_tokens, 0, GPT.max_new_tokens_cap)
        super().__init__(net or GPT(), init_from)
        self.save_hyperparameters(ignore=["net"])
        self.val_perplexity = Perplexity(ignore_index=-100)  # molecules pad their targets with -100
        self.test_perplexity = Perplexity(ignore_index=-100)

    def setup(self, stage: str) -> None:
        """Agree on one tokenizer with the datamodule (if it has one) before the optimiser sees the weights:
        a pretrained net's vocabulary is fixed, a fresh one takes the datamodule's (vocab_size from its spec)."""
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is not None and hasattr(dm, "tokenizer") and self.net.tokenizer is not None:
            dm.set_tokenizer(self.net.tokenizer)
        super().setup(stage)
        if dm is not None and hasattr(dm, "tokenizer") and self.net.tokenizer is None:
            self.net.set_tokenizer(dm.tokenizer)

    def _shared_step(self, batch, stage: str) -> torch.Tensor:
        x, y = batch  # (B, T) each
        logits = self.net(x)  # (B, T, vocab)
        loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), y.reshape(-1))
        if stage == "train":
            self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False)
            return loss
        perplexity = self.val_perplexity if stage == "val" else self.test_perplexity
        perplexity.update(logits, y)
        # weighted by tokens, so an epoch's loss is per token whatever the batches' padding
        self.log(f"{stage}/loss", loss, prog_bar=True, on_epoch=True, sync_dist=True, batch_size=int((y != -100).sum()))
        self.log(f"{stage}/perplexity", perplexity, on_epoch=True, batch_size=len(x))
        return loss

    def on_validation_epoch_end(self) -> None:
        """Write a seeded text sample (the same seed each time, so samples show training progress)."""
        if self.trainer.sanity_checking or not self.hparams.sample_tokens:
            return
        folder = run_dir(self.trainer) / "samples"  # on every rank: a collective under DDP
        if not self.trainer.is_global_zero:
            return
        was_training = self.net.training
        self.net.eval()
        prompts = [""] * (1 if self.net.end_id is None else 10)  # sequences that end: ten of them, one per line
        text = "\n".join(self.net.generate(prompts, max_new_tokens=self.hparams.sample_tokens, seed=0))
        self.net.train(was_training)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"step={self.global_step:06d}.txt").write_text(text + "\n", encoding="utf-8")
        for logger in self.trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_text("sample", f"```\n{text}\n```", self.global_step)

    def configure_optimizers(self):
        decay = [p for p in self.net.parameters() if p.requires_grad and p.dim() >= 2]
        no_decay = [p for p in self.net.parameters() if p.requires_grad and p.dim() < 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": self.hparams.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}],
                                lr=self.hparams.lr, betas=tuple(self.hparams.betas),
                                fused=True)  # one kernel for all parameters, on CPU too: a faster step
        steps = max(1, int(self.trainer.estimated_stepping_batches))
        ratio = self.hparams.min_lr / self.hparams.lr
        warmup = self.hparams.warmup_steps
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, warmup, steps, ratio))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
