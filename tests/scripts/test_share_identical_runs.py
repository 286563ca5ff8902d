"""scripts/share_identical_runs.py: twins are found across studies and finished runs copied once."""

from __future__ import annotations

import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
sys.path.insert(0, str(SCRIPTS))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ablate"))

import share_identical_runs as S  # noqa: E402
from ablate_toys import write_study  # noqa: E402


def test_twins_are_copied_to_runs_not_started(tmp_path: Path) -> None:
    first = write_study(tmp_path)
    text = first.read_text(encoding="utf-8").replace(str(tmp_path / "out"), str(tmp_path / "out2"))
    second = tmp_path / "study2.yaml"  # same settings, another directory: each run has a twin
    second.write_text(text.replace("name: tiny", "name: tiny2"), encoding="utf-8")
    assert S.main([str(first), str(second)]) == 0  # nothing finished: nothing copied
    assert not (tmp_path / "out2").exists()

    done = tmp_path / "out" / "1000" / "seed1"
    done.mkdir(parents=True)
    (done / "result.json").write_text("{}", encoding="utf-8")
    started = tmp_path / "out2" / "0110-noabs" / "seed1"
    started.mkdir(parents=True)  # a twin already started is left alone
    (tmp_path / "out" / "0110-noabs" / "seed1").mkdir(parents=True)
    (tmp_path / "out" / "0110-noabs" / "seed1" / "result.json").write_text("{}", encoding="utf-8")
    assert S.main([str(first), str(second), "--train.max_steps", "8"]) == 0
    copy = tmp_path / "out2" / "1000" / "seed1"
    assert (copy / "result.json").is_file() and (copy / "SHARED_FROM").read_text().strip() == str(done)
    assert list(started.iterdir()) == []
