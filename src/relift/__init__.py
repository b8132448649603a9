"""relift: a Snakemake-orchestrated pipeline for retrieval-augmented text generation."""

__version__ = "0.1.0"
