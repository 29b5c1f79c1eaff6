"""The facade the UI and scripts use: plain data in, plain data out, no tensors cross it.

Importing this module is cheap (torch loads on first use), so the app can draw its first
frame before torch is ready.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from model.errors import (
    CheckpointError,
    ConfigError,
    CorpusError,
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
from model.tokens import TokenizedSource, tokenize_source

__all__ = [
    "CheckpointError", "ConfigError", "CorpusError", "DeviceError", "EncodingError",
    "NnioError", "TrainingDiverged", "Chunk", "NudgeReport", "Probe", "Sampled",
    "SessionInfo", "StepReport", "TokenProb", "Session", "TokenizedSource", "tokenize_source", "PRESETS", "ENCODINGS",
]

# Names only, so the CLI can list choices without importing torch.
PRESETS = ("tiny", "cpu", "gpu", "gpt2")
ENCODINGS = ("cl100k_base", "o200k_base", "p50k_base", "r50k_base", "gpt2")


class Session:
    """A model, its optimizer, a corpus and a tokenizer: everything one training run needs.

    A window is a slice of the corpus: tokens [start, start + length) are the context and
    the token at start + length is the label. All methods run on the calling thread; the
    app calls them from one worker thread only.
    """

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
    ) -> Session:
        """Tokenize (or load cached ids of) a corpus and build a fresh model.

        Args:
            corpus: file, folder, .jsonl, .parquet, "-" for stdin, or None for the bundled sample.
            encoding: tiktoken encoding name or path to a .tiktoken file.
            preset: one of PRESETS.
            device: "auto", "cpu", "cuda" or "mps".
            seed: makes CPU runs repeat exactly.
            overrides: GPTConfig/TrainConfig fields to change, e.g. {"block_size": 32}.
            on_progress: called with (what, fraction 0..1) while slow work runs.

        Returns:
            A ready session at step 0.
        """
        raise NotImplementedError

    @classmethod
    def load(
        cls,
        checkpoint: str | Path,
        *,
        corpus: str | Path | None = None,
        device: str = "auto",
        on_progress: Callable[[str, float], None] | None = None,
    ) -> Session:
        """Resume a saved run with its own config; corpus defaults to the one it was trained on."""
        raise NotImplementedError

    # -- facts ---------------------------------------------------------------
    def info(self) -> SessionInfo:
        raise NotImplementedError

    @property
    def n_tokens(self) -> int:
        """Tokens in the whole corpus (train and validation splits together)."""
        raise NotImplementedError

    @property
    def block_size(self) -> int:
        """The longest context the model accepts."""
        raise NotImplementedError

    def token_ids(self, start: int, stop: int) -> list[int]:
        raise NotImplementedError

    def chunks(self, start: int, stop: int) -> list[Chunk]:
        """Display chunks for corpus tokens [start, stop)."""
        raise NotImplementedError

    def chunks_of_text(self, text: str) -> list[Chunk]:
        raise NotImplementedError

    def random_window(self, length: int) -> int:
        """A random start such that the window and its label fit in the corpus."""
        raise NotImplementedError

    # -- updates -------------------------------------------------------------
    def step(self) -> StepReport:
        """One batch update on random windows of the training split."""
        raise NotImplementedError

    def train(
        self,
        steps: int,
        on_step: Callable[[StepReport], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        eval_every: int = 0,
    ) -> StepReport | None:
        """Run up to `steps` batch updates, checking should_stop between steps."""
        raise NotImplementedError

    def nudge(self, start: int, length: int) -> NudgeReport:
        """One update on this one window only; returns the label's probability before and after."""
        raise NotImplementedError

    def reset(self, seed: int | None = None) -> None:
        """Fresh random weights and optimizer, step 0."""
        raise NotImplementedError

    # -- looking -------------------------------------------------------------
    def probe(self, start: int, length: int, k: int = 10) -> Probe:
        """Next-token distribution for a corpus window; the label is the token after it."""
        raise NotImplementedError

    def probe_ids(self, context_ids: list[int], label_id: int | None = None, k: int = 10) -> Probe:
        raise NotImplementedError

    def surprise(self, start: int, length: int) -> list[float]:
        """Loss (nats) at every position of a window: how surprised the model is by each token."""
        raise NotImplementedError

    def evaluate(self, batches: int = 4) -> float:
        """Mean loss on the validation split."""
        raise NotImplementedError

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
        """Draw one next token; greedy when temperature is 0."""
        raise NotImplementedError

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
        raise NotImplementedError

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def decode(self, ids: list[int]) -> str:
        raise NotImplementedError

    # -- files ---------------------------------------------------------------
    def save(self, path: str | Path | None = None) -> Path:
        """Write a checkpoint atomically; path defaults to the run's checkpoint path."""
        raise NotImplementedError

    @property
    def dirty(self) -> bool:
        """True when training advanced since the last save."""
        raise NotImplementedError
