import os
import sys

# tests never reach a model or dataset hub
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# DeepSpeed's JIT-built ops (the CPU comm op of the ZeRO-2 tests): the cache that `make install`
# builds them into (tools/build_deepspeed_ops.py), inside the virtualenv running the tests
os.environ.setdefault("TORCH_EXTENSIONS_DIR", os.path.join(sys.prefix, "torch_extensions"))
# ... built and loaded with the virtualenv's ninja (see the Makefile), whatever PATH the caller had
os.environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])


import pytest  # noqa: E402
from helpers import fixture_tm_wheels, snakemake  # noqa: E402
from regpt_tiny import build as build_regpt_world  # noqa: E402


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The whole DAG of the tiny config (tests/configs/tiny.yaml), run once per test session
    through the real snakemake CLI in a scratch folder."""
    wd = tmp_path_factory.mktemp("tiny")
    fixture_tm_wheels(wd / "fixture_wheels")
    snakemake(wd)
    return wd


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    """The tiny ReGPT world of tests/regpt_tiny.py (phrase tokenizer, random phrase embeddings,
    negatives pool, Arrow splits), built once per test session; tests only read it."""
    return build_regpt_world(tmp_path_factory.mktemp("regpt_world"))
