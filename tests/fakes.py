"""FakeSession: model.api.Session's methods with canned, consistent plain data and no torch."""

from __future__ import annotations

import json
import math
import random
import threading
import time
import zlib
from pathlib import Path

from model.api import (
    Chunk,
    NudgeReport,
    Probe,
    Sampled,
    SessionInfo,
    StepReport,
    TokenProb,
    TrainingDiverged,
)

# Real cl100k_base ids and display texts (whitespace glyphs, partial-byte chunks).
TOKENS: tuple[tuple, ...] = (
    (791, 'The'), (82727, '·Keeper'), (315, '·of'), (279, '·the'), (26769, '·Grey'),
    (5236, '·Point'), (8828, '·Light'), (271, '⏎⏎'), (1966, 'On'), (279, '·the'),
    (3117, '·far'), (842, '·end'), (315, '·of'), (264, '·a'), (1317, '·long'), (11, ','),
    (56617, '·rocky'), (57087, '·spit'), (315, '·of'), (4363, '·land'), (1070, '·there'),
    (574, '·was'), (264, '·a'), (326, '·l'), (59009, 'ighthouse'), (11, ','), (323, '·and'),
    (304, '·in'), (279, '·the'), (326, '·l'), (59009, 'ighthouse'), (1070, '·there'),
    (12439, '·lived'), (264, '·a'), (893, '·man'), (7086, '·named'), (32856, '·Tob'),
    (258, 'in'), (67251, '·Hale'), (13, '.'), (1283, '·He'), (574, '·was'), (539, '·not'),
    (3995, '·young'), (323, '·and'), (568, '·he'), (574, '·was'), (539, '·not'),
    (2362, '·old'), (13, '.'), (1283, '·He'), (1047, '·had'), (264, '·a'), (20366, '·grey'),
    (48788, '·beard'), (11, ','), (264, '·a'), (6437, '·blue'), (23724, '·coat'),
    (449, '·with'), (832, '·one'), (3215, '·button'), (7554, '·missing'), (11, ','),
    (323, '·and'), (264, '·a'), (2678, '·small'), (14198, '·brown'), (8415, '·cat'),
    (889, '·who'), (46498, '·slept'), (389, '·on'), (279, '·the'), (8369, '·warm'),
    (27302, '·stones'), (555, '·by'), (279, '·the'), (45115, '·stove'), (382, '.⏎⏎'),
    (11769, 'Every'), (11714, '·evening'), (11, ','), (1120, '·just'), (1603, '·before'),
    (279, '·the'), (7160, '·sun'), (4024, '·went'), (1523, '·down'), (11, ','),
    (32856, '·Tob'), (258, 'in'), (45519, '·climbed'), (279, '·the'), (832, '·one'),
    (7895, '·hundred'), (323, '·and'), (30335, '·twelve'), (7504, '·steps'), (311, '·to'),
    (279, '·the'), (29062, '·lamp'), (3130, '·room'), (13, '.'), (1283, '·He'),
    (31094, '·counted'), (1124, '·them'), (704, '·out'), (17813, '·loud'), (11, ','),
    (279, '·the'), (1648, '·way'), (568, '·he'), (1047, '·had'), (2884, '·done'),
    (369, '·for'), (17510, '·twenty'), (1667, '·years'), (13, '.'), (3861, '·One'), (11, ','),
    (1403, '·two'), (11, ','), (2380, '·three'), (11, ','), (682, '·all'), (220, '·'),
    (1283, '·He'), (6267, '·wrote'), (510, '·['), (16, '1'), (60, ']'), (304, '·in'),
    (279, '·the'), (1515, '·log'), (25, ':'), (11410, '·<0xF0><0x9F>', True),
    (99, '<0xA6>', True), (250, '<0x9C>', True), (32122, '·flew'), (555, '·by'), (627, '.⏎'),
    (7604, '⇥def'), (282, '·f'), (4019, '():⏎'), (262, '···'), (471, '·return'), (220, '·'),
    (2983, '42'), (198, '⏎'),
)
VOCAB_SIZE = 100_277
TEXT_OF = {tok[0]: tok[1] for tok in TOKENS}
CANDIDATES = tuple(sorted(TEXT_OF))


def _hash(*parts: object) -> int:
    return zlib.crc32(repr(parts).encode())


