"""The bad-input catalogue: one test per case, each through the real entry point (a step's CLI,
or the snakemake CLI for configuration), each giving ONE clear message that names the file and
line / the field or key and what was expected, a non-zero exit, and no partial output.

README.md ("What relift guarantees") lists the same catalogue.
"""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from helpers import overlay, snakemake

from relift.io import run_cli

GOOD = [
    {"src": f"the house number {i} is red", "trg": f"das Haus Nummer {i} ist rot"} for i in range(6)
]


def jsonl(path: Path, rows) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def snapshot(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@dataclass
class Case:
    """``setup(tmp)`` writes the bad input and returns (entry point, argv, expected message
    fragments). The entry point is a module ``main`` run through :func:`relift.io.run_cli`."""

    setup: Callable[[Path], tuple[Callable, list[str], list[str]]]


# --------------------------------------------------------------------------- data
def memory_on(train_rows, query_rows=None, raw: bytes | None = None):
    def setup(tmp: Path):
        from relift.selfmem.memory import cli as memory_cli

        train = tmp / "train.jsonl"
        if raw is not None:
            train.write_bytes(raw)
        else:
            jsonl(train, train_rows)
        argv = ["--train", str(train), "--out-dir", str(tmp / "memory"), "--bm25s-engine", "numpy"]
        if query_rows is not None:
            argv += ["--query", f"dev={jsonl(tmp / 'dev.jsonl', query_rows)}"]
        return memory_cli.main, argv

    return setup


def case_jsonl_not_json(tmp):
    main, argv = memory_on([*GOOD[:2], '{"src": "a", "trg": oops}', *GOOD[2:]])(tmp)
    return main, argv, ["train.jsonl, line 3: not valid JSON"]


def case_missing_field(tmp):
    main, argv = memory_on([*GOOD, {"src": "no target"}])(tmp)
    return main, argv, ["train.jsonl, line 7, field 'trg': missing field"]


def case_null_field(tmp):
    main, argv = memory_on([GOOD[0], {"src": None, "trg": "x"}])(tmp)
    return main, argv, ["train.jsonl, line 2, field 'src': expected a string, found null"]


def case_empty_split(tmp):
    main, argv = memory_on(GOOD, query_rows=[])(tmp)
    return main, argv, ["dev.jsonl: split holds no examples"]


def case_non_utf8(tmp):
    raw = (json.dumps(GOOD[0]) + "\n").encode() + b'{"src": "caf\xe9", "trg": "x"}\n'
    main, argv = memory_on(None, raw=raw)(tmp)
    return main, argv, ["train.jsonl, line 2: not valid UTF-8"]


def preprocess_on(tmp: Path, name: str, content: str, fmt: str, expected: list[str]):
    from relift.regpt import preprocess

    src = tmp / name
    src.write_text(content)
    argv = ["--input", str(src), "--format", fmt, "--output", str(tmp / "ds")]
    return preprocess.main, argv, expected


def case_one_megabyte_line(tmp):
    return preprocess_on(
        tmp,
        "corpus.txt",
        "A short line.\n" + "word " * 210_000 + "\n",
        "text",
        ["corpus.txt, line 2: line is 1,050,001 bytes"],
    )


def case_empty_text_corpus(tmp):
    return preprocess_on(tmp, "corpus.txt", "\n   \n\n", "text", ["corpus.txt", "corpus is empty"])


def case_tsv_column_count(tmp):
    return preprocess_on(
        tmp,
        "corpus.tsv",
        "First sentence.\tdoc1\nSecond sentence without an id.\n",
        "tsv",
        ["corpus.tsv, line 2: expected 2 tab-separated columns"],
    )


def case_hyp_ref_count_mismatch(tmp):
    from relift import cli

    (tmp / "hyp.txt").write_text("das Haus\nein Hund\n")
    (tmp / "ref.txt").write_text("das Haus\n")
    return (
        cli._main,
        [
            "score",
            "--hyp",
            str(tmp / "hyp.txt"),
            "--ref",
            str(tmp / "ref.txt"),
            "--output",
            str(tmp / "scores.json"),
        ],
        ["hyp.txt", "2 lines", "ref.txt", "1"],
    )


def case_pools_data_count_mismatch(tmp):
    from relift.selfmem.loop import run as loop

    data = jsonl(tmp / "dev.jsonl", GOOD[:3])
    cands = jsonl(tmp / "cands.jsonl", [{"id": i, "candidates": ["a", "b"]} for i in range(2)])
    return (
        loop.main,
        [
            "oracle-scores",
            "--data",
            f"dev={data}",
            "--candidates",
            f"dev={cands}",
            "--output",
            f"dev={tmp / 'scores.jsonl'}",
        ],
        ["cands.jsonl: 2 candidate pools but the split has 3 inputs"],
    )


# --------------------------------------------------------------------------- ReGPT artifacts
def phrase_table(tmp: Path, n: int = 12, dim: int = 8, n_phrases: int | None = None):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    np.save(tmp / "emb.npy", x)
    np.save(tmp / "emb_norm.npy", x / np.linalg.norm(x, axis=1, keepdims=True))
    np.save(tmp / "phrases.npy", np.array([f" p{i}" for i in range(n_phrases or n)]))


def negatives_argv(tmp: Path, depth: int) -> list[str]:
    return [
        "--embeddings",
        str(tmp / "emb_norm.npy"),
        "--phrases",
        str(tmp / "phrases.npy"),
        "--depth",
        str(depth),
        "--backend",
        "numpy",
        "--output",
        str(tmp / "negatives.tsv"),
        "--output-ids",
        str(tmp / "ids.npy"),
        "--output-scores",
        str(tmp / "scores.npy"),
    ]


def case_negatives_depth_over_table(tmp):
    from relift.regpt import negatives

    phrase_table(tmp, n=12)
    return (
        negatives.main,
        negatives_argv(tmp, 13),
        ["negatives depth 13 is larger than the phrase table (12 phrases)"],
    )


def case_embeddings_rows_mismatch(tmp):
    from relift.regpt import negatives

    phrase_table(tmp, n=12, n_phrases=15)
    return (
        negatives.main,
        negatives_argv(tmp, 4),
        ["embeddings have 12 rows but phrases.npy has 15 phrases"],
    )


def case_encoder_path_missing(tmp):
    from relift.regpt import embed

    phrase_table(tmp)
    return (
        embed.main,
        [
            "--phrases",
            str(tmp / "phrases.npy"),
            "--encoder",
            str(tmp / "no/encoder"),
            "--output",
            str(tmp / "e.npy"),
            "--output-normalized",
            str(tmp / "n.npy"),
        ],
        ["no/encoder", "encoder path does not exist"],
    )


def case_vocab_smaller_than_specials(tmp):
    import datasets

    from relift.regpt import tokenizer

    datasets.Dataset.from_dict({"text": ["The Union is strong."]}).save_to_disk(str(tmp / "train"))
    return (
        tokenizer.main,
        ["--train", str(tmp / "train"), "--vocab-size", "2", "--output", str(tmp / "tok")],
        ["vocab_size 2", "special"],
    )


def case_selfmem_vocab_too_small(tmp):
    from relift.selfmem.generator import tokenizer

    train = jsonl(tmp / "train.jsonl", GOOD)
    return (
        tokenizer.main,
        ["--train", str(train), "--vocab-size", "100", "--output", str(tmp / "tok")],
        ["field 'vocab_size'", "at least 261"],
    )


def case_regpt_checkpoint_other_size(tmp):
    from relift.regpt.model import ReGPT

    phrase_table(tmp, n=12, dim=8)
    small = ReGPT.build(
        tmp / "emb.npy", hidden=16, layers=1, heads=2, intermediate=32, max_positions=16
    )
    big = ReGPT.build(
        tmp / "emb.npy", hidden=32, layers=1, heads=2, intermediate=32, max_positions=16
    )
    small.save_pretrained(tmp / "model")
    big.save_pretrained(tmp / "big")
    shutil.copy(tmp / "big" / "model.safetensors", tmp / "model" / "model.safetensors")
    shutil.rmtree(tmp / "big")

    def main(argv):
        ReGPT.from_pretrained(tmp / "model")

    return main, [], ["model.safetensors", "weights of another model size", "(1, 32)", "(1, 16)"]


def case_generator_checkpoint_other_size(tmp):
    from relift.selfmem.generator.model import GeneratorSpec, ModelSize
    from relift.selfmem.generator.tokenizer import train_bpe
    from relift.selfmem.loop import run as loop

    tok = train_bpe([r["src"] for r in GOOD] + [r["trg"] for r in GOOD], 300, 1)
    spec = GeneratorSpec(arch="joint")
    from relift.selfmem.generator.model import Generator

    Generator.from_scratch(
        tok,
        spec,
        ModelSize(d_model=16, encoder_layers=1, decoder_layers=1, attention_heads=2, ffn_dim=32),
    ).save(tmp / "gen")
    Generator.from_scratch(
        tok,
        spec,
        ModelSize(d_model=32, encoder_layers=1, decoder_layers=1, attention_heads=2, ffn_dim=32),
    ).save(tmp / "big")
    shutil.copy(tmp / "big" / "model.safetensors", tmp / "gen" / "model.safetensors")
    shutil.rmtree(tmp / "big")
    data = jsonl(tmp / "dev.jsonl", GOOD[:2])
    (tmp / "mem.txt").write_text("a\nb\n")
    return (
        loop.main,
        [
            "generate",
            "--generator",
            str(tmp / "gen"),
            "--data",
            f"dev={data}",
            "--memory",
            f"dev={tmp / 'mem.txt'}",
            "--device",
            "cpu",
            "--output-txt",
            f"dev={tmp / 'hyp.txt'}",
        ],
        [
            "gen",
            "weights of another model size",
            "has shape (266, 32) but config.json asks for (266, 16)",
        ],
    )


# --------------------------------------------------------------------------- Elasticsearch
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def es_argv(tmp: Path) -> list[str]:
    train = jsonl(tmp / "train.jsonl", GOOD)
    return [
        "--train",
        str(train),
        "--out-dir",
        str(tmp / "memory"),
        "--backend",
        "elasticsearch",
        "--es-max-retries",
        "1",
        "--es-backoff",
        "0.01",
        "--es-timeout",
        "2",
    ]


def case_es_unreachable(tmp, monkeypatch):
    from relift.selfmem.memory import cli as memory_cli
    from relift.selfmem.memory import elasticsearch as es_backend

    monkeypatch.setenv(es_backend.ENV_URL, f"http://elastic:s3cret@127.0.0.1:{free_port()}")
    return (
        memory_cli.main,
        es_argv(tmp),
        ["cannot reach the cluster named by RELIFT_ES_URL", "after 2 attempts"],
    )


def case_es_partial_bulk_failure(tmp, monkeypatch):
    from es_stub import ESStub

    from relift.selfmem.memory import cli as memory_cli
    from relift.selfmem.memory import elasticsearch as es_backend

    stub = ESStub(fail_bulk_ids=[2])
    stub.__enter__()
    monkeypatch.setenv(es_backend.ENV_URL, stub.url)
    monkeypatch.setattr(case_es_partial_bulk_failure, "stub", stub, raising=False)
    return (
        memory_cli.main,
        es_argv(tmp),
        ["Elasticsearch _bulk rejected 1 of 6 documents", "document 2"],
    )


# --------------------------------------------------------------------------- Selfmem loop
def select_argv(tmp: Path, beam_b: int, budget: int = 0) -> list[str]:
    beams = jsonl(
        tmp / "beams.jsonl",
        [
            {"id": i, "beams": [{"memory": "m", "selected": "m", "score": 0.0, "parent": 0}]}
            for i in range(2)
        ],
    )
    cands = jsonl(tmp / "cands.jsonl", [{"id": i, "candidates": ["a", "b"]} for i in range(2)])
    scores = jsonl(tmp / "scores.jsonl", [{"id": i, "scores": [0.5, 0.1]} for i in range(2)])
    return [
        "select",
        "--beams",
        f"dev={beams}",
        "--candidates",
        f"dev={cands}",
        "--scores",
        f"dev={scores}",
        "--beam-b",
        str(beam_b),
        "--memory-mode",
        "augment",
        "--budget",
        str(budget),
        "--out-beams",
        f"dev={tmp / 'out_beams.jsonl'}",
        "--out-memory",
        f"dev={tmp / 'out_memory.txt'}",
    ]


def case_topb_over_candidates(tmp):
    from relift.selfmem.loop import run as loop

    return (
        loop.main,
        select_argv(tmp, beam_b=3),
        ["cands.jsonl, line 1, field 'candidates': Top-B 3 is larger than the 2 candidates"],
    )


def case_memory_budget_below_one_token(tmp):
    from relift.selfmem.loop import run as loop

    return loop.main, select_argv(tmp, beam_b=1, budget=-1), ["--budget -1", "at least 1 token"]


CASES = {
    "jsonl line that is not JSON": case_jsonl_not_json,
    "missing field": case_missing_field,
    "null field": case_null_field,
    "empty split": case_empty_split,
    "non-UTF-8 bytes": case_non_utf8,
    "1 MB single line": case_one_megabyte_line,
    "empty text corpus": case_empty_text_corpus,
    "TSV with the wrong column count": case_tsv_column_count,
    "hypothesis/reference count mismatch": case_hyp_ref_count_mismatch,
    "candidate pools/data count mismatch": case_pools_data_count_mismatch,
    "negatives depth larger than the phrase table": case_negatives_depth_over_table,
    "embeddings rows != phrase count": case_embeddings_rows_mismatch,
    "encoder path that does not exist": case_encoder_path_missing,
    "phrase vocabulary smaller than its special tokens": case_vocab_smaller_than_specials,
    "Selfmem BPE vocabulary smaller than bytes + specials": case_selfmem_vocab_too_small,
    "ReGPT checkpoint of another model size": case_regpt_checkpoint_other_size,
    "generator checkpoint of another model size": case_generator_checkpoint_other_size,
    "unreachable Elasticsearch": case_es_unreachable,
    "Elasticsearch error for part of a bulk request": case_es_partial_bulk_failure,
    "Top-B larger than the candidates": case_topb_over_candidates,
    "memory budget smaller than one token": case_memory_budget_below_one_token,
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name, tmp_path, capsys, monkeypatch):
    fn = CASES[name]
    args = (
        (tmp_path, monkeypatch)
        if "monkeypatch" in fn.__code__.co_varnames[: fn.__code__.co_argcount]
        else (tmp_path,)
    )
    main, argv, expected = fn(*args)
    before = snapshot(tmp_path)
    capsys.readouterr()
    try:
        rc = run_cli(main, argv)
    finally:
        stub = getattr(fn, "stub", None)
        if stub is not None:
            stub.__exit__(None, None, None)
    err = capsys.readouterr().err
    message = [line for line in err.splitlines() if line.startswith("relift: error:")]
    assert rc == 2, err
    assert len(message) == 1, err  # one message, no traceback
    assert "Traceback" not in err
    for fragment in expected:
        assert fragment in message[0], (fragment, message[0])
    assert "s3cret" not in err  # credentials never reach a message
    assert snapshot(tmp_path) == before, "the failed step left files behind"


# --------------------------------------------------------------------------- configuration
CONFIG_CASES = {
    "unknown config key": (
        "regpt:\n  negatives:\n    detph: 7\n",
        "Additional properties are not allowed ('detph' was unexpected)",
    ),
    "wrong config type": (
        "regpt:\n  tokenizer:\n    vocab_size: many\n",
        "'many' is not of type 'integer'",
    ),
    "out-of-range config value": (
        "regpt:\n  negatives:\n    depth: 0\n",
        "0 is less than the minimum of 1",
    ),
    "iteration count of 0": (
        "selfmem:\n  loop:\n    iterations: 0\n",
        "0 is less than the minimum of 1",
    ),
    "Top-B larger than the pool (config)": (
        "selfmem:\n  loop:\n    beam_b: 9\n",
        "selfmem.loop.beam_b (9) must not exceed selfmem.loop.num_return_sequences",
    ),
    "memory budget below zero (config)": (
        "selfmem:\n  loop:\n    memory_budget: -1\n",
        "-1 is less than the minimum of 0",
    ),
}


@pytest.mark.parametrize("name", list(CONFIG_CASES))
def test_bad_config_is_rejected_before_any_job(name, tmp_path):
    text, msg = CONFIG_CASES[name]
    bad = overlay(tmp_path, "bad.yaml", text)
    r = snakemake(tmp_path, "-n", configfiles=[bad], check=False)
    assert r.returncode != 0
    assert msg in r.stdout + r.stderr
    assert not (tmp_path / "results").exists()
