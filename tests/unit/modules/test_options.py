"""Typed mechanism options: the registry maps names to options and classes, terms parse into frozen
dataclasses by field type, and every rule lives in one place with one exception type."""

from __future__ import annotations

import ast
import dataclasses

import pytest
from helpers.paths import REPO

from nmt.modules.conv_common import ConvOptions
from nmt.modules.deform_conv import DeformConv
from nmt.modules.deformable import Deformable, DeformableOptions
from nmt.modules.dynamic_conv import DynamicConv, DynamicOptions
from nmt.modules.factored_attention import FactoredAttention, FactoredOptions
from nmt.modules.lightweight_conv import LightweightConv
from nmt.modules.options import BuildContext, MechanismOptions, register
from nmt.modules.registry import MECHANISMS, build_mixer, lookup, resolve
from nmt.modules.salient import Salient, SalientOptions
from nmt.modules.spec import SpecError, parse_spec

MODULES = REPO / "nmt" / "modules"


def term(text: str):
    (t,) = parse_spec(text).terms
    return t


def test_a_spec_name_leads_to_its_options_and_class():
    classes = {"lightweight": LightweightConv, "dynamic": DynamicConv, "deformable": Deformable,
               "deform_attn": Deformable, "deform_conv": DeformConv, "salient": Salient, "mask": FactoredAttention}
    assert lookup(term("0110")).options is FactoredOptions
    assert lookup(term("deformable")) is lookup(term("deform_attn"))
    ctx = BuildContext(16, 2, "encoder")
    assert set(classes) <= set(MECHANISMS)
    for name, cls in classes.items():
        entry = MECHANISMS[name]
        assert issubclass(entry.options, MechanismOptions) and dataclasses.is_dataclass(entry.options)
        assert entry.options.__dataclass_params__.frozen, name
        assert entry.builtin and name in (entry.name, *entry.aliases)
        spec = parse_spec("1000" if name == "mask" else name)
        assert type(build_mixer(spec, ctx)) is cls


def test_declared_properties():
    assert [n for n, e in MECHANISMS.items() if e.ctranslate2] == ["mask"]
    assert {n for n, e in MECHANISMS.items() if "cross" not in e.roles} == {"lightweight", "dynamic"}
    assert FactoredOptions(mask="0100").sees_order() and not FactoredOptions(mask="1010").sees_order()
    assert DynamicOptions().sees_order() and not SalientOptions().sees_order()


def test_a_role_not_declared_is_refused_naming_the_roles():
    @register("crossless", roles=("encoder", "decoder"))
    @dataclasses.dataclass(frozen=True)
    class CrosslessOptions(MechanismOptions):
        pass

    try:
        with pytest.raises(SpecError, match=r"^crossless: has no cross role \(it fills encoder, decoder sublayers\)"):
            resolve(parse_spec("crossless"), BuildContext(16, 2, "cross"))
        resolve(parse_spec("crossless"), BuildContext(16, 2, "encoder"))
    finally:
        MECHANISMS.pop("crossless")


def test_registration_is_checked():
    with pytest.raises(ValueError, match="mechanism name 'salient' is already registered by nmt.modules.salient"):
        register("salient")(dataclasses.dataclass(frozen=True)(type("Other", (MechanismOptions,), {})))
    with pytest.raises(TypeError, match="frozen dataclass subclass of MechanismOptions"):
        register("plain")(type("Plain", (), {}))
    with pytest.raises(ValueError, match="roles must be some of encoder, decoder, cross"):
        register("odd", roles=("self",))(dataclasses.dataclass(frozen=True)(type("Odd", (MechanismOptions,), {})))
    assert "plain" not in MECHANISMS and "odd" not in MECHANISMS


def test_mechanisms_do_not_import_the_registry():
    for path in MODULES.glob("*.py"):
        if path.name in ("registry.py", "contract.py"):  # the table itself, and the checks that run on it
            continue
        imported = {
            node.module for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.ImportFrom)
        }
        assert "nmt.modules.registry" not in imported, path.name