class FakeSession:
    """Behaves like a tiny model that learns: steps lower the loss, nudges raise p(label).

    The corpus is TOKENS repeated to n_tokens, so a 25M-token corpus costs nothing.
    """

    def __init__(
        self,
        *,
        n_tokens: int = 2_000,
        block_size: int = 64,
        checkpoint_dir: Path | None = None,
        diverge_at: int | None = None,
    ) -> None:
        self._n_tokens = n_tokens
        self._block_size = block_size
        self._dir = checkpoint_dir or Path("/tmp")
        self._diverge_at = diverge_at
        self._step = 0
        self._dirty = False
        self.history: tuple[tuple[float, ...], tuple[float, ...]] = ((), ())
        self._bonus: dict[tuple[int, ...], float] = {}
        self._rng = random.Random(0)
        self._labels: dict[tuple[int, ...], int] = {}
        self.saves: list[Path] = []
        self.calls: list[str] = []
        self.prepared = False
        # Tests hold a step in progress with these (a step waits while gate is clear).
        self.gate = threading.Event()
        self.gate.set()
        self.in_step = threading.Event()
        self.bug: Exception | None = None  # raised by the next step, as a defect would be

    # -- facts ---------------------------------------------------------------
    def info(self) -> SessionInfo:
        return SessionInfo(
            corpus_name="sample_data", n_tokens=self._n_tokens, encoding="cl100k_base",
            vocab_size=VOCAB_SIZE, preset="tiny", n_params=13_600_000, device="cpu",
            block_size=self._block_size, batch_size=16, step=self._step,
            checkpoint_path=str(self._dir / "fake.nnio"),
            train_tokens=self._n_tokens - self._n_tokens // 10,
        )

    @property
    def n_tokens(self) -> int:
        return self._n_tokens

    @property
    def block_size(self) -> int:
        return self._block_size

    @property
    def dirty(self) -> bool:
        return self._dirty

    @property
    def probes_beside_steps(self) -> bool:
        return True

    def token_ids(self, start: int, stop: int) -> list[int]:
        return [TOKENS[i % len(TOKENS)][0] for i in range(start, min(stop, self._n_tokens))]

    def chunks(self, start: int, stop: int) -> list[Chunk]:
        self.calls.append(f"chunks {start} {stop}")
        return [Chunk(*TOKENS[i % len(TOKENS)]) for i in range(start, min(stop, self._n_tokens))]

    def chunks_of_text(self, text: str) -> list[Chunk]:
        return [Chunk(0, text)]

    def random_window(self, length: int) -> int:
        return self._rng.randrange(0, self._n_tokens - length - 1)

    # -- updates -------------------------------------------------------------
    def step(self) -> StepReport:
        self.in_step.set()
        self.gate.wait(5)
        # A real step takes a while and releases the GIL; a busy loop here would starve the UI.
        time.sleep(0.002)
        self.in_step.clear()
        if self.bug is not None:
            raise self.bug
        if self._diverge_at is not None and self._step + 1 >= self._diverge_at:
            raise TrainingDiverged(f"loss became nan at step {self._step + 1}; kept last good weights")
        self._step += 1
        self._dirty = True
        s = self._step
        loss = 3.0 + 8.5 * math.exp(-s / 120) + 0.05 * math.sin(s)
        return StepReport(step=s, loss=loss, lr=6e-4, tokens_per_s=1234.0)

    def train(self, steps, on_step=None, should_stop=None, eval_every=0):
        report = None
        for _ in range(steps):
            if should_stop is not None and should_stop():
                break
            report = self.step()
            if on_step is not None:
                on_step(report)
        return report

    def nudge(self, start: int, length: int) -> NudgeReport:
        context = tuple(self.token_ids(start, start + length))
        label = self.token_ids(start + length, start + length + 1)[0]
        before = self._label_prob(context, label)
        self._bonus[context] = self._bonus.get(context, 0.0) + 0.35
        after = self._label_prob(context, label)
        self._dirty = True
        return NudgeReport(step=self._step, label=TokenProb(label, TEXT_OF[label], after),
                           before=before, after=after, loss=-math.log(before))

    def prepare_training(self) -> None:
        self.prepared = True

    def reset(self, seed: int | None = None) -> None:
        self._step, self._bonus, self._dirty = 0, {}, True  # as Session: a quit saves the reset

    # -- looking -------------------------------------------------------------
    def _label_prob(self, context: tuple[int, ...], label: int) -> float:
        offset = (_hash(context, label) % 1000) / 1000
        learned = 6.0 * (1 - math.exp(-self._step / 300))
        z = -4.0 + offset + learned + self._bonus.get(context, 0.0)
        return 1 / (1 + math.exp(-z))

    def _distribution(self, context: tuple[int, ...], label: int) -> list[tuple[int, float]]:
        """(id, prob) for the fake's candidate tokens, most likely first; the rest share a tail."""
        p_label = self._label_prob(context, label)
        others = sorted((c for c in CANDIDATES if c != label), key=lambda c: _hash(context, c))
        weights = [0.7 ** i for i in range(len(others))]
        mass = 0.75 * (1 - p_label)
        probs = [(c, mass * w / sum(weights)) for c, w in zip(others, weights)]
        return sorted(probs + [(label, p_label)], key=lambda cp: -cp[1])

    def _tail(self, context: tuple[int, ...], label: int) -> float:
        return 0.25 * (1 - self._label_prob(context, label)) / (VOCAB_SIZE - len(CANDIDATES))

    def probe(self, start: int, length: int, k: int = 10) -> Probe:
        ids = self.token_ids(start, start + length + 1)
        if len(ids) > length:
            self._labels[tuple(ids[:length])] = ids[length]
        return self.probe_ids(ids[:length], ids[length] if len(ids) > length else None, k)

    def probe_ids(self, context_ids: list[int], label_id: int | None = None, k: int = 10) -> Probe:
        context = tuple(context_ids)
        label = label_id if label_id is not None else CANDIDATES[_hash(context) % len(CANDIDATES)]
        dist = self._distribution(context, label)
        tail = self._tail(context, label)
        n_tail = VOCAB_SIZE - len(dist)
        entropy = -sum(p * math.log(p) for _, p in dist) - n_tail * tail * math.log(tail)
        top = tuple(TokenProb(c, TEXT_OF[c], p) for c, p in dist[:k])
        rank = 1 + next(i for i, (c, _) in enumerate(dist) if c == label)
        p_label = dict(dist)[label]
        return Probe(
            context_ids=context, top=top,
            label=TokenProb(label, TEXT_OF[label], p_label) if label_id is not None else None,
            label_rank=rank if label_id is not None else None, entropy=entropy,
            loss=-math.log(p_label) if label_id is not None else None, vocab_size=VOCAB_SIZE,
        )

    def surprise(self, start: int, length: int) -> list[float]:
        return [self.probe(start, i).loss or 0.0 for i in range(1, length + 1)]

    def evaluate(self, batches: int = 4) -> float:
        return 3.15 + 8.5 * math.exp(-self._step / 120)

    def loss_history(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """What a resumed checkpoint carries; empty for a fresh run."""
        return self.history

    def sample(self, context_ids, *, temperature=1.0, top_k=None, top_p=None, seed=None,
               k_shown=10) -> Sampled:
        probe = self.probe_ids(context_ids, self._labels.get(tuple(context_ids)), k_shown)
        rng = random.Random(seed if seed is not None else _hash(tuple(context_ids), self._step))
        token = rng.choices(probe.top, weights=[t.prob for t in probe.top])[0]
        return Sampled(token=token, top=probe.top, temperature=temperature)

    def generate(self, context_ids, max_tokens, **kwargs) -> list[Sampled]:
        out, ids = [], list(context_ids)
        for _ in range(max_tokens):
            out.append(self.sample(ids, **kwargs))
            ids.append(out[-1].token.token_id)
        return out

    def encode(self, text: str) -> list[int]:
        return [tid for tid, txt in ((t[0], t[1]) for t in TOKENS) if txt in text][:8]

    def decode(self, ids: list[int]) -> str:
        return "".join(TEXT_OF.get(i, "?") for i in ids)

    # -- files ---------------------------------------------------------------
    def save_or_rescue(self) -> Path:
        return self.save()

    def save(self, path: str | Path | None = None) -> Path:
        target = Path(path) if path is not None else self._dir / "fake.nnio"
        target.write_text(json.dumps({"step": self._step}))
        self.saves.append(target)
        self._dirty = False
        return target


def slow_opener(on_progress, say):
    """A model.remote Opener that reports progress for a minute and never opens.

    It lives here, not in a test module, so that the child process can import it by name.
    """
    for i in range(1200):
        on_progress("waiting", i / 1200)
        time.sleep(0.05)
    raise AssertionError("not reached: the parent gives up first")
