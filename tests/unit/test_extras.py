"""Optional dependency groups: a command whose group is missing stops with one line naming the group
and how to install it (exit 2); base commands run without the groups."""

from __future__ import annotations

import sys

import pytest

from nmt.cli import main
from nmt.extras import COMMAND_NEEDS, MissingExtra, installed, require, require_command


def _hide(monkeypatch, *modules: str) -> None:
    """Make ``modules`` look uninstalled (``import`` raises, ``find_spec`` finds nothing)."""
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


def test_require_names_the_group_and_how_to_install_it(monkeypatch):
    require("train", "json", "os", what="nmt fit")  # present: nothing happens
    _hide(monkeypatch, "lightning")
    assert not installed("lightning") and installed("json") and not installed("no_such_module_anywhere")
    with pytest.raises(MissingExtra) as e:
        require("train", "json", "lightning", what="nmt fit")
    assert str(e.value) == "nmt fit needs the training extras: pip install 'factor-nmt[train]' (lightning is not installed)"
    assert isinstance(e.value, ImportError)
    _hide(monkeypatch, "tensorboard")
    with pytest.raises(MissingExtra, match=r"nmt ablate needs the study extras: pip install 'factor-nmt\[study\]' "
                                           r"\(lightning, tensorboard are not installed\)"):
        require_command("ablate")
    require_command("translate")  # a base command needs no group


@pytest.mark.parametrize("argv, hidden, group", [
    (["fit", "--config", "missing.yaml"], "lightning", "train"),
    (["validate", "--config", "missing.yaml", "--checkpoint", "x.ckpt"], "tensorboard", "train"),
    (["test", "--checkpoint", "x.ckpt"], "lightning", "train"),
    (["ablate", "--config", "missing.yaml"], "matplotlib", "study"),
    (["analyze", "--checkpoint", "x.ckpt"], "matplotlib", "study"),
    (["export", "--checkpoint", "x.ckpt", "-o", "out"], "ctranslate2", "export"),
])
def test_a_command_without_its_group_is_one_line_and_exit_2(monkeypatch, capsys, argv, hidden, group):
    _hide(monkeypatch, hidden)
    assert main(argv) == 2
    err = capsys.readouterr().err
    kind = {"train": "training", "study": "study", "export": "export"}[group]
    assert f"error: nmt {argv[0]} needs the {kind} extras: pip install 'factor-nmt[{group}]'" in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_base_commands_run_without_the_groups(monkeypatch, tmp_path, capsys):
    _hide(monkeypatch, "lightning", "pytorch_lightning", "datasets", "tensorboard", "matplotlib", "ctranslate2")
    hyp, ref = tmp_path / "hyp.txt", tmp_path / "ref.txt"
    hyp.write_text("a small test of the scorer\n", encoding="utf-8")
    ref.write_text("a small test of the scorer\n", encoding="utf-8")
    assert main(["score", "--hyp", str(hyp), "--ref", str(ref), "--metrics", "bleu"]) == 0
    assert "BLEU = 100.00" in capsys.readouterr().out


def test_hugging_face_corpora_need_the_training_extras(monkeypatch):
    from nmt.data.sources import load_hf

    _hide(monkeypatch, "datasets")
    for name in ("HF_HUB_ETAG_TIMEOUT", "HF_HUB_DOWNLOAD_TIMEOUT"):  # load_hf sets them: restored afterwards
        monkeypatch.setenv(name, "30")
    with pytest.raises(MissingExtra, match=r"Hugging Face dataset 'bentrevett/multi30k' needs the training extras: "
                                           r"pip install 'factor-nmt\[train\]'"):
        load_hf("bentrevett/multi30k", None, "train")


def test_every_group_a_command_needs_is_a_known_group():
    assert {group for group, _ in COMMAND_NEEDS.values()} <= {"train", "study", "export"}
