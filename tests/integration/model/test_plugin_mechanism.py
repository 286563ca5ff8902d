"""A mechanism defined in a file outside the package (examples/plugins/prefix_mean.py) trains,
decodes and keeps the contract; its checkpoint records the plugin and loads only when the plugin is
passed (a checkpoint never imports code by itself)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import yaml
from helpers.paths import REPO
from helpers.synthetic import tiny_experiment

from nmt import Translator
from nmt.cli import main
from nmt.config import ConfigError, to_dict
from nmt.modules.contract import check_mechanism
from nmt.modules.plugins import load_plugins

EXAMPLE = REPO / "examples" / "plugins" / "prefix_mean.py"


@pytest.fixture(scope="module")
def plugin_run(reverse_root, tmp_path_factory):
    """A tiny copy-task model whose encoder and decoder self-attention are the example mechanism,
    trained through ``nmt fit`` from a YAML config that names the plugin."""
    out = tmp_path_factory.mktemp("plugin") / "run"
    load_plugins([str(EXAMPLE)])  # to build the config object here; nmt fit imports it from the YAML too
    cfg = tiny_experiment(
        reverse_root, out, data={"corpus": "copy"},
        model={"encoder_self": "prefix_mean", "decoder_self": ["prefix_mean"], "cross": "1000",
               "plugins": [str(EXAMPLE)]},
        train={"max_steps": 60, "val_every_steps": 30, "heatmap_sentences": 0, "save_top_k": 2},
    )
    config = out.parent / "plugin.yaml"
    config.write_text(yaml.safe_dump(to_dict(cfg)), encoding="utf-8")
    assert main(["fit", "--config", str(config), "--no_progress"]) == 0
    return out


def test_it_trains_and_the_checkpoint_names_the_plugin(plugin_run):
    ckpt = torch.load(plugin_run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["nmt"]["config"]["model"]["plugins"] == [str(EXAMPLE)]
    assert ckpt["global_step"] == 60
    assert ckpt["nmt"]["config"]["model"]["encoder_self"] == "prefix_mean"
    # the optimiser moved the plugin's own weights between the two validations (gradients reach it)
    earlier = torch.load(next((plugin_run / "checkpoints").glob("step0000030-*.ckpt")), map_location="cpu",
                         weights_only=False)["state_dict"]
    plugin_weights = [k for k in ckpt["state_dict"] if k.endswith(".value.weight")]
    assert len(plugin_weights) == 2  # the encoder's and the decoder's self-mixing (one layer each)
    for key in plugin_weights:
        assert not torch.equal(ckpt["state_dict"][key], earlier[key]), key


def test_it_decodes_with_the_plugin_passed(plugin_run, reverse_root, tmp_path):
    src = reverse_root / "copy" / "test.src"
    out = tmp_path / "hyp.txt"
    last = plugin_run / "checkpoints" / "last.ckpt"
    assert main(["translate", "--plugins", str(EXAMPLE), "--checkpoint", str(last), "-i", str(src), "-o", str(out)]) == 0
    assert len(out.read_text(encoding="utf-8").splitlines()) == len(src.read_text(encoding="utf-8").splitlines())
    translator = Translator(last, plugins=[str(EXAMPLE)])
    assert translator.translate(["a b c"], beam=2)[0] == translator.translate(["a b c"], beam=2)[0]


def test_without_the_plugin_the_checkpoint_is_refused_naming_it(plugin_run, reverse_root):
    last = plugin_run / "checkpoints" / "last.ckpt"
    run = subprocess.run(
        [sys.executable, "-m", "nmt.cli", "translate", "--checkpoint", str(last), "-i", str(reverse_root / "copy" / "test.src")],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300,
    )
    assert run.returncode == 2, run.stderr
    assert run.stdout == ""
    err = run.stderr.strip().splitlines()[-1]
    assert f"model.plugins: the model uses mechanism code from plugin(s) {EXAMPLE}, which are not loaded" in err
    assert "--plugins FILE.py" in err


def test_the_plugin_keeps_the_contract():
    load_plugins([str(EXAMPLE)])
    check_mechanism("prefix_mean")


def test_plugin_errors_name_the_plugin(tmp_path):
    with pytest.raises(ConfigError, match=r"--plugins: plugin file .*missing\.py not found"):
        load_plugins([str(tmp_path / "missing.py")])
    broken = tmp_path / "broken_mech.py"
    broken.write_text("raise RuntimeError('half written')\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"importing plugin .*broken_mech\.py failed: RuntimeError: half written"):
        load_plugins([str(broken)])
    clash = tmp_path / "clash" / "prefix_mean.py"
    clash.parent.mkdir()
    clash.write_text("", encoding="utf-8")
    load_plugins([str(EXAMPLE)])
    with pytest.raises(ConfigError, match="has the name 'prefix_mean' of the plugin already loaded"):
        load_plugins([str(clash)])
    with pytest.raises(ConfigError, match="plugin module 'no_such_pkg.mech' not found"):
        load_plugins(["no_such_pkg.mech"])
    taken = tmp_path / "takes_a_name.py"
    taken.write_text(
        "from dataclasses import dataclass\nfrom nmt.modules import MechanismOptions, register\n"
        "@register('salient')\n@dataclass(frozen=True)\nclass Mine(MechanismOptions):\n    pass\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="mechanism name 'salient' is already registered by nmt.modules.salient"):
        load_plugins([str(taken)])
