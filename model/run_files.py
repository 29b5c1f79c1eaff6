"""A run's files, known before torch loads: the default checkpoint path, whether a path can be
written, and what a checkpoint's header says."""

from __future__ import annotations

import itertools
import json
import os
import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path

from model.errors import CheckpointError, CorpusError


def runs_folder() -> Path:
    """The user data folder's runs/, where runs save unless told otherwise."""
    import platformdirs

    return Path(platformdirs.user_data_dir("nnio-tui")) / "runs"


def default_checkpoint_path(corpus_name: str, preset: str) -> Path:
    """Where a run saves unless told otherwise: the runs folder, by corpus and preset."""
    runs = runs_folder()
    path = runs / f"{_safe_name(corpus_name)}-{preset}.safetensors"
    # Names were ASCII only before: a run saved under such a name goes on where it is.
    ascii_only = re.sub(r"[^A-Za-z0-9._-]+", "-", corpus_name).strip("-.") or "corpus"
    older = runs / f"{ascii_only}-{preset}.safetensors"
    return older if older != path and older.is_file() and not path.exists() else path


def _safe_name(name: str) -> str:
    """A file name part from any text: letters and digits of any script (with their accents,
    composed as macOS's decomposed names are not), "." "_" "-"; the rest becomes "-"."""
    name = unicodedata.normalize("NFC", name)
    kept = "".join(ch if ch.isalnum() or ch in "._-" or unicodedata.category(ch)[0] == "M"
                   else "\0" for ch in name)
    return re.sub("\0+", "-", kept).strip("-.") or "corpus"


def existing_corpus_path(source: str | Path) -> Path:
    """The path a named corpus is read from; CorpusError when nothing is there."""
    path = Path(source).expanduser()
    if not path.exists():
        raise CorpusError(f"corpus not found: {path} (check the path)")
    return path


SAMPLE_SOURCE = "<sample>"  # the bundled corpus's source label


def corpus_source_label(source: str | Path | None) -> str:
    """How a checkpoint names the corpus it was trained on: the bundled sample's label, "-"
    for stdin, else the absolute path, so a resume from another folder finds the same text."""
    if source is None:
        return SAMPLE_SOURCE
    if str(source) == "-":
        return "-"
    return str(existing_corpus_path(source).resolve())


def numbered_beside(path: Path) -> Iterator[Path]:
    """NAME-2, NAME-3, ... beside path: the names a run saves to when NAME is taken. Ends at
    9,999, so a caller finding none free can say so."""
    return (path.with_name(f"{path.stem}-{n}{path.suffix}") for n in range(2, 10_000))


def first_free(path: Path) -> Path | None:
    """path, or else the first of NAME-2, NAME-3, ... beside it that does not exist; None
    when all of them are taken."""
    return next((p for p in itertools.chain((path,), numbered_beside(path)) if not p.exists()),
                None)


def encoding_name(name_or_path: str) -> str:
    """The encoding a --encoding value names: NAME for a path to NAME.tiktoken (the file is
    checked against the published one), so the same encoding from any folder is one run."""
    if name_or_path.endswith(".tiktoken") or "/" in name_or_path or "\\" in name_or_path:
        # either separator: a run saved on Windows holds C:\...\NAME.tiktoken
        return re.split(r"[\\/]", name_or_path)[-1].removesuffix(".tiktoken")
    return name_or_path


def before_reset_path(checkpoint: Path) -> Path:
    """Where a run's saved checkpoint is kept when a reset's first save would overwrite it:
    NAME-before-reset, or NAME-before-reset-2, -3, ... where the earlier ones are taken, so
    a second reset never replaces the run that the first one kept."""
    kept = first_free(checkpoint.with_name(f"{checkpoint.stem}-before-reset{checkpoint.suffix}"))
    if kept is None:
        raise CheckpointError(f"every -before-reset name beside {checkpoint} is taken: remove"
                              f" old runs from {checkpoint.parent}")
    return kept


def holds_training(checkpoint: Path) -> bool:
    """Whether a saved run is worth keeping before a reset saves over it: False where there
    is none, or its header says it was never updated (untrained weights, as a reset makes);
    a header that cannot be read counts as training, so nothing unknown is lost."""
    if not checkpoint.is_file():
        return False
    meta = peek_metadata(checkpoint)
    if "trained" in meta:  # nudges change the weights at step 0
        return meta["trained"] != "0"
    return meta.get("step") != "0"


