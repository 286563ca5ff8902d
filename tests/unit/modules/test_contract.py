"""The one contract suite: every registered mechanism, every declared example and role, every check;
and the suite fails a mechanism that breaks each part of the contract."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from helpers.paths import REPO
from torch import nn

from nmt.modules import MechanismOptions, MixerState, register
from nmt.modules.contract import CHECKS, ContractError, cases_for, check_mechanism, contract_cases
from nmt.modules.options import MECHANISMS
from nmt.modules.plugins import load_plugins

# Combinations are not registered, but keep the same contract: joint, parallel and stacked forms.
COMBINED = ("0010&deform_attn", "deform_conv:k=4&0010", "0010+deform_attn", "1000>lightweight:k=3", "0110+salient:k=3")
CASES = contract_cases() + [case for spec in COMBINED for case in cases_for(spec)]


@pytest.mark.parametrize("check", sorted(CHECKS))
@pytest.mark.parametrize("spec,role", CASES, ids=[f"{s}-{r}" for s, r in CASES])
def test_every_registered_mechanism_keeps_the_contract(spec, role, check):
    CHECKS[check](spec, role)


def test_every_mechanism_and_declared_role_is_covered():
    covered = {(spec.split(":")[0], role) for spec, role in CASES}
    for entry in {e.name: e for e in MECHANISMS.values() if e.builtin}.values():  # plugins: their own tests
        names = ("1000", "1111", "0110", "0011", "0101", "1111") if entry.name == "mask" else (entry.name,)
        for role in entry.roles:
            assert any((n, role) in covered for n in names), (entry.name, role)


def _example():
    load_plugins([str(REPO / "examples" / "plugins" / "prefix_mean.py")])
    import nmt_plugins.prefix_mean as example  # type: ignore[import-not-found]

    return example


def test_the_documented_example_keeps_the_contract():
    _example()
    check_mechanism("prefix_mean")


def _broken(name: str, mixer: type) -> str:
    @register(name)
    @dataclass(frozen=True)
    class Options(MechanismOptions):
        def build(self, ctx):
            return mixer(ctx.d_model, ctx.role)

    return name


def _variants():
    base = _example().PrefixMean

    class Peeks(base):  # the decoder reads the whole sequence
        def forward(self, x, *, padding_mask=None, memory=None, memory_padding_mask=None):
            if self.role == "decoder":
                return self.value(x).mean(1, keepdim=True).expand_as(x)
            return super().forward(x, padding_mask=padding_mask, memory=memory, memory_padding_mask=memory_padding_mask)

    class ReadsPadding(base):  # padding counts in the mean
        def forward(self, x, *, padding_mask=None, memory=None, memory_padding_mask=None):
            return super().forward(x, memory=memory)

    class ForgetsReorders(base):  # keeps its running sum outside the state: beam reorders miss it
        def step(self, x_t, state, *, memory=None, memory_padding_mask=None):
            if self.role == "cross":
                return super().step(x_t, state, memory=memory, memory_padding_mask=memory_padding_mask)
            self.total = self.value(x_t) + (self.total if state else 0)
            n = (state.t if state else 0) + 1
            return self.total / n, MixerState(t=n)

    class UnusedParameter(base):
        def __init__(self, d_model, role):
            super().__init__(d_model, role)
            self.gate = nn.Linear(d_model, 1)

    class DoubleCounts(base):
        def flops(self, tgt_len, src_len=None):
            return 2 * super().flops(tgt_len, src_len)

    class WrongShape(base):
        def forward(self, x, **kw):
            return super().forward(x, **kw)[:, :1]

    return {"causal": Peeks, "padding": ReadsPadding, "step": ForgetsReorders, "gradients": UnusedParameter,
            "flops": DoubleCounts, "shapes": WrongShape}


@pytest.mark.parametrize("check", sorted(CHECKS))
def test_the_suite_fails_a_mechanism_that_breaks_each_check(check):
    mixer = _variants()[check]
    name = _broken(f"broken_{check}", mixer)
    try:
        role = "encoder" if check == "padding" else "decoder"  # right padding is after every decoder prefix
        with pytest.raises(ContractError, match=rf"^{name} \({role}\): {check}: "):
            CHECKS[check](name, role)
        with pytest.raises(ContractError):
            check_mechanism(name)
    finally:
        MECHANISMS.pop(name)


def test_tolerances_do_not_hide_a_real_difference():
    """float64 equality up to 1e-9: a change of 1e-6 in one position of one step is caught."""
    base = _example().PrefixMean

    class Nudged(base):
        def step(self, x_t, state, **kw):
            y, state = super().step(x_t, state, **kw)
            return y + (1e-6 if state.t == 4 else 0.0), state

    name = _broken("nudged", Nudged)
    try:
        with pytest.raises(ContractError, match="step 3 differs"):
            CHECKS["step"](name, "decoder")
    finally:
        MECHANISMS.pop(name)
    assert torch.get_default_dtype() == torch.float32  # the suite's float64 stays inside it


def test_the_extending_page_shows_the_example_as_it_is():
    source = (REPO / "examples" / "plugins" / "prefix_mean.py").read_text(encoding="utf-8")
    body = source[source.index('@register("prefix_mean")'):]
    assert body in (REPO / "docs" / "extending.md").read_text(encoding="utf-8")
