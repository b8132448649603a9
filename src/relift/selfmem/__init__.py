"""Selfmem (Cheng et al., 2023): retrieval-augmented generation with self memory.

By role: task data (:mod:`.data`), the BM25 memory (:mod:`.memory`), the generator
(:mod:`.generator`: tokenizer, model, training, candidates), the memory selector
(:mod:`.selector`), the self-memory loop (:mod:`.loop`) and the evaluation
(:mod:`.evaluation`: comparison table and report).
"""
