"""Safety: no unsafe unpickling, no config value reaching a shell unquoted, credentials only from
the environment."""

from __future__ import annotations

import ast
import json
import pickle
import re
import shlex
from pathlib import Path

import pytest
from helpers import ROOT, fixture_tm_wheels, overlay, snakemake

SRC = ROOT / "src" / "relift"
# spaces, both quotes, ; and a comment: anything unquoted would run `touch PWNED`
EVIL = "x y'z\"; touch PWNED #"


# --------------------------------------------------------------------------- unpickling
def calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            owner = (
                f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else ""
            )
            yield node, owner, name


def test_no_unsafe_deserialisation_in_the_package():
    """torch.load only with weights_only=True, no pickle/joblib/dill loads, numpy without pickles,
    no trust_remote_code."""
    bad = []
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node, owner, name in calls(tree):
            kw = {k.arg: k.value for k in node.keywords}
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            if owner == "torch" and name == "load":
                wo = kw.get("weights_only")
                if not (isinstance(wo, ast.Constant) and wo.value is True):
                    bad.append(f"{where}: torch.load without weights_only=True")
            if owner in ("pickle", "joblib", "dill", "cloudpickle", "marshal") and name in (
                "load",
                "loads",
            ):
                bad.append(f"{where}: {owner}.{name}")
            if owner in ("np", "numpy") and name == "load":
                ap = kw.get("allow_pickle")
                if isinstance(ap, ast.Constant) and ap.value is True:
                    bad.append(f"{where}: np.load(allow_pickle=True)")
            tr = kw.get("trust_remote_code")
            if isinstance(tr, ast.Constant) and tr.value is True:
                bad.append(f"{where}: trust_remote_code=True")
    assert not bad, bad


class _Payload:
    def __reduce__(self):
        return (Path.touch, (Path("PWNED-BY-PICKLE"),))


def test_resume_refuses_a_checkpoint_pickle_that_runs_code(tmp_path, monkeypatch):
    """relift's training loop resumes a run from its checkpoint folder: a tampered optimizer
    state in that checkpoint is refused, its code never runs."""
    import torch

    from relift.train import loop as L

    monkeypatch.chdir(tmp_path)

    def run(stop_after: int = 0):
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 1)
        cfg = L.TrainConfig(
            max_steps=4, save_every=2, stop_after=stop_after, progress=False, device="cpu"
        )

        def collate(idx):
            x = torch.ones(len(idx), 4)
            return {"x": x, "y": x.sum(1, keepdim=True)}

        def loss(m, batch, step):
            return torch.nn.functional.mse_loss(m(batch["x"]), batch["y"]), {"tokens": 1}

        L.train(model, loss, L.BucketedBatches([1] * 8, 4, 0, collate), cfg, tmp_path / "run")

    with pytest.raises(SystemExit):
        run(stop_after=2)  # an interrupted run: its checkpoint of step 2 is resumed below
    step = tmp_path / "run" / "checkpoints" / "step-2"
    evil = step / "optimizer.bin"
    assert evil.exists(), sorted(p.name for p in step.iterdir())
    evil.write_bytes(pickle.dumps({"state": _Payload()}))
    with pytest.raises(pickle.UnpicklingError):
        run()
    assert not (tmp_path / "PWNED-BY-PICKLE").exists()


