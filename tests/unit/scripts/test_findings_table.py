"""scripts/findings_table.py: a findings page's finished-runs table refreshed from the records."""

from __future__ import annotations

from pathlib import Path

import findings_table
import pytest
from helpers.ablate_toys import toy_record, write_campaign, write_study

from nmt.ablate.report import record_path
from nmt.ablate.results import save_json_atomic
from nmt.ablate.study import load_study
from nmt.config import ConfigError, to_dict

OLD = """# Page

Text before.

| study | setting | seed | test BLEU | hours |
|---|---|---|---|---|
| toy | 1000 | 1 | 1.00 | 0.1 |

Text after.
"""


def test_replace_table_keeps_the_rest_of_the_page() -> None:
    table = "| study | setting | seed | test BLEU | s/update |\n|---|---|---|---|---|\n| a | b | 1 | 2.00 | 3.00 |\n"
    new = findings_table.replace_table(OLD, table)
    assert new == OLD.replace("| study | setting | seed | test BLEU | hours |\n|---|---|---|---|---|\n"
                              "| toy | 1000 | 1 | 1.00 | 0.1 |\n", table)
    assert findings_table.replace_table(new, table) == new
    with pytest.raises(ConfigError, match=r"page.md: no table whose header begins '\| study \| setting \| seed \|'"):
        findings_table.replace_table("# Page\n\n| a | b |\n", table, "page.md")


def test_main_writes_the_campaigns_finished_runs(tmp_path: Path, capsys) -> None:
    study_file = write_study(tmp_path)
    records = tmp_path / "records"
    study_file.write_text(study_file.read_text(encoding="utf-8") + f"records_dir: {records}\n", encoding="utf-8")
    study = load_study(study_file)
    rec = toy_record("1000", 1, bleu=31.5, wall_seconds=10000.0)
    save_json_atomic(record_path(study, "1000", 1), to_dict(rec))
    campaign = write_campaign(tmp_path, study_file)
    page = tmp_path / "findings.md"
    page.write_text(OLD, encoding="utf-8")
    assert findings_table.main([str(campaign), str(page)]) == 0
    text = page.read_text(encoding="utf-8")
    assert "| tiny | 1000 | 1 | 31.50 | 50.00 | – / – / – / – | – | 2.8 | 2.50 | – |" in text
    assert text.startswith("# Page\n\nText before.\n\n| study |") and text.endswith("|\n\nText after.\n")
    assert "1 finished runs" in capsys.readouterr().out
    (tmp_path / "other.md").write_text("# no table\n", encoding="utf-8")
    assert findings_table.main([str(campaign), str(tmp_path / "other.md")]) == 2
    assert "other.md: no table" in capsys.readouterr().err
    assert (tmp_path / "other.md").read_text(encoding="utf-8") == "# no table\n"
