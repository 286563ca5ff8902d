"""The checkpoint format: what a factor-nmt checkpoint holds, how it is read and written.

A checkpoint is a ``torch.save`` file of plain data (loadable with ``weights_only=True``):

- ``state_dict``: the Transformer's parameters under Lightning's ``model.`` prefix;
- ``global_step``: optimizer updates done;
- ``nmt``: ``format`` (this module's ``FORMAT_VERSION``; absent in the first checkpoints),
  ``config`` (the plain ``ExperimentConfig``), ``vocab`` (special ids, vocabulary sizes, the
  subword models' paths at training time), ``subword`` (the SentencePiece models' bytes,
  ``{"src": ..., "tgt": ...}``, so that a checkpoint translates on its own), ``val_bleu`` and,
  after averaging, ``averaged_from``.

Lightning's checkpoints (``last.ckpt``, ``step...ckpt``) add the training state (optimizer, loops,
callbacks, RNG) to this; ``Checkpoint.load`` reads both and ignores the training state. This module
does not import Lightning: ``nmt.train.module`` fills the ``nmt`` entry with ``nmt_entry``.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import torch

from nmt.data.subwords import model_identity
from nmt.io import atomic_write

if TYPE_CHECKING:
    from nmt.data.subwords import Vocab

FORMAT_VERSION = 1
PREFIX = "model."  # Lightning stores the module's ``self.model`` parameters under this prefix
VOCAB_KEYS = ("pad_id", "bos_id", "eos_id", "unk_id", "src_size", "tgt_size")  # what token ids mean


class CheckpointError(ValueError):
    """A file that is not a readable factor-nmt checkpoint; the message names the file."""


@dataclasses.dataclass
class Checkpoint:
    """The inference part of a checkpoint: weights, config, vocabulary and subword models."""

    state_dict: dict[str, torch.Tensor]  # Transformer parameter names (no ``model.`` prefix)
    config: dict[str, Any]  # plain ExperimentConfig (``nmt.config.to_dict``)
    vocab: dict[str, Any]  # pad/unk/bos/eos ids, src/tgt sizes, src_model/tgt_model paths
    subword: dict[str, bytes] = dataclasses.field(default_factory=dict)  # "src"/"tgt" model bytes
    global_step: int = 0
    val_bleu: float | None = None
    averaged_from: list[str] | None = None
    path: Path | None = None  # where it was loaded from (messages)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Checkpoint:
        """Read a factor-nmt checkpoint (ours or Lightning's); CheckpointError if it is not one."""
        raw = read_raw(path)
        p = Path(path)
        nmt = raw.get("nmt")
        if not isinstance(nmt, dict) or not {"config", "vocab"} <= set(nmt):
            raise CheckpointError(f"{p} is not a factor-nmt checkpoint (no 'nmt' entry with config and vocabulary)")
        version = nmt.get("format", 0)
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise CheckpointError(f"{p}: checkpoint format {version!r} is newer than this factor-nmt reads"
                                  f" ({FORMAT_VERSION}); update factor-nmt")
        state = raw.get("state_dict")
        if not isinstance(state, dict) or not all(isinstance(t, torch.Tensor) for t in state.values()):
            raise CheckpointError(f"{p} is not a valid checkpoint: no 'state_dict' of tensors")
        weights = {k[len(PREFIX):]: t for k, t in state.items() if k.startswith(PREFIX)}
        if not weights:
            raise CheckpointError(f"{p} is not a valid checkpoint: no '{PREFIX}*' parameters in its state_dict")
        subword = {k: bytes(v) for k, v in (nmt.get("subword") or {}).items()}
        config = upgrade_norm_bias(upgrade_biased_masks(nmt["config"], weights, p), weights)
        return cls(weights, config, dict(nmt["vocab"]), subword, int(raw.get("global_step", 0)),
                   nmt.get("val_bleu"), nmt.get("averaged_from"), p)

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically in the layout described above (readable by ``load`` and ``nmt validate``)."""
        nmt = nmt_entry(self.config, self.vocab, self.val_bleu, self.subword)
        if self.averaged_from is not None:
            nmt["averaged_from"] = list(self.averaged_from)
        obj = {"state_dict": {PREFIX + k: t for k, t in self.state_dict.items()}, "nmt": nmt,
               "global_step": self.global_step}
        with atomic_write(path, "wb") as f:
            torch.save(obj, f)

    def load_vocab(self) -> Vocab:
        """The subword models: from the bytes the checkpoint carries, else from the recorded paths."""
        from nmt.data.subwords import Vocab

        v = self.vocab
        if self.subword:
            return Vocab(v["src_model"], v["tgt_model"], src_proto=self.subword["src"],
                         tgt_proto=self.subword.get("tgt", self.subword["src"]))
        for key in ("src_model", "tgt_model"):
            if not Path(v[key]).is_file():
                raise FileNotFoundError(f"{self.path}: subword model {v[key]} (recorded in the checkpoint) is missing")
        return Vocab(v["src_model"], v["tgt_model"])


def subword_sides(subword: dict[str, bytes]) -> tuple[bytes, bytes] | None:
    """The (source, target) SentencePiece model bytes of a ``subword`` entry (a joint model serves
    both sides); None when the checkpoint carries none (checkpoints from before they did)."""
    if not subword:
        return None
    return subword["src"], subword.get("tgt", subword["src"])


def vocabulary_difference(a: tuple[dict[str, Any], dict[str, bytes]],
                          b: tuple[dict[str, Any], dict[str, bytes]]) -> str | None:
    """How two ``(vocab, subword)`` entries differ (special ids, sizes, subword models), or None when
    a token id means the same piece under both."""
    (va, sa), (vb, sb) = a, b
    diff = [f"{k} {va[k]!r} vs {vb[k]!r}" for k in VOCAB_KEYS if k in va and k in vb and va[k] != vb[k]]
    if diff:
        return "; ".join(diff)
    sides_a, sides_b = subword_sides(sa), subword_sides(sb)
    if sides_a is not None and sides_b is not None:
        changed = [side for side, x, y in zip(("source", "target"), sides_a, sides_b)
                   if model_identity(x) != model_identity(y)]
        if changed:
            return f"different {' and '.join(changed)} subword models of the same size (token ids name other pieces)"
    return None


def check_same_vocabulary(members: Sequence[tuple[str | Path, dict[str, Any], dict[str, bytes]]], action: str) -> None:
    """CheckpointError naming the first member and the first that differs from it, unless every
    ``(path, vocab, subword)`` member has the same special ids, vocabulary sizes and subword models.
    ``action`` names what needs that in the message ("average", "ensemble")."""
    path0, vocab0, subword0 = members[0]
    for path, vocab, subword in members[1:]:
        diff = vocabulary_difference((vocab0, subword0), (vocab, subword))
        if diff:
            raise CheckpointError(f"cannot {action} {path0} and {path}: their vocabularies differ ({diff})")


def check_averageable(ckpts: Sequence[Checkpoint]) -> None:
    """CheckpointError naming two files, unless all checkpoints share the first one's vocabulary and
    model: the same ``model`` config and the same parameter names and shapes."""
    first = ckpts[0]
    check_same_vocabulary([(c.path or "?", c.vocab, c.subword) for c in ckpts], "average")
    model0 = first.config.get("model", {})
    for c in ckpts[1:]:
        model = c.config.get("model", {})
        diff = [f"model.{k} {model0[k]!r} vs {model[k]!r}" for k in sorted(model0.keys() & model.keys())
                if model0[k] != model[k]]
        names0, names = set(first.state_dict), set(c.state_dict)
        if names0 != names:
            only = sorted(names0 ^ names)
            diff.append(f"parameters in one only: {', '.join(only[:3])}{' ...' if len(only) > 3 else ''}")
        else:
            diff += [f"{k} of shape {list(first.state_dict[k].shape)} vs {list(c.state_dict[k].shape)}"
                     for k in sorted(names) if first.state_dict[k].shape != c.state_dict[k].shape][:3]
        if diff:
            raise CheckpointError(f"cannot average {first.path} and {c.path}: different models ({'; '.join(diff)})")


_BIASED = re.compile(r"^(encoder|decoder)\.(\d+)\.(self_mixer|cross_mixer)(?:\.branches\.(\d+))?\.[qk]_proj\.bias$")
_ROLE_KEYS = {("encoder", "self_mixer"): ("encoder_self", "encoder_layers"),
              ("decoder", "self_mixer"): ("decoder_self", "decoder_layers"),
              ("decoder", "cross_mixer"): ("cross", "decoder_layers")}


def upgrade_biased_masks(config: dict[str, Any], weights: dict[str, torch.Tensor], path: Path) -> dict[str, Any]:
    """The config with ``proj_bias=1`` on every factor-mask term whose weights hold query/key biases.

    Checkpoints trained before factor masks became bias-free have such biases under a plain mask
    ("1000"): they are the standard biased layer, "1000:proj_bias=1" today (docs/attention.md). The
    returned config builds the model they were trained as; a warning names the file and layers."""
    from nmt.modules.spec import TermSpec, expand_layer_specs

    model = dict(config.get("model", {}))
    changed: list[str] = []
    for name in weights:
        m = _BIASED.match(name)
        if m is None or (m.group(1), m.group(3)) not in _ROLE_KEYS:
            continue
        key, n_key = _ROLE_KEYS[(m.group(1), m.group(3))]
        layer, branch = int(m.group(2)), int(m.group(4) or 0)
        specs = expand_layer_specs(model.get(key, "1000"), int(model.get(n_key, 6)), f"model.{key}")
        spec = specs[layer]
        term = spec.terms[branch]
        if not term.is_mask or term.options.get("proj_bias") in ("1", "true", "yes", "on"):
            continue
        terms = list(spec.terms)
        terms[branch] = TermSpec(term.name, {**term.options, "proj_bias": "1"})
        specs[layer] = dataclasses.replace(spec, terms=tuple(terms))
        model[key] = [str(sp) for sp in specs]
        changed.append(f"model.{key}[{layer}]")
    if not changed:
        return config
    warnings.warn(f"{path}: trained with biased query/key projections under plain factor masks; loading "
                  f"{', '.join(sorted(set(changed)))} as the standard biased layer (proj_bias=1)", stacklevel=3)
    return {**config, "model": model}


_NORM_BIAS = re.compile(r"(^|\.)(norm|encoder_norm|decoder_norm)\.bias$")


def upgrade_norm_bias(config: dict[str, Any], weights: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The config with ``model.norm_bias: true`` when it does not say and the weights hold LayerNorm
    biases: checkpoints from before LayerNorms became bias-free build the model they were trained as."""
    model = config.get("model", {})
    if "norm_bias" in model or not any(_NORM_BIAS.search(name) for name in weights):
        return config
    return {**config, "model": {**model, "norm_bias": True}}


def nmt_entry(config: dict[str, Any], vocab: dict[str, Any], val_bleu: float | None,
              subword: dict[str, bytes] | None = None) -> dict[str, Any]:
    """The ``nmt`` entry of a checkpoint. ``subword`` defaults to the bytes of the model files
    named in ``vocab`` (read now)."""
    if subword is None:
        subword = {"src": Path(vocab["src_model"]).read_bytes()}
        if vocab["tgt_model"] != vocab["src_model"]:
            subword["tgt"] = Path(vocab["tgt_model"]).read_bytes()
    return {"format": FORMAT_VERSION, "config": config, "vocab": dict(vocab), "subword": dict(subword),
            "val_bleu": val_bleu}


def read_raw(path: str | os.PathLike, mmap: bool = False) -> dict[str, Any]:
    """The whole checkpoint dict, loaded with ``weights_only=True`` (plain data and tensors only).

    FileNotFoundError for a missing file; CheckpointError naming the file for one that is truncated,
    corrupt, not a torch file, or holds anything but plain data."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint not found: {p}")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True, mmap=mmap)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, zipfile.BadZipFile,
            AttributeError, TypeError, KeyError, IndexError) as e:
        raise CheckpointError(f"{p} is not a valid checkpoint (truncated, corrupt or not a torch file:"
                              f" {type(e).__name__})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{p} is not a valid checkpoint (holds a {type(obj).__name__}, not a dict)")
    return obj


def global_step(path: str | os.PathLike) -> int:
    """Optimizer updates done when ``path`` was saved (memory-mapped: cheap on large files)."""
    return int(read_raw(path, mmap=True).get("global_step", 0))