def rescue_paths(checkpoint: Path) -> list[Path]:
    """Where a run that cannot be saved at its checkpoint goes instead, in order: a free
    rescued-NAME in the user's runs folder, then in the system's temp folder (which the
    system may empty); a folder that is the checkpoint's own is left out."""
    import tempfile

    spares = []
    for folder in (runs_folder(), Path(tempfile.gettempdir())):
        if folder == checkpoint.parent:
            continue
        free = first_free(folder / f"rescued-{checkpoint.name}")
        if free is not None:
            spares.append(free)
    return spares


def training_log_path() -> Path:
    """Where the app's training process writes its warnings and tracebacks."""
    import platformdirs

    return Path(platformdirs.user_log_dir("nnio-tui")) / "training.log"


def looks_like_pickle(path: Path) -> bool:
    """torch.save writes a zip (PK) or a raw pickle (0x80).

    safetensors starts with its header's length, whose low byte can be anything (0x80 too),
    then the JSON header itself: a "{" at byte 8 settles it.
    """
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) == 9 and head[8:9] == b"{":
        return False
    return head[:2] == b"PK" or head[:1] == b"\x80"


def first_mismatch(expect: dict, saved: dict) -> str | None:
    """The first setting the user asked for that a checkpoint was not saved with, as
    "block_size 64, not 32", or None when they all agree."""
    for name, wanted in expect.items():
        if name in saved and saved[name] != wanted:
            return f"{name} {saved[name]}, not {wanted}"
    return None


def check_expected(path: Path, expect: dict, saved: dict) -> None:
    """Name the first setting the user asked for that the checkpoint was not saved with."""
    mismatch = first_mismatch(expect, saved)
    if mismatch is not None:
        name = mismatch.split(" ", 1)[0]
        flag = "--" + name.replace("_", "-").replace("learning-rate", "lr")
        raise CheckpointError(f"{path} was saved with {mismatch}: drop {flag} to resume it, or"
                              " give a new --checkpoint path")


def saved_settings(path: Path) -> dict | None:
    """What check_expected compares, and the corpus the run was trained on ("corpus", where
    the header names it), from a checkpoint's header alone (no tensors read); None when the
    header does not say."""
    meta = peek_metadata(path)
    try:
        settings = {"encoding": encoding_name(meta["encoding"]),
                    "preset": meta.get("preset", "custom"),
                    # a header without one (a nanoGPT file) is not compared on it
                    **({"seed": int(meta["seed"])} if "seed" in meta else {}),
                    **json.loads(meta["gpt_config"]), **json.loads(meta["train_config"])}
    except (KeyError, ValueError, TypeError):
        return None
    if "corpus_source" in meta:  # older checkpoints do not name it
        settings["corpus"] = meta["corpus_source"]
    return settings


def check_save_path(path: str | Path) -> Path:
    """Refuse a checkpoint path that cannot be written, before any training is spent on it.

    Args:
        path: where a checkpoint will be saved.

    Returns:
        The path, with ~ expanded.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; give a file path for the checkpoint")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise CheckpointError(f"cannot save to {path}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CheckpointError(
            f"cannot write {path}: permission denied; save somewhere else (--checkpoint PATH)")
    return path


def context_limit(preset: str, overrides: dict | None = None,
                  checkpoint: str | Path | None = None) -> int | None:
    """The longest context the model will take, known before torch loads (None: ask later).

    Args:
        preset: one of PRESETS; its settings are validated here, so a bad one fails early.
        overrides: GPTConfig/TrainConfig fields to change.
        checkpoint: an existing checkpoint decides instead, if its header can be read.

    Returns:
        The block size, or None when only opening the checkpoint fully can tell.
    """
    from model.config import build_config

    if checkpoint is not None and Path(checkpoint).expanduser().is_file():
        meta = peek_metadata(Path(checkpoint).expanduser())
        try:
            return int(json.loads(meta["gpt_config"])["block_size"])
        except (KeyError, TypeError, ValueError):
            return None  # not ours, or damaged: Session.load will say which
    gpt_cfg, _ = build_config(preset, 100_277, overrides)
    return gpt_cfg.block_size


def peek_metadata(path: Path) -> dict:
    """A safetensors file's metadata strings, read from its JSON header; {} if it has none
    or cannot be read (opening it in full then says why)."""
    try:
        with open(path, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            if not 2 <= size <= 100_000_000:
                return {}
            header = f.read(size)
    except OSError:
        return {}
    try:
        meta = json.loads(header).get("__metadata__") or {}
    except (ValueError, AttributeError):
        return {}
    return meta if isinstance(meta, dict) else {}
