"""``Translator``: a trained checkpoint as a Python object, for calling the toolkit from one's own code.

It loads the model once, as ``nmt translate`` does (``nmt.inference.load_model``: on a CPU with
AVX-512 the self-attention projections merged and the linear layers pre-packed for oneDNN; or run
in int8), then
translates each call's sentences in length-sorted batches of at most ``max_tokens`` source tokens
(``nmt.inference.translate_lines``) and hands them back in input order. Decoding settings not given
to ``translate`` are the checkpoint's (its ``decode`` section, e.g. the length penalty ``nmt select``
chose), so ``Translator(ckpt).translate(lines)`` gives what ``nmt translate --checkpoint ckpt`` writes.

Only the base install is needed: neither this module nor what it imports loads Lightning, Hugging Face
datasets, TensorBoard or matplotlib.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch

from nmt.data.subwords import Vocab
from nmt.decode import DecodeConfig
from nmt.experiment import ExperimentConfig
from nmt.inference import Loaded, decode_config, load_model, translate_lines
from nmt.model.transformer import Transformer


class Translator:
    """Translate lists of sentences with a checkpoint (or an ensemble of several) and score them.

    ``checkpoint``: a ``.ckpt`` path, or a list of them to decode as an ensemble (same vocabulary).
    ``quantize="int8"``: run the linear layers as dynamic int8 (CPU only; ``nmt.model.quantize``).
    ``device``: where the model runs (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...). ``pack``: on CPU,
    pre-pack the linear layers for oneDNN (None: where the CPU has AVX-512, ``nmt translate``'s
    default; ``False`` is ``--no_pack``, ``True`` is ``--pack``).
    ``max_tokens``: source tokens per decoding batch; ``max_input_len``: longer inputs are truncated
    with a warning (0: the model's position limit). ``plugins``: files or modules of mechanisms of
    your own that the model uses (docs/extending.md); a checkpoint never imports them by itself.
    """

    def __init__(
        self,
        checkpoint: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        *,
        quantize: str | None = None,
        device: str | torch.device = "cpu",
        pack: bool | None = None,
        max_tokens: int = 4000,
        max_input_len: int = 0,
        plugins: Sequence[str] = (),
    ) -> None:
        if plugins:  # mechanisms of the user's own that the checkpoint names (nmt.modules.plugins)
            from nmt.modules.plugins import load_plugins

            load_plugins(list(plugins), "Translator(plugins=...)")
        paths = [checkpoint] if isinstance(checkpoint, (str, os.PathLike)) else list(checkpoint)
        if not paths:
            raise ValueError("Translator: no checkpoint given")
        if max_tokens < 1:
            raise ValueError(f"Translator: max_tokens must be >= 1, got {max_tokens}")
        if max_input_len < 0:
            raise ValueError(f"Translator: max_input_len must be >= 0, got {max_input_len}")
        self.device = torch.device(device)
        on_cpu = self.device.type == "cpu"
        if quantize is not None and not on_cpu:
            raise ValueError(f"Translator: quantize={quantize!r} runs on CPU only, not on {self.device}")
        self.models: list[Loaded] = [load_model(p, pack if on_cpu else False, quantize=quantize) for p in paths]
        if not on_cpu:
            for loaded in self.models:
                loaded.model.to(self.device)
        self.max_tokens = max_tokens
        self.max_input_len = max_input_len

    @property
    def config(self) -> ExperimentConfig:
        """The experiment config the (first) model was trained with."""
        return self.models[0].cfg

    @property
    def decode(self) -> DecodeConfig:
        """The default decoding settings: the checkpoint's ``decode`` section."""
        return self.models[0].cfg.decode

    @property
    def vocab(self) -> Vocab:
        """The subword models (``encode_src``, ``decode_tgt``, special ids)."""
        return self.models[0].vocab

    @property
    def model(self) -> Transformer:
        """The (first) model, in eval mode and prepared for inference."""
        return self.models[0].model

    def __repr__(self) -> str:
        paths = ", ".join(str(m.path) for m in self.models)
        return f"Translator({paths}, device={str(self.device)!r})"

    def translate(
        self, sentences: Sequence[str], *, beam: int | None = None, nbest: int = 1, **options: Any
    ) -> list[str] | list[list[tuple[str, float]]]:
        """Translate raw source sentences; the output is in input order.

        With ``nbest == 1`` (the default): one detokenised translation per sentence. With ``nbest > 1``:
        per sentence, its ``nbest`` best hypotheses as ``(text, score)``, best first (``score``: the
        log-probability divided by the length penalty, as ``nmt translate --scores`` prints it).
        ``beam`` and any other ``DecodeConfig`` field given as a keyword (``alpha``, ``max_len_a``,
        ``sampling``, ``k``, ``p``, ``temperature``, ``seed``, ...) override the checkpoint's settings
        for this call; an unknown or invalid one is a ``nmt.config.ConfigError`` naming it. An empty
        sentence gives an empty translation.
        """
        if isinstance(sentences, str):
            raise TypeError("Translator.translate takes a list of sentences; wrap a single sentence in a list")
        lines = list(sentences)
        for i, line in enumerate(lines):
            if not isinstance(line, str):
                raise TypeError(f"Translator.translate: sentence {i} is a {type(line).__name__}, not a str")
        overrides = {"nbest": nbest, **{k: v for k, v in options.items() if v is not None}}
        if beam is not None:
            overrides["beam"] = beam
        dcfg = decode_config(self.decode, overrides)
        if not lines:
            return []
        results = translate_lines(self.models, lines, dcfg, self.max_tokens, self.max_input_len)
        text = self.vocab.decode_tgt
        if dcfg.nbest == 1:
            return [text(r[0].tokens) for r in results]
        return [[(text(h.tokens), h.score) for h in r] for r in results]

    @staticmethod
    def score(
        hyps: Sequence[str],
        refs: Sequence[str] | Sequence[Sequence[str]],
        metrics: Sequence[str] = ("bleu", "chrf"),
        *,
        tokenize: str | None = None,
        lowercase: bool = False,
    ) -> dict[str, Any]:
        """Corpus scores of detokenised hypotheses with sacrebleu (``nmt.eval.score``, as ``nmt score``):
        ``{"bleu": 27.3, "chrf": 55.1, "bleu_signature": "nrefs:1|...", "chrf_signature": ...}``.
        ``refs``: one reference per hypothesis, or a list of reference streams (several references);
        ``metrics`` from bleu, chrf, chrf++, ter. Mismatched lengths are a ``ScoreError`` (a ValueError)."""
        from nmt.eval.score import score

        if isinstance(hyps, str):
            raise TypeError("Translator.score takes a list of hypotheses; wrap a single one in a list")
        results = score(hyps, refs, metrics, tokenize=tokenize, lowercase=lowercase)
        out: dict[str, Any] = {}
        for name, result in zip(metrics, results):
            out[name.lower()] = result.score
            out[f"{name.lower()}_signature"] = result.signature
        return out
