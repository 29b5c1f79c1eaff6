"""A tokenized source for display and counting, without a model (the `tokenize` command)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from model.records import Chunk


class TokenizedSource:
    """Token ids of a corpus with their display chunks; no torch involved."""

    def __init__(self, corpus, enc) -> None:
        self._corpus = corpus
        self._enc = enc
        self.name: str = corpus.name
        self.encoding: str = corpus.encoding
        self.vocab_size: int = enc.n_vocab
        self.warnings: tuple[str, ...] = corpus.warnings
        self.n_chars: int = corpus.n_chars
        self.n_bytes: int = corpus.n_bytes

    @property
    def n_tokens(self) -> int:
        return self._corpus.n_tokens

    def ids(self, start: int = 0, stop: int | None = None) -> list[int]:
        return self._corpus.ids[start:stop].tolist()

    def chunks(self, start: int = 0, stop: int | None = None) -> list[Chunk]:
        from model.vocab import chunks_for

        return chunks_for(self._enc, self.ids(start, stop))

    def token_bytes(self, token_id: int) -> bytes:
        return self._enc.decode_single_token_bytes(token_id)


def tokenize_source(
    source: str | Path | None,
    encoding: str = "cl100k_base",
    on_progress: Callable[[str, float], None] | None = None,
) -> TokenizedSource:
    """Tokenize a corpus source (see model.corpus.open_corpus) with a named encoding.

    Raises:
        CorpusError, EncodingError: with a one-line message for the user.
    """
    from model.corpus import open_corpus
    from model.vocab import load_encoding

    enc = load_encoding(encoding)
    return TokenizedSource(open_corpus(source, enc, encoding, on_progress), enc)
