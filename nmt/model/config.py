"""Typed configuration of the encoder-decoder Transformer (the ``model:`` section of a YAML config)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Union

from nmt.config import ConfigError, field
from nmt.modules.base import Role
from nmt.modules.options import BuildContext
from nmt.modules.plugins import require_plugins
from nmt.modules.registry import resolve
from nmt.modules.spec import MixerSpec, SpecError, expand_layer_specs

SpecValue = Union[str, list[str]]
SPEC_KEYS: dict[str, str] = {"encoder": "encoder_self", "decoder": "decoder_self", "cross": "cross"}


@dataclass
class ModelConfig:
    """Dimensions, normalisation, embeddings and the per-layer mechanism specs."""

    d_model: int = field(512, help="model width")
    n_heads: int = field(8, help="attention heads (also the kernel heads of convolutions by default)")
    d_ff: int = field(2048, help="feed-forward inner width")
    encoder_layers: int = field(6, help="number of encoder layers")
    decoder_layers: int = field(6, help="number of decoder layers")
    dropout: float = field(0.1, help="dropout on embeddings and residual branches")
    attention_dropout: float = field(0.0, help="dropout on attention weights / normalised kernels")
    activation_dropout: float = field(0.0, help="dropout after the FFN activation")
    activation: Literal["relu", "gelu"] = field("relu", help="FFN activation")
    norm: Literal["pre", "post"] = field("pre", help="pre-norm (default) or post-norm residual blocks")
    norm_bias: bool = field(
        False,
        help="LayerNorms with a bias (beta). Off by default: a norm's output reaches the attention queries, "
        "where beta acts as a query bias and adds E3/E4 terms that a factor mask excludes (docs/attention.md); "
        "true gives the standard biased LayerNorm (checkpoints trained with it load as such)",
    )
    absolute_positions: Literal["auto", "on", "off"] = field(
        "auto",
        help="add sinusoidal absolute positions to the embeddings; auto = on for a stack (encoder/decoder) "
        "in which some self-attention layer has no order-aware term (E2/E4, convolution, deformable)",
    )
    max_positions: int = field(1024, help="longest sequence the absolute position table covers")
    share_embeddings: bool = field(True, help="one embedding matrix for source and target (joint vocabulary)")
    tie_embeddings: bool = field(True, help="tie the output projection to the target embedding")
    encoder_self: SpecValue = field("1000", help="encoder self-attention spec, one for all layers or a list per layer")
    decoder_self: SpecValue = field("1000", help="decoder self-attention spec (causal), one or a list per layer")
    cross: SpecValue = field("1000", help="encoder-decoder attention spec, one or a list per layer")
    plugins: list[str] = field(
        default_factory=list,
        help="mechanisms of your own: .py files or modules that @register them (docs/extending.md); imported when a"
        " config is loaded, recorded in checkpoints, which load only when the same plugins are passed",
    )

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ConfigError(f"model.d_model={self.d_model} is not divisible by model.n_heads={self.n_heads}")
        for name in ("d_model", "n_heads", "d_ff", "encoder_layers", "decoder_layers", "max_positions"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name} must be positive, got {getattr(self, name)}")
        for name in ("dropout", "attention_dropout", "activation_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"model.{name} must be in [0, 1), got {getattr(self, name)}")
        require_plugins(self.plugins)  # loaded by the config loader or --plugins, never by a checkpoint
        self.check_mechanisms()  # at load time, so errors come before any data or run folder

    def build_context(self, role: Role, layer: int) -> BuildContext:
        """Where the ``role`` mixer of 0-based ``layer`` sits (what its options are checked against)."""
        n = self.encoder_layers if role == "encoder" else self.decoder_layers
        return BuildContext(self.d_model, self.n_heads, role, layer, n, self.attention_dropout)

    def check_mechanisms(self) -> None:
        """Parse every layer's spec and check its typed options for that layer and role; errors
        name the key and layer, e.g. ``model.encoder_self[2] = 'deformable:k=-1': deformable: ...``."""
        for role, specs in self.layer_specs().items():
            key = SPEC_KEYS[role]
            value = getattr(self, key)
            for i, spec in enumerate(specs):
                try:
                    resolve(spec, self.build_context(role, i))  # type: ignore[arg-type]
                except SpecError as e:
                    text = value if isinstance(value, str) else value[i]
                    raise ConfigError(f"model.{key}[{i}] = {text!r}: {e}") from None

    def layer_specs(self) -> dict[str, list[MixerSpec]]:
        """Parsed specs per role: {"encoder": [...], "decoder": [...], "cross": [...]}."""
        try:
            specs = {
                "encoder": expand_layer_specs(self.encoder_self, self.encoder_layers, "model.encoder_self"),
                "decoder": expand_layer_specs(self.decoder_self, self.decoder_layers, "model.decoder_self"),
                "cross": expand_layer_specs(self.cross, self.decoder_layers, "model.cross"),
            }
        except SpecError as e:
            raise ConfigError(str(e)) from None
        for i, s in enumerate(specs["cross"]):
            if s.is_none:
                raise ConfigError(f"model.cross[{i}]: 'w/o' is only for self-attention; cross-attention is needed")
        return specs

    def uses_absolute_positions(self, stack: Literal["encoder", "decoder"]) -> bool:
        """Whether absolute positions are added to the ``stack``'s input embeddings."""
        if self.absolute_positions != "auto":
            return self.absolute_positions == "on"
        role: Role = stack
        return not all(
            any(o.sees_order() for o in resolve(spec, self.build_context(role, i)))
            for i, spec in enumerate(self.layer_specs()[stack])
        )
