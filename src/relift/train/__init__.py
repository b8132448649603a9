"""The shared training loop of relift (ReGPT stages, the token-level baseline, Selfmem models)."""

from relift.train.loop import (
    BucketedBatches,
    Lamb,
    TrainConfig,
    TrainResult,
    add_train_args,
    config_from_args,
    make_optimizer,
    make_scheduler,
    seed_everything,
    train,
    unwrap,
)

__all__ = [
    "BucketedBatches",
    "Lamb",
    "TrainConfig",
    "TrainResult",
    "add_train_args",
    "config_from_args",
    "make_optimizer",
    "make_scheduler",
    "seed_everything",
    "train",
    "unwrap",
]
