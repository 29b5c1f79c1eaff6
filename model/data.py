"""Training windows: random (idx, targets) batches cut from a corpus of token ids."""

from __future__ import annotations

import numpy as np
import torch

from model.errors import CorpusError, count


class Windows:
    """Draws random windows from the train or validation split of a uint32 id array.

    ids may be a memmap: only the sampled windows are read, so a large corpus costs no RAM.
    """

    def __init__(self, ids: np.ndarray, split: int, block_size: int, seed: int = 0):
        """Args:
        ids: the whole corpus as token ids; ids[:split] trains, ids[split:] validates.
        split: index of the first validation token.
        block_size: window length (T).
        seed: makes the sequence of batches repeat exactly.
        """
        self.ids = ids
        self.split = split
        self.block_size = block_size
        if split < block_size + 1:
            raise CorpusError(
                f"the training split has {count(split, 'token')} but a window needs"
                f" {block_size + 1}; "
                "use a longer corpus or a smaller --block-size")
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    def _bounds(self, part: str) -> tuple[int, int]:
        if part == "train":
            return 0, self.split
        lo, hi = self.split, len(self.ids)
        if hi - lo < self.block_size + 1:
            # a corpus too small for a validation window is validated on the training split
            return 0, self.split
        return lo, hi

    def batch(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch of random training windows; every position's target is the following token.

        Args:
            batch_size: windows per batch (B).

        Returns:
            (idx, targets), both int64 (B, T).
        """
        return self._cut(self.rng, batch_size, "train")

    def val_batches(
        self, n_batches: int, batch_size: int
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The same validation windows on every call, so successive val losses compare fairly.

        Args:
            n_batches: how many batches.
            batch_size: windows per batch.

        Returns:
            A list of (idx, targets) pairs, each (B, T).
        """
        # its own generator: evaluating must not change which training batches come next
        rng = np.random.default_rng([self.seed, 1])
        return [self._cut(rng, batch_size, "val") for _ in range(n_batches)]

    def _cut(self, rng: np.random.Generator, batch_size: int, part: str):
        lo, hi = self._bounds(part)
        T = self.block_size
        starts = rng.integers(lo, hi - T, size=batch_size)  # (B,)
        rows = np.stack([np.asarray(self.ids[s:s + T + 1], dtype=np.int64) for s in starts])
        chunk = torch.from_numpy(rows)  # (B, T+1)
        return chunk[:, :-1].contiguous(), chunk[:, 1:].contiguous()  # (B, T), (B, T)

    def state(self) -> dict:
        """The sampler's RNG state, so a resumed run draws the same next batches."""
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        """Restore a state returned by state()."""
        self.rng.bit_generator.state = state