def test_terms_parse_into_typed_frozen_options():
    opts = DynamicOptions.parse(term("dynamic:k=7,glu=false,dropconnect=0.2,impl=band"))
    assert opts == DynamicOptions(k=7, heads=None, glu=False, dropconnect=0.2, impl="band")
    assert (type(opts.k), type(opts.dropconnect)) == (int, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.k = 3  # type: ignore[misc]
    assert FactoredOptions.parse(term("1111:w=8")) == FactoredOptions(mask="1111", w=8)
    assert FactoredOptions.parse(term("1000:offset=aligned,ratio=1.1")).ratio == 1.1
    assert DeformableOptions.parse(term("deformable:norm=sigmoid,heads=1")) == DeformableOptions(heads=1, norm="sigmoid")
    assert SalientOptions.parse(term("salient")) == SalientOptions()
    assert DynamicOptions.parse(term("dynamic:glu=1")).glu is True


@pytest.mark.parametrize("spec,message", [
    ("dynamic:k=seven", "dynamic: option k='seven' is not a valid integer"),
    ("dynamic:glu=maybe", "dynamic: option glu='maybe' is not a valid boolean"),
    ("lightweight:impl=fft", "lightweight: option impl='fft' must be one of auto, unfold, band"),
    ("deformable:ratio=inf", "deformable: option ratio='inf' must be a finite number"),
    ("deformable:k=-1", "deformable: option k=-1 must be >= 1"),
    ("salient:frac=0", "salient: option frac=0.0 must be in (0, 1]"),
    ("1000:w=-1", "1000: option w=-1 must be >= 0"),
    ("1000:heads=2", "1000: unknown option(s) heads"),
    ("salient:mask=1000", "salient: unknown option(s) mask"),
])
def test_context_free_errors_come_from_parsing(spec, message):
    with pytest.raises(SpecError) as e:
        lookup(term(spec)).options.parse(term(spec))
    assert str(e.value).startswith(message)


def test_context_rules_run_once_for_config_and_constructor():
    encoder = BuildContext(16, 2, "encoder")
    with pytest.raises(SpecError, match="deformable: option ratio applies to the cross role only, not encoder"):
        resolve(parse_spec("deformable:ratio=1.2"), encoder)
    with pytest.raises(SpecError, match="deformable: option ratio applies to the cross role only, not encoder"):
        Deformable(encoder, DeformableOptions(ratio=1.2))  # same rule, same error, when built directly
    with pytest.raises(SpecError, match="dynamic: option k=4 must be odd"):
        DynamicConv(encoder, DynamicOptions(k=4))
    assert DynamicConv(BuildContext(16, 2, "decoder"), DynamicOptions(k=4)).kernel_size == 4
    with pytest.raises(SpecError, match="salient: option heads=3 must be a positive divisor of d_model=16"):
        Salient(encoder, SalientOptions(heads=3))
    with pytest.raises(SpecError, match="cross-attention cannot be removed"):
        resolve(parse_spec("w/o"), BuildContext(16, 2, "cross"))
    assert resolve(parse_spec("w/o"), encoder) == ()


def test_context_defaults_fill_unset_options():
    ctx = BuildContext(16, 4, "decoder", layer=2, n_layers=6, dropout=0.1)
    conv = build_mixer(parse_spec("lightweight"), ctx)
    assert (conv.kernel_size, conv.heads, conv.dropconnect) == (15, 4, 0.1)  # fairseq width of layer 2
    assert ConvOptions().kernel_size(ctx) == 15
    att = build_mixer(parse_spec("1000:w=2"), ctx)
    assert (att.window, att.offset, att.ratio, att.dropout) == (2, "plain", 1.0, 0.1)
    d = Deformable(ctx)
    assert (d.n_heads, d.k, d.norm, d.ratio) == (4, 4, "softmax", 1.0)
