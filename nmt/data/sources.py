"""Where each split's parallel text comes from: local files, a Hugging Face dataset, a sacrebleu test set.

Every source ends as two plain text files ``<root>/<corpus>/<name>.<lang>``: Hugging Face splits and
sacrebleu test sets are exported there once, so later runs read local files and never touch the network.
"""

from __future__ import annotations

import difflib
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from tqdm import tqdm

from nmt.data.config import SPLITS, DataConfig
from nmt.data.errors import DataError
from nmt.data.text import ParallelFiles, read_lines, write_lines_atomic
from nmt.extras import require

log = logging.getLogger(__name__)

# (name, config, split) -> a datasets.Dataset (or anything with column_names and iter(batch_size))
HFLoader = Callable[[str, str | None, str], Any]

NETWORK_TIMEOUT_S = 5.0
LOCAL_COPY_HINT = "point at a local copy with --data.root DIR or NMT_DATA_ROOT=DIR (see data/README.md)"


def corpus_dir(cfg: DataConfig) -> Path:
    """The folder holding the corpus's raw text: ``<root>/<corpus>``."""
    return Path(cfg.root) / cfg.corpus


def split_files(cfg: DataConfig, hf_loader: HFLoader | None = None, progress: bool = False) -> dict[str, ParallelFiles]:
    """The text files of every configured split, exporting Hugging Face / sacrebleu data first if needed."""
    unknown = sorted(set(cfg.splits) - set(SPLITS))
    if unknown:
        raise DataError(f"data.splits: unknown split {unknown[0]!r} (use {', '.join(SPLITS)})")
    if cfg.src_lang == cfg.tgt_lang:
        raise DataError(f"data.src_lang and data.tgt_lang are both {cfg.src_lang!r}")
    if cfg.source == "hf" and not cfg.hf_name:
        raise DataError("data.source is 'hf' but data.hf_name is not set (e.g. wmt14, bentrevett/multi30k)")
    sacre = {"valid": cfg.valid_sacrebleu, "test": cfg.test_sacrebleu}
    out: dict[str, ParallelFiles] = {}
    for split in SPLITS:
        if sacre.get(split):
            out[split] = sacrebleu_files(cfg, split, sacre[split], progress)
        elif split in cfg.splits:
            name = cfg.splits[split]
            if cfg.source == "hf":
                out[split] = hf_files(cfg, split, name, hf_loader, progress)
            else:
                out[split] = local_files(cfg, split, name)
    if "train" not in out:
        raise DataError("data.splits has no 'train' entry")
    return out


def local_files(cfg: DataConfig, split: str, prefix: str) -> ParallelFiles:
    """``<root>/<corpus>/<prefix>.<src_lang>`` and ``.<tgt_lang>`` (an absolute prefix is used as is)."""
    base = corpus_dir(cfg) / prefix
    origin = f"data.splits.{split}={prefix!r}, data.root={cfg.root!r}; {LOCAL_COPY_HINT}"
    return ParallelFiles(split, Path(f"{base}.{cfg.src_lang}"), Path(f"{base}.{cfg.tgt_lang}"), origin)


# ----------------------------------------------------------------------------- network

