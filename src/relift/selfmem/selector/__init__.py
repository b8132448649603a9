"""The memory selector: a cross-encoder over (source, candidate), trained once on the frozen
generator's candidates, and the scores it gives."""
