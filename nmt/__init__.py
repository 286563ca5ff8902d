"""factor-nmt: neural machine translation for studying which parts of attention matter.

From Python, translate and score with a trained checkpoint (``nmt.translator``)::

    from nmt import Translator

    t = Translator("runs/x/final.ckpt")
    hyps = t.translate(["A man rides a bike."], beam=5)
    t.score(hyps, ["Ein Mann fährt Fahrrad."])   # {"bleu": ..., "chrf": ..., ...}

``import nmt`` itself imports nothing heavy: ``Translator`` (torch, the model) is loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"  # the one place of the version number (pyproject.toml reads it)

__all__ = ["Translator", "__version__"]

if TYPE_CHECKING:
    from nmt.translator import Translator


def __getattr__(name: str) -> Any:
    if name == "Translator":
        from nmt.translator import Translator

        globals()["Translator"] = Translator  # later look-ups find it without this hook
        return Translator
    raise AttributeError(f"module 'nmt' has no attribute {name!r}")
