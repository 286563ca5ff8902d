"""The LightningModule: loss, optimiser, validation BLEU. Thin: the model and decoding live elsewhere."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import lightning as L
import torch
import torch.distributed as dist

from nmt.checkpoint import nmt_entry
from nmt.config import to_dict
from nmt.decode import translate_batch
from nmt.eval.score import score
from nmt.experiment import ExperimentConfig
from nmt.model.transformer import Transformer
from nmt.train.heatmaps import log_attention_heatmaps
from nmt.train.loss import label_smoothed_nll
from nmt.train.rng import gather_rng_states, restore_rng_state
from nmt.train.schedule import build_optimizer

log = logging.getLogger("nmt")


class TranslationTask(L.LightningModule):
    """Trains a ``Transformer`` with label-smoothed cross-entropy and validates with sacrebleu BLEU/chrF.

    ``vocab`` is a plain dict (pad/bos/eos ids, vocabulary sizes, subword model paths) so that
    checkpoints stay loadable with ``torch.load(weights_only=True)``. The vocabulary's subword
    models and the validation references come from the trainer's datamodule (``NMTDataModule``).
    """

    def __init__(self, cfg: ExperimentConfig, vocab: dict[str, Any]) -> None:
        super().__init__()
        self.cfg = cfg
        self.vocab = vocab
        # plain data for the logger (and the checkpoint's hyper_parameters); the task itself uses ``cfg``
        self.save_hyperparameters({"config": to_dict(cfg), "vocab": vocab})
        self.model = Transformer(self.cfg.model, vocab["src_size"], vocab["tgt_size"], vocab["pad_id"])
        self._val_hyps: list[tuple[int, str]] = []
        self._val_nll = torch.zeros(2, dtype=torch.float64)  # (sum of nll, tokens)
        self._t0: float | None = None
        self._tokens = 0
        self._pending_rng: dict[str, Any] | None = None

    # ---- training ----
    def _loss(self, batch):
        hidden = self.model(batch.src, batch.src_padding_mask, batch.tgt_in)  # (B, T, D)
        keep = ~batch.tgt_padding_mask  # (B, T)
        logits = self.model.logits(hidden[keep])  # (N, V) only real tokens
        return label_smoothed_nll(logits, batch.tgt_out[keep], self.cfg.optim.label_smoothing)

    def training_step(self, batch, batch_idx: int):
        out = self._loss(batch)
        self._tokens += out.ntokens
        if self.global_step % self.cfg.train.log_every_steps == 0:
            self.log_dict(
                {"train/loss": out.loss.detach(), "train/nll": out.nll, "train/ppl": torch.exp(out.nll)},
                prog_bar=True,
                batch_size=out.ntokens,
            )
        return out.loss

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        if self._pending_rng is not None:
            restore_rng_state(self._pending_rng, self.global_rank, self.trainer.world_size)
            self._pending_rng = None
        if self._t0 is None:
            self._t0, self._tokens = time.perf_counter(), 0

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        if self.global_step % self.cfg.train.log_every_steps == 0 and self._t0 is not None:
            elapsed = time.perf_counter() - self._t0
            if elapsed > 0 and self._tokens:
                self.log("train/tgt_tokens_per_s", self._tokens / elapsed, batch_size=1)
            self._t0, self._tokens = time.perf_counter(), 0
            sched = self.lr_schedulers()
            if sched is not None:
                self.log("train/lr", sched.get_last_lr()[0], batch_size=1)

    def on_before_optimizer_step(self, optimizer) -> None:
        if self.global_step % self.cfg.train.log_every_steps == 0:
            norms = [p.grad.detach().norm(2) for p in self.parameters() if p.grad is not None]
            if norms:
                self.log("train/grad_norm", torch.stack(norms).norm(2), batch_size=1)

    def configure_optimizers(self):
        total = self.cfg.train.max_steps if self.cfg.train.max_steps > 0 else None
        return build_optimizer(self.model, self.cfg.optim, total)

    # ---- validation ----
    def on_validation_epoch_start(self) -> None:
        self._val_hyps = []
        self._val_nll = torch.zeros(2, dtype=torch.float64)
        self._t0 = None  # do not count validation time in training tokens/s

    def validation_step(self, batch, batch_idx: int) -> None:
        out = self._loss(batch)
        self._val_nll += torch.tensor([out.nll.item() * out.ntokens, out.ntokens], dtype=torch.float64)
        limit = self.cfg.train.val_max_sentences
        sel = torch.arange(batch.ids.numel(), device=batch.ids.device)
        if limit > 0:
            sel = sel[batch.ids < limit]
        dm = self.trainer.datamodule
        if sel.numel() and dm is not None:
            src, mask = batch.src[sel], batch.src_padding_mask[sel]
            dcfg = self.cfg.decode_for_validation()
            hyps = translate_batch(
                self.model, src, mask, dcfg, self.vocab["bos_id"], self.vocab["eos_id"], self.vocab["pad_id"]
            )
            for i, nbest in zip(batch.ids[sel].tolist(), hyps):
                self._val_hyps.append((i, dm.vocab.decode_tgt(nbest[0].tokens)))
        if batch_idx == 0 and self.cfg.train.heatmap_sentences > 0 and self.logger is not None:
            log_attention_heatmaps(self, batch, self.cfg.train.heatmap_sentences)

    def on_validation_epoch_end(self) -> None:
        nll = self._val_nll.clone()
        hyps = self._val_hyps
        if dist.is_available() and dist.is_initialized():
            nll = self.all_gather(nll.to(self.device)).reshape(-1, 2).sum(0).cpu()
            gathered: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, hyps)
            hyps = [h for part in gathered for h in part]
        if nll[1] > 0:
            mean = (nll[0] / nll[1]).item()
            self.log("val/nll", mean, sync_dist=False, batch_size=1)
            self.log("val/ppl", math.exp(min(mean, 50.0)), sync_dist=False, batch_size=1)
        dm = self.trainer.datamodule
        if hyps and dm is not None:
            refs = dm.references("valid")
            by_id = dict(hyps)
            ids = sorted(by_id)
            bleu, chrf = score([by_id[i] for i in ids], [refs[i] for i in ids], metrics=("bleu", "chrf"))
            self.log("val_bleu", bleu.score, prog_bar=True, batch_size=1)
            self.log("val/chrf", chrf.score, batch_size=1)
            if self.trainer.is_global_zero and self.logger is not None and hasattr(self.logger, "experiment"):
                exp = self.logger.experiment
                if hasattr(exp, "add_text"):
                    exp.add_text("val/signature", f"{bleu.signature}  {chrf.signature}", self.global_step)
                    exp.add_text("val/example", f"{by_id[ids[0]]}  ||| ref: {refs[ids[0]]}", self.global_step)
        elif dm is not None:
            self.log("val_bleu", 0.0, batch_size=1)

    def on_train_end(self) -> None:
        """Under DDP, check that every rank ended with the same parameters."""
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
            return
        checksum = torch.stack([p.detach().double().sum() for p in self.model.parameters()]).sum()
        sums = self.all_gather(checksum.to(self.device)).cpu()
        if not torch.allclose(sums, sums[0].expand_as(sums), rtol=1e-9, atol=1e-9):
            raise RuntimeError(f"DDP ranks disagree on the parameters: checksums {sums.tolist()}")
        if self.trainer.is_global_zero:
            log.info("parameters identical on %d ranks (checksum %.6f)", sums.numel(), sums[0].item())

    # ---- checkpoints carry what translation needs (plain data only) ----
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        bleu = self.trainer.callback_metrics.get("val_bleu")
        ranks = gather_rng_states()  # every rank saves (a collective); rank 0 writes the file
        checkpoint["nmt"] = {
            **nmt_entry(to_dict(self.cfg), self.vocab, float(bleu) if bleu is not None else None),  # nmt.checkpoint
            "rng": {"torch": ranks[0]["torch"], "ranks": ranks},  # dropout continues exactly on every rank
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Applied at the first training batch, after the data loader iterator has drawn its seed
        # (as it had in the uninterrupted run), so that dropout masks continue exactly.
        self._pending_rng = checkpoint.get("nmt", {}).get("rng")
