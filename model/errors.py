"""User-facing errors: each carries one line that says what is wrong and what to do."""


def count(n: int, noun: str) -> str:
    """'1 token', '2 tokens': a count and its noun, plural unless the count is one."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


class NnioError(Exception):
    """Base class; str(error) is the one-line message shown to the user."""


class CorpusError(NnioError):
    """The corpus cannot be read or is unusable (missing, binary, empty, too short)."""


class EncodingError(NnioError):
    """The tokenizer encoding is unknown or not available offline."""


class CheckpointError(NnioError):
    """A checkpoint is missing, corrupt, unsafe, or does not match."""


class DamagedCheckpoint(CheckpointError):
    """The file is there but cannot be read as a checkpoint: damaged, cut short, or another
    kind of file. Moving it aside (or another path) is the way on."""


class DeviceError(NnioError):
    """The requested device is absent, or ran out of memory."""


class ConfigError(NnioError):
    """A setting (context length, batch size, learning rate...) is out of range."""


class TrainingDiverged(NnioError):
    """The loss became NaN or infinite; the last good weights were kept."""