def test_phrase_table_is_loaded_without_pickles(tmp_path):
    import numpy as np

    from relift.regpt.phrases import load_phrases

    np.save(tmp_path / "phrases.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="allow_pickle"):
        load_phrases(tmp_path / "phrases.npy")


def evil_task(tmp: Path, rows: list[dict], trg_field: str) -> str:
    """Three splits in a folder whose name holds `;` and quotes; the config text of the task."""
    data = tmp / "my data; 'x'"
    data.mkdir()
    for split in ("train", "dev", "test"):
        (data / f"{split} set.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    paths = "".join(
        f"      {split}: {json.dumps(str(data / f'{split} set.jsonl'))}\n"
        for split in ("train", "dev", "test")
    )
    return (
        f"  tasks:\n    evil:\n{paths}      src_field: {json.dumps(EVIL)}\n"
        f"      trg_field: {json.dumps(trg_field)}\n      metric: bleu\n  run_tasks: [evil]\n"
    )


# --------------------------------------------------------------------------- shell quoting
def carries_evil(token: str) -> int:
    """How many times one shell argument carries EVIL: as itself, or as values of a
    --settings JSON object (a config section passed whole)."""
    if token.startswith("{"):
        return sum(isinstance(v, str) and EVIL in v for v in json.loads(token).values())
    return EVIL in token


def test_config_strings_reach_shell_commands_quoted(tmp_path):
    """Every free-text config value (paths, field names, model names, the memory separator) is
    set to a value with spaces, quotes and `;`; every shell command of the dry run must carry it
    as ONE argument (Snakemake's `:q`, i.e. shlex.quote), never as shell syntax."""
    fixture_tm_wheels(tmp_path / "fixture_wheels")
    rows = [{EVIL: f"the house {i}", EVIL + "2": f"das Haus {i}"} for i in range(4)]
    cfg = f"""
regpt:
  tokenizer: {{base: {json.dumps(EVIL)}}}
  embeddings: {{encoder: {json.dumps(EVIL)}}}
  model: {{pretrained_decoder: {json.dumps(EVIL)}}}
selfmem:
{evil_task(tmp_path, rows, EVIL + "2")}  tokenizer: {{pretrained: {json.dumps(EVIL)}}}
  generator: {{pretrained: {json.dumps(EVIL)}}}
  selector: {{encoder: {json.dumps(EVIL)}}}
  loop:
    separator: {json.dumps(EVIL)}
"""
    r = snakemake(
        tmp_path,
        "-n",
        "-p",
        "--forceall",
        configfiles=[overlay(tmp_path, "evil.yaml", cfg)],
        check=False,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-5000:]
    cmds = [c for c in re.split(r"\n(?=rule |localrule )", out) if "python -m relift" in c]
    seen = 0
    for block in cmds:
        for line in block.splitlines():
            if "python -m relift" not in line or "PWNED" not in line:
                continue
            seen += 1
            tokens = shlex.split(line)
            assert "touch" not in tokens and ";" not in tokens, line
            assert sum(carries_evil(t) for t in tokens) == line.count("PWNED"), line
    assert seen >= 10, f"only {seen} commands carried the value:\n{out[-3000:]}"
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.slow  # > 5 s: make test runs it, make test-fast does not
def test_a_job_with_such_values_really_runs(tmp_path):
    """And for real: the BM25 memory of a task whose files and field names hold spaces, quotes
    and `;` is built, and nothing else runs."""
    rows = [{EVIL: f"the house number {i} is red", "trg": f"das Haus {i}"} for i in range(6)]
    cfg = f"""
selfmem:
{evil_task(tmp_path, rows, "trg")}"""
    snakemake(
        tmp_path,
        targets=["results/selfmem/evil/memory/dev.txt"],
        configfiles=[overlay(tmp_path, "evil.yaml", cfg)],
    )
    assert len((tmp_path / "results/selfmem/evil/memory/dev.txt").read_text().splitlines()) == 6
    assert not (tmp_path / "PWNED").exists()


# --------------------------------------------------------------------------- credentials
def test_credentials_come_only_from_the_environment():
    """The Elasticsearch backend reads URL and credentials from RELIFT_ES_* variables; no config
    key, rule parameter or CLI flag carries them."""
    schema = (ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text().lower()
    rules = "\n".join(p.read_text() for p in (ROOT / "workflow" / "rules").glob("*.smk")).lower()
    for word in ("password", "api_key", "apikey", "es_url", "es_user", "token:"):
        assert word not in schema, word
        assert word not in rules, word
    from relift.selfmem.memory import cli as memory_cli

    helptext = memory_cli.__doc__ or ""
    assert "RELIFT_ES_URL" in helptext
    src = "\n".join(p.read_text() for p in (SRC / "selfmem" / "memory").glob("*.py"))
    assert not re.search(r"add_argument\(\s*\"--es-(url|user|password|api-key)", src)


def test_credentials_never_reach_logs_or_results(tmp_path, monkeypatch, capsys, caplog):
    import base64
    import logging

    from es_stub import ESStub

    from relift.io import run_cli
    from relift.selfmem.memory import cli as memory_cli
    from relift.selfmem.memory import elasticsearch as es_backend

    train = tmp_path / "train.jsonl"
    train.write_text(
        "".join(json.dumps({"src": f"house {i} red", "trg": f"Haus {i}"}) + "\n" for i in range(5))
    )
    for var in es_backend.ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    auth = "Basic " + base64.b64encode(b"elastic:s3cr3t-pw").decode()
    caplog.set_level(logging.DEBUG)
    with ESStub(require_auth=auth) as es:
        monkeypatch.setenv(es_backend.ENV_URL, es.url)
        monkeypatch.setenv(es_backend.ENV_USER, "elastic")
        monkeypatch.setenv(es_backend.ENV_PASSWORD, "s3cr3t-pw")
        rc = run_cli(
            memory_cli.main,
            [
                "--train",
                str(train),
                "--out-dir",
                str(tmp_path / "mem"),
                "--backend",
                "elasticsearch",
            ],
        )
    assert rc == 0
    written = "".join(
        p.read_text(errors="replace") for p in (tmp_path / "mem").rglob("*") if p.is_file()
    )
    seen = capsys.readouterr()
    for text in (written, seen.out, seen.err, caplog.text):
        assert (
            "s3cr3t-pw" not in text and base64.b64encode(b"elastic:s3cr3t-pw").decode() not in text
        )
