"""The shared training loop of relift (ReGPT stages, the token-level baseline, Selfmem models).

Modules: ``config`` (TrainConfig and its flags), ``optimizer`` (Lamb, AdamW, schedules),
``batches`` (BucketedBatches), ``runtime`` (Accelerate, precision, DeepSpeed), ``checkpoint``
(atomic rotation), ``metrics`` (JSONL/CSV/TensorBoard) and ``loop`` (``train``)."""

from relift.train.batches import BucketedBatches
from relift.train.config import TrainConfig, add_train_args, config_from_args
from relift.train.loop import TrainResult, train
from relift.train.optimizer import Lamb, make_optimizer, make_scheduler
from relift.train.runtime import seed_everything, unwrap

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
