"""Attention heatmaps of a few sentences, per layer and role, for TensorBoard and PNG files; the
axes are labelled with the subword tokens when a vocabulary is at hand."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Mapping, Sequence

import torch

from nmt.model.transformer import Transformer
from nmt.modules.base import Mixer


@contextlib.contextmanager
def recording(model: Transformer) -> Iterator[list[tuple[str, Mixer]]]:
    """Enable ``record_weights`` on every mixer (and its branches) for the duration of the block."""
    named: list[tuple[str, Mixer]] = []
    for role, mixers in model.mixers().items():
        for i, m in enumerate(mixers):
            if m is None:
                continue
            parts = list(m.branches) if hasattr(m, "branches") else [m]
            for j, part in enumerate(parts):
                suffix = f".{j}:{type(part).__name__}" if len(parts) > 1 else f":{type(part).__name__}"
                named.append((f"{role}/layer{i}{suffix}", part))
    for _, m in named:
        m.record_weights = True
    try:
        yield named
    finally:
        for _, m in named:
            m.record_weights = False
            m.last_weights = None


@torch.no_grad()
def attention_maps(model: Transformer, batch, n: int) -> dict[str, list[torch.Tensor]]:
    """Head-averaged weight maps (T, S) of the first ``n`` sentences, real rows and columns only:
    {"role/layer:Mech": [map of sentence 0, ...]}."""
    n = min(n, batch.src.size(0))
    out: dict[str, list[torch.Tensor]] = {}
    with recording(model) as named:
        model(batch.src[:n], batch.src_padding_mask[:n], batch.tgt_in[:n])
        for name, m in named:
            w = m.last_weights
            if w is None or w.dim() != 4:
                continue
            role = name.split("/")[0]
            maps = []
            for s in range(n):
                rows, cols = (len(x) for x in positions(batch, s, role))
                maps.append(w[s].float().mean(0)[:rows, :cols].cpu())
            out[name] = maps
    return out


def positions(batch, s: int, role: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids (query axis, key axis) of sentence ``s`` for a mixer of ``role``, real tokens only:
    queries are source tokens (encoder) or the decoder input ``<s>`` + target (decoder, cross);
    keys are source tokens (encoder, cross) or the decoder input (decoder)."""
    src = batch.src[s][~batch.src_padding_mask[s]]
    tgt = batch.tgt_in[s][~batch.tgt_padding_mask[s]]
    return (src if role == "encoder" else tgt), (tgt if role == "decoder" else src)


def token_labels(batch, s: int, role: str, vocab: Any) -> tuple[list[str], list[str]]:
    """Subword pieces (query axis, key axis) of sentence ``s`` for a mixer of ``role`` (``positions``);
    ``vocab`` is an ``nmt.data.subwords.Vocab``."""
    rows, cols = positions(batch, s, role)
    src_sp, tgt_sp = vocab.src_sp, vocab.tgt_sp
    row_sp = src_sp if role == "encoder" else tgt_sp
    col_sp = tgt_sp if role == "decoder" else src_sp
    return [row_sp.id_to_piece(int(i)) for i in rows], [col_sp.id_to_piece(int(i)) for i in cols]


def heatmap_figure(
    panels: Mapping[str, torch.Tensor],
    title: str,
    query_labels: Sequence[str] | None = None,
    key_labels: Sequence[str] | None = None,
):
    """A matplotlib figure with one heatmap (query x key) per panel, side by side; the axes carry
    the tokens when labels are given, else positions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = next(iter(panels.values()))
    T, S = first.shape
    top = max(float(w.max()) for w in panels.values()) or 1.0  # one colour scale for every panel
    side = max(3.0, 0.22 * max(T, S))
    fig, axes = plt.subplots(1, len(panels), figsize=(side * len(panels) + 1, side), squeeze=False,
                             layout="constrained")
    for ax, (name, w) in zip(axes[0], panels.items()):
        im = ax.imshow(w.numpy(), aspect="auto", cmap="viridis", vmin=0.0, vmax=top)
        if key_labels is not None:
            ax.set_xticks(range(len(key_labels)), key_labels, rotation=90, fontsize=6)
        else:
            ax.set_xlabel("key position")
        if query_labels is not None:
            ax.set_yticks(range(len(query_labels)), query_labels, fontsize=6)
        else:
            ax.set_ylabel("query position")
        ax.set_title(name if len(panels) > 1 else title, fontsize=7)
    fig.colorbar(im, ax=axes[0].tolist(), fraction=0.02)
    if len(panels) > 1:
        fig.suptitle(title, fontsize=8)
    return fig


def log_attention_heatmaps(module, batch, n: int) -> None:
    """Write heatmap figures, axes labelled with the subword tokens, to the module's TensorBoard
    logger (rank 0 only)."""
    if not module.trainer.is_global_zero:
        return
    exp = getattr(module.logger, "experiment", None)
    if exp is None or not hasattr(exp, "add_figure"):
        return
    import matplotlib.pyplot as plt

    dm = getattr(module.trainer, "datamodule", None)
    vocab = dm.vocab if dm is not None else None
    for name, maps in attention_maps(module.model, batch, n).items():
        role = name.split("/")[0]
        for s, w in enumerate(maps):
            rows, cols = token_labels(batch, s, role, vocab) if vocab is not None else (None, None)
            fig = heatmap_figure({name: w}, f"{name}/sent{s}", rows, cols)
            exp.add_figure(f"attention/{name}/sent{s}", fig, module.global_step)
            plt.close(fig)
