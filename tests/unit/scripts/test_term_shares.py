"""scripts/term_shares.py: nmt analyze reports of several seeds as one table of means and ranges."""

from __future__ import annotations

from pathlib import Path

import pytest
import term_shares


def report(folder: Path, e1_share: float, e1_removed: float) -> Path:
    """A two-layer cross-attention report with the files nmt analyze writes (the columns it reads)."""
    folder.mkdir(parents=True)
    rows = ["module,role,layer,term,variance,share,entropy"]
    for layer in (0, 1):
        rows += [f"cross/layer{layer},cross,{layer},E1,1.0,{e1_share},1.0",
                 f"cross/layer{layer},cross,{layer},E2,1.0,{1 - e1_share},1.0",
                 f"cross/layer{layer},cross,{layer},all,2.0,1.0,0.5",
                 f"cross/layer{layer},cross,{layer},cov E1,E2,0.0,0.0,"]
    (folder / "contributions.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (folder / "ablation.csv").write_text(
        "role,layer,term,bleu,chrf,d_bleu,d_chrf\nintact,,,30.0,50.0,0.0,0.0\n"
        f"cross,all,E1,{30 + e1_removed},40.0,{e1_removed},-10.0\ncross,1,E1,25.0,45.0,-5.0,-5.0\n", encoding="utf-8")
    return folder


def test_means_and_ranges_over_seeds(tmp_path: Path, capsys) -> None:
    a = report(tmp_path / "seed1", 0.6, -18.0)
    b = report(tmp_path / "seed2", 0.8, -20.0)
    assert term_shares.main([str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert ("| cross | E1 | 70 % (60 % to 80 %) | 70 % (60 % to 80 %) | -19.00 (-20.00 to -18.00) | "
            "-10.00 (-10.00 to -10.00) |") in out
    assert "| cross | E2 | 30 % (20 % to 40 %) | 30 % (20 % to 40 %) | – | – |" in out  # never removed here
    assert "| encoder |" not in out and "| cross | all |" not in out  # roles without modules; totals
    assert "| cross | E1 | 60 % | 60 % | -18.00 | -10.00 |" in term_shares.table([a])
    with pytest.raises(SystemExit):
        term_shares.main([str(tmp_path / "missing")])


def test_page_gets_the_table_in_place_of_its_term_share_table(tmp_path: Path, capsys) -> None:
    a = report(tmp_path / "seed1", 0.6, -18.0)
    b = report(tmp_path / "seed2", 0.8, -20.0)
    page = tmp_path / "page.md"
    before = ("# Findings\n\nText.\n\n| role | term | share, layer 0 | share, layer 1 | ΔBLEU removed | ΔchrF removed |\n"
              "|---|---|---|---|---|---|\n| cross | E1 | 60 % | 60 % | -18.00 | -10.00 |\n\nAfter.\n")
    page.write_text(before, encoding="utf-8")
    assert term_shares.main([str(a), str(b), "--page", str(page)]) == 0
    assert capsys.readouterr().out == f"{page}: term shares of 2 report(s)\n"
    assert page.read_text(encoding="utf-8") == before.replace(
        "| cross | E1 | 60 % | 60 % | -18.00 | -10.00 |\n",
        "| cross | E1 | 70 % (60 % to 80 %) | 70 % (60 % to 80 %) | -19.00 (-20.00 to -18.00) | "
        "-10.00 (-10.00 to -10.00) |\n| cross | E2 | 30 % (20 % to 40 %) | 30 % (20 % to 40 %) | – | – |\n")
    assert term_shares.main([str(a), str(b), "--page", str(page)]) == 0
    assert "(unchanged)" in capsys.readouterr().out
    page.write_text("# Findings\n\nNo table.\n", encoding="utf-8")  # nothing to replace: one error line, exit 2
    assert term_shares.main([str(a), "--page", str(page)]) == 2
    assert "no table whose header begins '| role | term | share, layer 0 |'" in capsys.readouterr().err
    assert page.read_text(encoding="utf-8") == "# Findings\n\nNo table.\n"
