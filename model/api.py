"""The facade the UI and scripts use: plain data in, plain data out, no tensors cross it.

Importing this module is cheap (torch loads on first use), so the app can draw its first
frame before torch is ready.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from model.errors import (
    CheckpointError,
    ConfigError,
    CorpusError,
    DamagedCheckpoint,
    DeviceError,
    EncodingError,
    NnioError,
    TrainingDiverged,
)
from model.records import (
    Chunk,
    NudgeReport,
    Probe,
    Sampled,
    SessionInfo,
    StepReport,
    TokenProb,
)
from model.run_files import (
    before_reset_path,
    check_save_path,
    context_limit,
    corpus_source_label,
    default_checkpoint_path,
    encoding_name,
    existing_corpus_path,
    first_free,
    first_mismatch,
    holds_training,
    numbered_beside,
    rescue_paths,
    runs_folder,
    saved_settings,
)
from model.tokens import TokenizedSource, tokenize_source

__all__ = [
    "CheckpointError", "ConfigError", "CorpusError", "DamagedCheckpoint", "DeviceError",
    "EncodingError", "NnioError", "TrainingDiverged", "Chunk", "NudgeReport", "Probe", "Sampled",
    "SessionInfo", "StepReport", "TokenProb", "Session", "TokenizedSource", "tokenize_source",
    "tune_cpu", "tune_allocator", "before_reset_path", "check_save_path", "context_limit",
    "check_device", "check_encoding", "corpus_source_label", "default_checkpoint_path",
    "default_run_path", "encoding_name", "existing_corpus_path", "first_mismatch",
    "first_free", "holds_training", "numbered_beside", "saved_settings",
]

# A step this many times the cpu preset's (under a second on 2 cores) takes 10 s or more.
CPU_STEP_WARN_X = 12
LOSS_HISTORY = 2000  # points of each loss curve kept in memory and in checkpoints



def tune_cpu(threads: int | None = None) -> None:
    """Call once at start-up: torch threads and glibc allocator settings (see model.device)."""
    from model.device import tune_cpu as _tune

    _tune(threads)


def check_device(name: str) -> None:
    """Raise DeviceError now if the device cannot be used (imports torch for "cuda" and "mps")."""
    if name.strip().lower() in ("auto", "cpu"):
        return
    from model.device import resolve_device

    resolve_device(name)


def check_encoding(name_or_path: str) -> None:
    """Load an encoding now (it is kept), so a bad --encoding is said before anything else."""
    from model.vocab import load_encoding

    load_encoding(name_or_path)


def default_run_path(corpus: str | Path | None, preset: str) -> Path:
    """Where a run on this corpus source and preset saves unless told otherwise."""
    from model.corpus import corpus_name

    return default_checkpoint_path(corpus_name(corpus), preset)


def tune_allocator() -> None:
    """Call first thing in a process that will train: glibc settings, torch not imported."""
    from model.allocator import tune_allocator as _tune

    _tune()


def _check_finite(probs) -> None:
    """Raise TrainingDiverged if a next-token distribution holds NaN or infinities."""
    import torch

    if not bool(torch.isfinite(probs).all()):
        raise TrainingDiverged(
            "the model outputs NaN: reset it (r in the app) or load a good checkpoint")


class Session:
    """A model, its optimizer, a corpus and a tokenizer: everything one training run needs.

    A window is a slice of the corpus: tokens [start, start + length) are the context and
    the token at start + length is the label. All methods run on the calling thread and
    are meant for one thread at a time, with two exceptions that another thread may call
    meanwhile: chunks(), and probe() where probes_beside_steps says so.
    """

    def __init__(self, *, enc, corpus, encoding: str, preset: str, gpt_cfg, train_cfg,
                 device, seed: int, checkpoint_path: Path, precision: str = "auto") -> None:
        """Use Session.open or Session.load; this wires already-built parts together."""
        import numpy as np

        self._enc = enc
        self._corpus = corpus
        self._encoding = encoding
        self._preset = preset
        self._gpt_cfg = gpt_cfg
        self._train_cfg = train_cfg
        self._device = device
        self._seed = seed
        self._precision = precision
        self._checkpoint_path = checkpoint_path
        self._window_rng = np.random.default_rng([seed, 2])
        self._trainer = self._new_trainer(seed)
        self._updates = 0
        self._saved_updates = 0
        self._reset_since_save = False  # the run's file holds training that reset() threw away
        self._batch_fits = False  # checked before the first step (_check_batch_fits)
        # a resumed run's weights were updated before (steps, or nudges at step 0)
        self._trained_before = False
        # Loss curves travel with the checkpoint, so a resumed run shows where it came from.
        self._loss_log: list[float] = []
        self._val_log: list[float] = []

    def _new_trainer(self, seed: int):
        from model.data import Windows
        from model.device import is_out_of_memory
        from model.train import Trainer

        windows = Windows(self._corpus.ids, self._corpus.split, self._gpt_cfg.block_size, seed)
        try:
            return Trainer(self._gpt_cfg, self._train_cfg, windows, self._device, seed,
                           self._precision)
        except (RuntimeError, MemoryError) as e:
            if not is_out_of_memory(e):
                raise
            cfg = self._gpt_cfg
            raise DeviceError(
                f"{self._device} ran out of memory building the model: use a smaller --n-layer"
                f" (now {cfg.n_layer}) or --n-embd (now {cfg.n_embd}), or a smaller --preset"
            ) from None

    @classmethod
    def open(
        cls,
        corpus: str | Path | None = None,
        *,
        encoding: str = "cl100k_base",
        preset: str = "cpu",
        device: str = "auto",
        seed: int = 0,
        overrides: dict | None = None,
        on_progress: Callable[[str, float], None] | None = None,
        checkpoint: str | Path | None = None,
        precision: str = "auto",
    ) -> Session:
        """Tokenize (or load cached ids of) a corpus and build a fresh model.

        Args:
            corpus: file, folder, .jsonl, .parquet, "-" for stdin, or None for the bundled sample.
            encoding: tiktoken encoding name or path to a .tiktoken file.
            preset: tiny, cpu, gpu or gpt2 (model.config.PRESETS).
            device: "auto", "cpu", "cuda" or "mps".
            seed: makes CPU runs repeat exactly.
            overrides: GPTConfig/TrainConfig fields to change, e.g. {"block_size": 32}.
            on_progress: called with (what, fraction 0..1) while slow work runs.
            checkpoint: where save() writes by default; None means the user data folder,
                runs/<corpus>-<preset>.safetensors.
            precision: "auto", "fp32" or "bf16" for training's big matmuls; auto is bf16 on
                CUDA and on CPUs with bf16 dot products (model.device.training_dtype).

        Returns:
            A ready session at step 0.
        """
        from model.config import build_config
        from model.corpus import open_corpus
        from model.device import resolve_device, training_dtype
        from model.vocab import load_encoding

        if seed < 0:
            raise ConfigError(f"seed must be 0 or more, got {seed}")  # numpy's generators say so
        torch_device = resolve_device(device)
        training_dtype(torch_device, precision)  # a bad name fails before the slow work
        enc = load_encoding(encoding)
        encoding = enc.name  # a path's file was checked: the run is known by the name
        gpt_cfg, train_cfg = build_config(preset, enc.n_vocab, overrides)
        opened = open_corpus(corpus, enc, encoding, on_progress)
        opened.check_fits(gpt_cfg.block_size)
        if on_progress is not None:
            on_progress("building the model", 0.0)
        path = Path(checkpoint).expanduser() if checkpoint is not None else (
            default_checkpoint_path(opened.name, preset))
        return cls(enc=enc, corpus=opened, encoding=encoding, preset=preset, gpt_cfg=gpt_cfg,
                   train_cfg=train_cfg, device=torch_device, seed=seed, checkpoint_path=path,
                   precision=precision)

    @classmethod
    def load(
        cls,
        checkpoint: str | Path,
        *,
        corpus: str | Path | None = None,
        device: str = "auto",
        on_progress: Callable[[str, float], None] | None = None,
        expect: dict | None = None,
        corpus_optional: bool = False,
        precision: str = "auto",
        encoding: str | None = None,
    ) -> Session:
        """Resume a saved run with its own config; corpus defaults to the one it was trained on.

        A nanoGPT-style ckpt.pt (read with torch.load(weights_only=True), never unpickled
        freely) loads too, as a gpt2-encoding model without optimizer state.

        Args:
            checkpoint: the .safetensors (or nanoGPT .pt) file.
            corpus: train and probe on this source instead of the saved one.
            device: "auto", "cpu", "cuda" or "mps".
            on_progress: called with (what, fraction 0..1) while slow work runs.
            expect: settings the user asked for ("encoding", "preset" or GPTConfig/TrainConfig
                fields); one that differs from the checkpoint's is a CheckpointError naming it.
            corpus_optional: for predicting and sampling only: unless corpus is given, the
                bundled sample stands in for the training corpus, which is not read, since
                nothing will train on it; a given corpus that cannot be read is replaced too.
            precision: as in Session.open; not saved with the run.
            encoding: a path to the run's encoding file (NAME.tiktoken), for one that is not
                where a name is looked up (model.vocab); another encoding is refused.
        """
        from model.resume import resume

        return resume(cls, Path(checkpoint), corpus=corpus, device=device,
                      on_progress=on_progress, expect=expect or {},
                      corpus_optional=corpus_optional, precision=precision,
                      encoding_file=encoding)

    # -- facts ---------------------------------------------------------------
    def info(self) -> SessionInfo:
        from model.train import lr_at

        step = self._trainer.step
        return SessionInfo(
            corpus_name=self._corpus.name, n_tokens=self.n_tokens, encoding=self._encoding,
            vocab_size=self._gpt_cfg.vocab_size, preset=self._preset,
            n_params=self._trainer.model.num_params(), device=str(self._device),
            block_size=self.block_size, batch_size=self._train_cfg.batch_size,
            step=step, checkpoint_path=str(self._checkpoint_path),
            precision="fp32" if self._trainer.low_dtype is None else "bf16",
            train_tokens=self._corpus.split,
            lr=lr_at(step - 1, self._train_cfg) if step > 0 else None)

    @property
    def warnings(self) -> tuple[str, ...]:
        """One line per thing the corpus reader fixed or skipped (bad UTF-8, broken lines)."""
        return self._corpus.warnings

    @property
    def slow_warning(self) -> str | None:
        """A line when the model is too big to train live on a CPU, else None."""
        from model.config import cpu_slowness

        if self._device.type != "cpu":
            return None
        return cpu_slowness(self._gpt_cfg, self._train_cfg, self._preset)

    @property
    def n_tokens(self) -> int:
        """Tokens in the whole corpus (train and validation splits together)."""
        return self._corpus.n_tokens

    @property
    def block_size(self) -> int:
        """The longest context the model accepts."""
        return self._gpt_cfg.block_size

    @property
    def vocab_size(self) -> int:
        """Real vocabulary size: the number of probabilities the model outputs."""
        return self._gpt_cfg.vocab_size

    @property
    def probes_beside_steps(self) -> bool:
        """Whether probe() may run in another thread while a step, validation or nudge runs.

        It waits only while the weights change, so a new window's bars need not wait for a
        whole step. Not with dropout, where the probe's switch to eval mode would reach the
        step's forward pass, and not on MPS, which is not safe across threads.
        """
        return self._gpt_cfg.dropout == 0 and self._device.type in ("cpu", "cuda")

    @property
    def step_count(self) -> int:
        """Batch updates done so far (nudges are not counted)."""
        return self._trainer.step

    def token_ids(self, start: int, stop: int) -> list[int]:
        """Corpus ids [start, stop), clipped to the corpus."""
        start, stop = max(0, start), min(stop, self.n_tokens)
        return [int(i) for i in self._corpus.ids[start:stop]] if start < stop else []

    def chunks(self, start: int, stop: int) -> list[Chunk]:
        """Display chunks for corpus tokens [start, stop)."""
        from model.vocab import chunks_for

        return chunks_for(self._enc, self.token_ids(start, stop))

    def chunks_of_text(self, text: str) -> list[Chunk]:
        """Display chunks of any text, tokenized with this session's encoding."""
        from model.vocab import chunks_for

        return chunks_for(self._enc, self.encode(text))

    def random_window(self, length: int) -> int:
        """A random start such that the window and its label fit in the corpus."""
        if not 1 <= length < self.n_tokens:
            raise ConfigError(
                f"a window holds 1 to {self.n_tokens - 1:,} tokens of context, not {length:,}")
        return int(self._window_rng.integers(0, self.n_tokens - length))

    # -- updates -------------------------------------------------------------
    def step(self) -> StepReport:
        """One batch update on random windows of the training split."""
        self._check_batch_fits()
        with self._out_of_memory("a training step"):
            loss, lr, tokens_per_s = self._trainer.train_step()
        self._updates += 1
        self._loss_log.append(loss)
        del self._loss_log[:-LOSS_HISTORY]
        return StepReport(step=self._trainer.step, loss=loss, lr=lr, tokens_per_s=tokens_per_s)

    def train(
        self,
        steps: int,
        on_step: Callable[[StepReport], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        eval_every: int = 0,
    ) -> StepReport | None:
        """Run up to `steps` batch updates, checking should_stop between steps.

        With eval_every > 0, every eval_every-th report (and the last) carries val_loss.
        """
        report = None
        for i in range(steps):
            if should_stop is not None and should_stop():
                break
            report = self.step()
            if eval_every > 0 and (report.step % eval_every == 0 or i == steps - 1):
                report = StepReport(report.step, report.loss, report.lr, report.tokens_per_s,
                                    val_loss=self.evaluate())
            if on_step is not None:
                on_step(report)
        return report

    def nudge(self, start: int, length: int) -> NudgeReport:
        """One update on this one window only; returns the label's probability before and after.

        A plain gradient step on the label's loss at the last position, sized to raise its
        log-probability by about 0.3 nats (e.g. 3% -> 4%); AdamW's moments are left alone.
        """
        context, label = self._window(start, length)
        if label is None:
            raise ConfigError("this window ends the corpus: there is no label to nudge toward")
        if start + length >= self._corpus.split:  # the validation loss would learn it
            raise ConfigError(f"this window's label, token {start + length:,}, is held out for"
                              f" validation (tokens {self._corpus.split:,} on), which training"
                              " never sees: nudge a window before it")
        with self._out_of_memory("a nudge"):
            before, after, loss = self._trainer.nudge(context, label)
        self._updates += 1
        return NudgeReport(step=self._trainer.step, label=self._token_prob(label, after),
                           before=before, after=after, loss=loss)

    def prepare_training(self) -> None:
        """Build what the first training step needs but a probe does not (AdamW).

        Making AdamW imports torch._dynamo, about 1.5 s on a 2-core CPU; the app calls this
        after its first probe is on screen, so neither that probe nor the first step waits.
        """
        _ = self._trainer.optimizer

    def reset(self, seed: int | None = None) -> None:
        """Fresh random weights and optimizer, step 0."""
        if seed is not None:
            self._seed = seed
        self._trainer = self._new_trainer(self._seed)
        # These weights are on no disk yet: dirty, so a quit saves them and the next launch
        # starts from the reset instead of resuming what was thrown away.
        self._updates, self._saved_updates = 0, -1
        self._reset_since_save = True
        self._trained_before = False
        self._loss_log.clear()
        self._val_log.clear()

    # -- looking -------------------------------------------------------------
    def probe(self, start: int, length: int, k: int = 10) -> Probe:
        """Next-token distribution for a corpus window; the label is the token after it."""
        context, label = self._window(start, length)
        return self.probe_ids(context, label, k)

    def probe_ids(self, context_ids: list[int], label_id: int | None = None, k: int = 10) -> Probe:
        """Next-token distribution after any ids; only the last block_size are used."""
        from model.sample import describe, next_token_probs

        context = self._check_ids(list(context_ids)[-self.block_size:])
        if label_id is not None:
            self._check_ids([label_id])
        trainer = self._trainer  # reset() may swap it meanwhile (see probes_beside_steps)
        with self._out_of_memory("a probe", makes_grads=False), trainer.weights_lock:
            probs = next_token_probs(trainer.model, context, self._device)
        _check_finite(probs)
        d = describe(probs, label_id, k)
        label = None if label_id is None else self._token_prob(label_id, d.label_prob)
        return Probe(
            context_ids=tuple(context),
            top=tuple(self._token_prob(i, p) for i, p in zip(d.top_ids, d.top_probs)),
            label=label, label_rank=d.label_rank, entropy=d.entropy, loss=d.loss,
            vocab_size=self.vocab_size)

    def surprise(self, start: int, length: int) -> list[float]:
        """Loss (nats) at every position of a window: how surprised the model is by each token.

        Value i is the loss of predicting token start + i + 1 from tokens start..start + i,
        so the last value is the label's loss; a window that ends the corpus has one less.
        Windows longer than block_size are scored block by block.
        """
        import torch

        ids = self.token_ids(start, start + length + 1)
        if len(ids) < 2:
            return []
        seq = torch.tensor(ids, dtype=torch.long, device=self._device)  # (L+1,)
        model = self._trainer.model
        model.eval()
        losses: list[float] = []
        with torch.no_grad():
            for lo in range(0, len(ids) - 1, self.block_size):
                hi = min(lo + self.block_size, len(ids) - 1)
                idx, targets = seq[lo:hi].unsqueeze(0), seq[lo + 1:hi + 1].unsqueeze(0)  # (1, T)
                losses.extend(model.position_losses(idx, targets)[0].tolist())
        return losses

    def evaluate(self, batches: int = 4) -> float:
        """Mean loss on the validation split."""
        with self._out_of_memory("validation"):
            loss = self._trainer.evaluate(batches)
        self._val_log.append(loss)
        del self._val_log[:-LOSS_HISTORY]
        return loss

    def loss_history(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Recent training losses (one a step) and validation losses, oldest first."""
        return tuple(self._loss_log), tuple(self._val_log)

    def sample(
        self,
        context_ids: list[int],
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        k_shown: int = 10,
    ) -> Sampled:
        """Draw one next token; greedy when temperature is 0.

        Probabilities reported are the model's own (temperature 1, no filtering); top lists
        the most likely of the candidates that temperature, top_k and top_p left in play.
        Ids that are no token (cl100k_base has 16) are shown by probes but never drawn.
        """
        import torch

        from model.sample import check_sampling, draw, next_token_probs, sampling_probs
        from model.vocab import unused_ids

        check_sampling(temperature, top_k, top_p)
        context = self._check_ids(list(context_ids)[-self.block_size:] or [self._enc.eot_token])
        with self._out_of_memory("sampling"):
            probs = next_token_probs(self._trainer.model, context, self._device)  # (V,)
        _check_finite(probs)
        in_play = sampling_probs(probs, temperature, top_k, top_p, unused_ids(self._enc))  # (V,)
        token = draw(in_play, seed)
        shown = torch.where(in_play > 0, probs, torch.full_like(probs, -1.0))
        top = torch.topk(shown, min(k_shown, int((in_play > 0).sum().item())))
        candidates = tuple(self._token_prob(i, p)
                           for i, p in zip(top.indices.tolist(), top.values.tolist()))
        return Sampled(token=self._token_prob(token, probs[token].item()), top=candidates,
                       temperature=temperature)

    def generate(
        self,
        context_ids: list[int],
        max_tokens: int,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
    ) -> list[Sampled]:
        """Sample max_tokens tokens one after another; the same seed gives the same text."""
        return list(self.generate_each(context_ids, max_tokens, temperature=temperature,
                                       top_k=top_k, top_p=top_p, seed=seed))

    def generate_each(
        self,
        context_ids: list[int],
        max_tokens: int,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
    ) -> Iterator[Sampled]:
        """generate, one token at a time: each is yielded as soon as it is drawn."""
        import numpy as np

        ids = list(context_ids)
        for i in range(max_tokens):
            # One seed per token, drawn from (seed, i): seed + i would make seeds 1 and 2
            # draw the same text shifted by one token.
            token_seed = (None if seed is None
                          else int(np.random.SeedSequence([seed, i]).generate_state(1)[0]))
            pick = self.sample(ids, temperature=temperature, top_k=top_k, top_p=top_p,
                               seed=token_seed)
            ids.append(pick.token.token_id)
            yield pick

    def encode(self, text: str) -> list[int]:
        """Token ids of text; "<|endoftext|>" becomes the end-of-text token."""
        return self._enc.encode(text, allowed_special="all")

    def decode(self, ids: list[int]) -> str:
        """Text of ids; bytes that do not form UTF-8 become U+FFFD, unused ids "<unused>"."""
        from model.vocab import decode_text

        return decode_text(self._enc, list(ids))

    # -- files ---------------------------------------------------------------
    def save(self, path: str | Path | None = None) -> Path:
        """Write a checkpoint atomically; path defaults to the run's checkpoint path."""
        from model import checkpoint as ckpt
        from model.config import to_json

        trainer = self._trainer
        meta = {
            "gpt_config": to_json(self._gpt_cfg), "train_config": to_json(self._train_cfg),
            "encoding": self._encoding, "step": str(trainer.step), "preset": self._preset,
            "seed": str(self._seed), "corpus_source": self._corpus.source,
            "corpus_name": self._corpus.name, "data_state": json.dumps(trainer.windows.state()),
            "loss_history": json.dumps({"train": self._loss_log, "val": self._val_log}),
            # nudges move the weights without a step: a reset keeps such a run too
            "trained": "1" if (self._trained_before or self._updates or trainer.step) else "0",
        }
        target = Path(path).expanduser() if path is not None else self._checkpoint_path
        kept = self._keep_before_reset(target)
        try:
            written = ckpt.save(target, trainer.model, trainer.optimizer_state(), meta)
        except BaseException:
            if kept is not None:
                os.replace(kept, target)  # the save wrote nothing (atomic): put the run back
            raise
        self._saved_updates = self._updates
        if target == self._checkpoint_path:
            self._reset_since_save = False
        return written

    def save_or_rescue(self) -> Path:
        """save() to the run's path; where that fails (a full disk, a folder gone), save to
        the user's runs folder or else the system's temp folder, so the training is not
        lost, and raise a CheckpointError that names both."""
        try:
            return self.save()
        except (CheckpointError, OSError) as error:
            for spare in rescue_paths(self._checkpoint_path):
                try:
                    self.save(spare)
                except (CheckpointError, OSError):
                    continue
                temporary = "" if spare.parent == runs_folder() else (
                    " (a temp folder: move it somewhere safe)")
                raise CheckpointError(f"{error}; the run was saved to {spare} instead"
                                      f"{temporary}: go on with --checkpoint {spare}") from error
            raise CheckpointError(f"{error}; nothing could be saved elsewhere either") from error

    def _keep_before_reset(self, target: Path) -> Path | None:
        """Move the run's old checkpoint aside before the first save after a reset overwrites it.

        The reset dialog promises that only unsaved training is lost; the saved run stays at
        before_reset_path(target), a name no earlier reset has taken.
        """
        if not (self._reset_since_save and target == self._checkpoint_path
                and holds_training(target)):
            return None  # an untrained run saved there is simply replaced
        kept = before_reset_path(target)
        try:
            os.replace(target, kept)
        except OSError as error:
            raise CheckpointError(f"cannot keep {target} as {kept.name} before saving over it:"
                                  f" {error.strerror or error}; save elsewhere (--checkpoint)")
        return kept

    @property
    def dirty(self) -> bool:
        """True when training (or a nudge) changed the weights since the last save."""
        return self._updates != self._saved_updates

    # -- helpers -------------------------------------------------------------
    def _restore_history(self, text: str | None) -> None:
        """Loss curves from a checkpoint; one that lacks them or mangled them starts empty."""
        try:
            saved = json.loads(text) if text else {}
            self._loss_log = [float(x) for x in saved.get("train", [])][-LOSS_HISTORY:]
            self._val_log = [float(x) for x in saved.get("val", [])][-LOSS_HISTORY:]
        except (ValueError, TypeError, AttributeError):
            self._loss_log, self._val_log = [], []

    @contextlib.contextmanager
    def _out_of_memory(self, what: str, *, makes_grads: bool = True):
        """Turn torch's out-of-memory error into a DeviceError; the model is left as it was.

        model/train.py checks the loss only after backward, so an OOM there happens before
        optimizer.step: the weights and AdamW moments are untouched, only grads are dropped.
        Work that makes no gradients (a probe, which may run beside a step) leaves them be.
        """
        import torch

        from model.device import is_out_of_memory

        try:
            yield
        except (RuntimeError, MemoryError) as e:  # torch.OutOfMemoryError is a RuntimeError
            if not is_out_of_memory(e):
                raise
            if makes_grads:
                self._trainer.model.zero_grad(set_to_none=True)
            if self._device.type == "cuda":
                torch.cuda.empty_cache()
            raise DeviceError(
                f"{self._device} ran out of memory during {what}; the model is kept: use a smaller"
                f" --batch-size (now {self._train_cfg.batch_size}) or --block-size"
                f" (now {self.block_size})") from None

    def _check_batch_fits(self) -> None:
        """Refuse, once, a batch that cannot fit (model.device.check_batch_fits)."""
        if self._batch_fits:
            return
        from model.device import check_batch_fits

        check_batch_fits(self._gpt_cfg, self._train_cfg.batch_size, self._device)
        self._batch_fits = True

    def _window(self, start: int, length: int) -> tuple[list[int], int | None]:
        if start < 0 or length < 1 or start + length > self.n_tokens:
            raise ConfigError(
                f"window [{start}, {start + length}) is outside the corpus of {self.n_tokens}")
        ids = self.token_ids(start, start + length + 1)
        context = ids[:length][-self.block_size:]
        return context, (ids[length] if len(ids) > length else None)

    def _check_ids(self, ids: list[int]) -> list[int]:
        for i in ids:
            if not 0 <= i < self.vocab_size:
                raise ConfigError(
                    f"token id {i} is outside the vocabulary 0..{self.vocab_size - 1}")
        return ids

    def _token_prob(self, token_id: int, prob: float) -> TokenProb:
        from model.vocab import token_text

        return TokenProb(token_id=token_id, text=token_text(self._enc, token_id), prob=prob)