def reachable(url: str, timeout: float = NETWORK_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the URL's host opens within ``timeout`` seconds."""
    u = urlparse(url)
    port = u.port or (443 if u.scheme == "https" else 80)
    try:
        with socket.create_connection((u.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def _offline_env() -> bool:
    return any(os.environ.get(k, "").lower() in ("1", "true", "yes") for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


# ----------------------------------------------------------------------------- Hugging Face

def hf_files(cfg: DataConfig, split: str, hf_split: str, loader: HFLoader | None, progress: bool) -> ParallelFiles:
    """Text files of one Hugging Face split, exported to ``<root>/<corpus>/<hf_split>.<lang>`` on first use."""
    files = local_files(cfg, split, hf_split)
    files = ParallelFiles(split, files.src, files.tgt, f"Hugging Face {cfg.hf_name} {cfg.hf_config or ''} split {hf_split}")
    if files.src.is_file() and files.tgt.is_file():
        return files
    ds = (loader or load_hf)(cfg.hf_name, cfg.hf_config, hf_split)
    src, tgt = hf_columns(ds, cfg.src_lang, cfg.tgt_lang, f"{cfg.hf_name} split {hf_split!r}", progress)
    try:
        write_lines_atomic(files.tgt, tgt)  # target first: the source file's presence marks a finished export
        write_lines_atomic(files.src, src)
    except OSError as e:
        raise DataError(f"cannot write the exported corpus to {corpus_dir(cfg)}: {e.strerror}; {LOCAL_COPY_HINT}") from None
    log.info("exported %d pairs of %s split %s to %s", len(src), cfg.hf_name, hf_split, files.src.parent)
    return files


def load_hf(name: str, config: str | None, split: str) -> Any:
    """One split of a Hugging Face dataset: a ``save_to_disk`` folder, or ``datasets.load_dataset``."""
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", str(int(NETWORK_TIMEOUT_S)))
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "30")
    require("train", "datasets", what=f"reading the Hugging Face dataset {name!r}")
    import datasets

    where = f"Hugging Face dataset {name!r}" + (f" ({config})" if config else "")
    path = Path(name)
    if path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "dataset_info.json").is_file()):
        ds = datasets.load_from_disk(str(path))
        if isinstance(ds, datasets.DatasetDict):
            if split not in ds:
                raise DataError(f"{where}: no split {split!r} (has {', '.join(ds)}); fix data.splits")
            return ds[split]
        return ds
    if not path.exists() and not _offline_env():
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
        if not reachable(endpoint):
            raise DataError(f"cannot download {where}: {endpoint} is unreachable (no network?); "
                            f"put the text files <split>.<lang> in <root>/<corpus>/ and {LOCAL_COPY_HINT}")
    try:
        return datasets.load_dataset(name, config, split=split)
    except ValueError as e:
        if "split" in str(e).lower() or "Unknown split" in str(e):
            raise DataError(f"{where}: {str(e).splitlines()[0]}; fix data.splits") from None
        raise DataError(f"cannot load {where}: {str(e).splitlines()[0]}") from None
    except Exception as e:  # noqa: BLE001 - network, missing dataset/config: one line, not a traceback
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise DataError(f"cannot load {where}: {type(e).__name__}: {first}; {LOCAL_COPY_HINT}") from None


def hf_columns(ds: Any, src_lang: str, tgt_lang: str, where: str, progress: bool = False) -> tuple[list[str], list[str]]:
    """Source and target strings of a dataset whose rows are ``{"translation": {lang: text}}`` or ``{lang: text}``."""
    cols = list(ds.column_names)
    nested = "translation" in cols
    if not nested:
        missing = [lang for lang in (src_lang, tgt_lang) if lang not in cols]
        if missing:
            raise DataError(f"{where}: no column {missing[0]!r} and no 'translation' column (columns: {', '.join(cols)});"
                            " check data.src_lang / data.tgt_lang")
    src: list[str] = []
    tgt: list[str] = []
    bar = tqdm(total=len(ds), desc=f"export {where}", unit="pair", disable=not progress, leave=False)
    for batch in ds.iter(batch_size=10_000):
        if nested:
            rows = batch["translation"]
            for lang in (src_lang, tgt_lang):
                if rows and lang not in rows[0]:
                    raise DataError(f"{where}: translation has no language {lang!r} (has {', '.join(rows[0])});"
                                    " check data.src_lang / data.tgt_lang / data.hf_config")
            src.extend(r[src_lang] for r in rows)
            tgt.extend(r[tgt_lang] for r in rows)
        else:
            src.extend(batch[src_lang])
            tgt.extend(batch[tgt_lang])
        bar.update(len(batch[cols[0]]))
    bar.close()
    return src, tgt


# ----------------------------------------------------------------------------- sacrebleu

def sacrebleu_files(cfg: DataConfig, split: str, test_set: str, progress: bool = False) -> ParallelFiles:
    """Source and first reference of a sacrebleu test set, copied to ``<root>/<corpus>/sacrebleu.<name>.<lang>``."""
    import sacrebleu
    from sacrebleu.utils import get_reference_files, get_source_file

    option = f"data.{split}_sacrebleu"
    if test_set not in sacrebleu.DATASETS:
        close = difflib.get_close_matches(test_set, list(sacrebleu.DATASETS), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise DataError(f"{option}: unknown sacrebleu test set {test_set!r}{hint}")
    langpair = f"{cfg.src_lang}-{cfg.tgt_lang}"
    ds = sacrebleu.DATASETS[test_set]
    if langpair not in ds.langpairs:
        raise DataError(f"{option}: {test_set} has no language pair {langpair} (has {', '.join(ds.langpairs)})")
    base = corpus_dir(cfg) / f"sacrebleu.{test_set.replace('/', '_')}"
    files = ParallelFiles(split, Path(f"{base}.{cfg.src_lang}"), Path(f"{base}.{cfg.tgt_lang}"),
                          f"sacrebleu {test_set} {langpair}")
    if files.src.is_file() and files.tgt.is_file():
        return files
    cached = all(os.path.exists(ds._get_txt_file_path(langpair, f)) for f in ds.fieldnames(langpair))
    if not cached:
        url = (ds.data or ["https://github.com"])[0]
        if not reachable(url):
            raise DataError(f"sacrebleu test set {test_set} ({langpair}) is not in the sacrebleu cache ({ds._outdir})"
                            f" and {urlparse(url).hostname} is unreachable (no network?); put its text files in"
                            f" <root>/<corpus>/ and use data.splits.{split} instead, {LOCAL_COPY_HINT}")
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(60)
    try:
        src_path, ref_path = get_source_file(test_set, langpair), get_reference_files(test_set, langpair)[0]
    except (Exception, SystemExit) as e:  # noqa: BLE001 - sacrebleu calls sys.exit on download errors
        raise DataError(f"cannot get sacrebleu test set {test_set} ({langpair}): {type(e).__name__}: {e}") from None
    finally:
        socket.setdefaulttimeout(old_timeout)
    try:
        write_lines_atomic(files.tgt, read_lines(ref_path))
        write_lines_atomic(files.src, read_lines(src_path))
    except OSError as e:
        raise DataError(f"cannot write the test set to {base.parent}: {e.strerror}; {LOCAL_COPY_HINT}") from None
    return files
