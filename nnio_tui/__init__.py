"""nnio-tui: see a language model's input and output while it trains."""
