"""Plain, frozen records that cross from model/ to the UI: ids, strings and floats only."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Chunk:
    """One token as shown to a person.

    text has whitespace made visible (space, tab, newline glyphs); a token holding only part
    of a UTF-8 character shows its bytes, like "<0xEC>", and has is_partial_bytes set.
    """

    token_id: int
    text: str
    is_partial_bytes: bool = False


@dataclass(frozen=True)
class TokenProb:
    """A vocabulary entry with the probability the model gave it."""

    token_id: int
    text: str
    prob: float


@dataclass(frozen=True)
class Probe:
    """What the network outputs for one context window.

    top holds the k most likely next tokens, most likely first. label is the true next
    token (None when the window ends the corpus); label_rank is 1-based among all ids.
    """

    context_ids: tuple[int, ...]
    top: tuple[TokenProb, ...]
    label: TokenProb | None
    label_rank: int | None
    entropy: float
    loss: float | None
    vocab_size: int


@dataclass(frozen=True)
class StepReport:
    """One batch update: the training loss and how fast it ran."""

    step: int
    loss: float
    lr: float
    tokens_per_s: float
    val_loss: float | None = None


@dataclass(frozen=True)
class NudgeReport:
    """One update on one window only: the label's probability before and after it."""

    step: int
    label: TokenProb
    before: float
    after: float
    loss: float


@dataclass(frozen=True)
class Sampled:
    """One sampled next token, the probability it had, and the candidates it was drawn from."""

    token: TokenProb
    top: tuple[TokenProb, ...]
    temperature: float


@dataclass(frozen=True)
class SessionInfo:
    """What the header shows: corpus, tokenizer, model size, device, progress."""

    corpus_name: str
    n_tokens: int
    encoding: str
    vocab_size: int
    preset: str
    n_params: int
    device: str
    block_size: int
    batch_size: int
    step: int
    checkpoint_path: str | None
    precision: str = "fp32"  # of training's big matmuls: "fp32" or "bf16"
    # ids[:train_tokens] are trained on, the rest held out for validation; None: not known
    train_tokens: int | None = None
    lr: float | None = None  # the last step's learning rate (the schedule's); None at step 0
