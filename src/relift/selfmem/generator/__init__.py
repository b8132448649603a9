"""The retrieval-augmented generator: settings, tokenizer, model (vanilla, joint, dual, copy
head), training and beam decoding of candidates."""
