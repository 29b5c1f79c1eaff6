"""Resuming a saved run: read a checkpoint, check it against what was asked, rebuild the Session."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

from model.errors import ConfigError, CorpusError, DamagedCheckpoint
from model.run_files import SAMPLE_SOURCE, check_expected, encoding_name, looks_like_pickle


def resume(cls, checkpoint: Path, *, corpus, device: str,
           on_progress: Callable[[str, float], None] | None, expect: dict,
           corpus_optional: bool, precision: str = "auto", encoding_file: str | None = None):
    """The body of Session.load (see its docstring); cls is Session."""
    from model import checkpoint as ckpt
    from model.config import GPTConfig, TrainConfig, from_json, validate
    from model.corpus import open_corpus
    from model.device import resolve_device, training_dtype
    from model.vocab import load_encoding

    path = ckpt.check_readable(checkpoint)
    torch_device = resolve_device(device)
    training_dtype(torch_device, precision)  # a bad name fails before the slow work
    if on_progress is not None:
        on_progress("reading the checkpoint", 0.0)
    if looks_like_pickle(path):
        tensors, meta = ckpt.read_nanogpt(path)
    else:
        tensors, meta = ckpt.read(path)
    try:
        gpt_cfg = from_json(GPTConfig, meta["gpt_config"])
        train_cfg = from_json(TrainConfig, meta["train_config"])
        validate(gpt_cfg, train_cfg)
        encoding, step, seed = meta["encoding"], int(meta["step"]), int(meta.get("seed", 0))
        if step < 0 or seed < 0:
            raise ValueError(f"step {step} and seed {seed} must be 0 or more")
        data_state = json.loads(meta["data_state"]) if "data_state" in meta else None
    except (KeyError, ValueError, TypeError, ConfigError) as e:
        raise DamagedCheckpoint(f"{path} has missing or unreadable settings ({e})") from e
    given = None
    if encoding_file is not None:  # where the run's encoding is; it must be the same one
        if encoding_name(encoding_file) != encoding_file:  # a path: a folder or a missing
            given = load_encoding(encoding_file)  # file is said as such, not as a mismatch
        expect = {**expect, "encoding": encoding_name(encoding_file)}
    check_expected(path, expect, {
        "encoding": encoding_name(encoding), "preset": meta.get("preset", "custom"),
        **({"seed": seed} if "seed" in meta else {}),  # a nanoGPT file has none to compare
        **dataclasses.asdict(gpt_cfg), **dataclasses.asdict(train_cfg)})
    enc = given if given is not None else load_encoding(_encoding_source(encoding))
    encoding = enc.name
    if enc.n_vocab != gpt_cfg.vocab_size:
        raise DamagedCheckpoint(
            f"{path}: vocab_size is {gpt_cfg.vocab_size} but its encoding {encoding} has"
            f" {enc.n_vocab}; the file is damaged or was edited")
    source = corpus if corpus is not None else meta.get("corpus_source", SAMPLE_SOURCE)
    if corpus_optional and corpus is None:
        # Predicting and sampling read no corpus: the small bundled one stands in, as opening
        # (hashing, maybe tokenizing) gigabytes of training text would take minutes.
        source = SAMPLE_SOURCE
    try:
        if source == "-" and corpus is None:
            # Reading stdin again would wait for input nobody sends, or read other text.
            raise CorpusError(f"{path} was trained on text from stdin: give the corpus again")
        opened = open_corpus(None if source == SAMPLE_SOURCE else source, enc, encoding,
                             on_progress)
        opened.check_fits(gpt_cfg.block_size, fixed=True)
    except CorpusError as error:
        if not corpus_optional and corpus is None and source not in ("-", SAMPLE_SOURCE):
            # a path the user never typed: say where it came from
            raise CorpusError(f"{error}; {path.name} was trained on it: name a corpus to go on"
                              " with other text") from error
        if not corpus_optional:
            raise
        opened = open_corpus(None, enc, encoding, on_progress)
    session = cls(enc=enc, corpus=opened, encoding=encoding,
                  preset=meta.get("preset", "custom"), gpt_cfg=gpt_cfg, train_cfg=train_cfg,
                  device=torch_device, seed=seed, checkpoint_path=path,
                  precision=precision)
    trainer = session._trainer
    ckpt.restore_model(trainer.model, tensors, path)
    trainer.set_optimizer_state(ckpt.optimizer_state(trainer.model, tensors, trainer.fused_adamw,
                                                      path))
    trainer.step = step
    session._trained_before = meta.get("trained", "1" if step else "0") != "0"
    if data_state is not None and opened.source == meta.get("corpus_source"):
        try:
            trainer.windows.set_state(data_state)
        except (KeyError, ValueError, TypeError) as e:
            raise DamagedCheckpoint(f"{path} has an unreadable sampler state ({e})") from e
    session._restore_history(meta.get("loss_history"))
    return session


def _encoding_source(saved: str) -> str:
    """Where to load a run's encoding from: the name it was saved with (runs saved before
    names were kept may hold a path: it is used while it is there)."""
    if saved != encoding_name(saved) and Path(saved).expanduser().is_file():
        return saved
    return encoding_name(saved)
