"""Selfmem (Cheng et al., 2023): retrieval-augmented generation with self memory.

Part 1 lives here: task data (:mod:`.data`), the BM25 memory (:mod:`.bm25`), the joint byte-level
BPE tokenizer (:mod:`.tokenizer`), the retrieval-augmented generator in three architectures
(:mod:`.model`), its training CLI (:mod:`.train_generator`) and beam candidates
(:mod:`.candidates`).
"""
