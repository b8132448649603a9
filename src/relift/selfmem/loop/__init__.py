"""The self-memory loop: memory selection (selector or oracle), Top-B memory beam, augmented
memory, and the per-iteration file formats."""
