"""How the ``nmt`` command ends: Ctrl-C at any point, also while the libraries load, is exit 130
without a traceback."""

from __future__ import annotations

import pytest

import nmt.cli


def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


@pytest.mark.parametrize("where", ["build_parser", "tune_allocator", "_run"])
def test_ctrl_c_during_start_up_is_exit_130_without_a_traceback(monkeypatch, capsys, where):
    """``build_parser`` imports the config classes (torch), ``tune_allocator`` runs before the command."""
    monkeypatch.setattr(nmt.cli, where, _interrupt)
    try:
        code = nmt.cli.main(["translate", "--checkpoint", "x.ckpt"])
    except KeyboardInterrupt:
        pytest.fail(f"Ctrl-C in {where} escaped nmt.cli.main")
    assert code == 130
    assert capsys.readouterr().err == ""
