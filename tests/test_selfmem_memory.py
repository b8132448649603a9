"""Retrieval memory (relift.selfmem.memory): self-exclusion, alignment, bm25s vs Elasticsearch (a local stub of its REST API,
or a real cluster when RELIFT_ES_URL is set), and clear errors."""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from es_stub import ESStub, lucene_norm_length  # noqa: E402

from relift.io import InputError, run_cli  # noqa: E402
from relift.selfmem import memory  # noqa: E402
from relift.selfmem.data import Split, load_split  # noqa: E402
from relift.selfmem.memory import bm25s as bm25s_backend  # noqa: E402
from relift.selfmem.memory import cli as memory_cli  # noqa: E402
from relift.selfmem.memory import elasticsearch as es_backend  # noqa: E402

PAIRS = [
    ("Save the current document to disk", "Das aktuelle Dokument auf der Festplatte speichern"),
    ("Save the current document to the server", "Das aktuelle Dokument auf dem Server speichern"),
    ("Delete the selected user account", "Das ausgewählte Benutzerkonto löschen"),
    (
        "Delete the selected user accounts permanently",
        "Die ausgewählten Benutzerkonten endgültig löschen",
    ),
    (
        "Open the selected item in a new window",
        "Das ausgewählte Element in einem neuen Fenster öffnen",
    ),
    ("Open the selected item in a new tab", "Das ausgewählte Element in einem neuen Tab öffnen"),
    ("The password you entered is incorrect", "Das eingegebene Passwort ist falsch"),
    ("The username you entered is unknown", "Der eingegebene Benutzername ist unbekannt"),
    ("Upload a new profile picture", "Ein neues Profilbild hochladen"),
    ("Remove the profile picture from your account", "Das Profilbild aus Ihrem Konto entfernen"),
    ("Sort the list by date of creation", "Die Liste nach Erstellungsdatum sortieren"),
    ("Sort the list by name of the author", "Die Liste nach dem Namen des Autors sortieren"),
]
QUERIES = [
    ("Save the document to the disk now", "Das Dokument jetzt speichern"),
    ("Open the item in a new browser window", "Das Element in einem neuen Browserfenster öffnen"),
    ("Your password is incorrect", "Ihr Passwort ist falsch"),
    ("zzz qqq", "nichts"),  # no hit at all -> empty memory line
]


def write_split(path: Path, pairs) -> Path:
    path.write_text(
        "".join(json.dumps({"src": s, "trg": t}) + "\n" for s, t in pairs), encoding="utf-8"
    )
    return path


@pytest.fixture
def task(tmp_path):
    return write_split(tmp_path / "train.jsonl", PAIRS), write_split(
        tmp_path / "dev.jsonl", QUERIES
    )


@pytest.fixture
def es_env(monkeypatch):
    for var in es_backend.ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def memories_with(backend, train: Split, dev: Split, out: Path, k: int = 3):
    try:
        memory.build_memories(backend, train, {"train": train, "dev": dev}, out, k)
    finally:
        backend.close()
    return {
        s: (out / f"{s}.txt").read_text(encoding="utf-8").split("\n")[:-1] for s in ("train", "dev")
    }, {
        s: [json.loads(x) for x in (out / f"{s}.hits.jsonl").read_text().splitlines()]
        for s in ("train", "dev")
    }


def test_analyze_standard_like():
    assert memory.analyze("Hello, World! It's v1.2 of 3,000 foo_bar ___ 中文") == [
        "hello",
        "world",
        "it's",
        "v1.2",
        "of",
        "3,000",
        "foo_bar",
        "中",
        "文",
    ]
    assert memory.truncate_words("a b  c d", 2) == "a b"
    assert memory.truncate_words("a b", 0) == "a b"


def test_self_exclusion_and_alignment(task, tmp_path):
    train, dev = load_split(task[0]), load_split(task[1])
    mems, hits = memories_with(
        bm25s_backend.BM25sBackend(engine="numpy"), train, dev, tmp_path / "mem"
    )
    assert len(mems["train"]) == len(train) and len(mems["dev"]) == len(dev)
    assert len(hits["train"]) == len(train) and len(hits["dev"]) == len(dev)
    for i, h in enumerate(hits["train"]):
        assert i not in h["ids"], "an example must never be its own hit"
        assert len(h["ids"]) <= 3 and h["scores"] == sorted(h["scores"], reverse=True)
    # each training example's nearest neighbour is its twin (pairs 2k, 2k+1)
    for i in range(len(train)):
        assert hits["train"][i]["ids"][0] == i ^ 1
        assert mems["train"][i] == train.targets[i ^ 1]
    assert mems["dev"][0] == PAIRS[0][1]
    assert mems["dev"][1] in (PAIRS[4][1], PAIRS[5][1])
    assert mems["dev"][2] == PAIRS[6][1]
    assert mems["dev"][3] == "" and hits["dev"][3] == {"ids": [], "scores": []}


def test_cli_writes_aligned_files(task, tmp_path):
    out = tmp_path / "out"
    rc = run_cli(
        memory_cli.main,
        [
            "--train",
            str(task[0]),
            "--query",
            f"train={task[0]}",
            "--query",
            f"dev={task[1]}",
            "--out-dir",
            str(out),
            "--top-k",
            "2",
            "--bm25s-engine",
            "numpy",
        ],
    )
    assert rc == 0
    assert len((out / "train.txt").read_text().splitlines()) == len(PAIRS)
    assert len((out / "dev.txt").read_text().splitlines()) == len(QUERIES)
    assert not list(out.glob(".*tmp*"))  # atomic outputs leave no temporaries


def test_cli_bad_input_is_one_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"src": "a", "trg": "b"}\n{"src": "a"}\n')
    assert run_cli(memory_cli.main, ["--train", str(bad), "--out-dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "bad.jsonl, line 2, field 'trg': missing field" in err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    assert run_cli(memory_cli.main, ["--train", str(empty), "--out-dir", str(tmp_path / "o")]) == 2
    assert "holds no examples" in capsys.readouterr().err


def test_lucene_norms():
    assert [lucene_norm_length(n) for n in (0, 1, 23)] == [0, 1, 23]
    assert lucene_norm_length(100) != 100 and abs(lucene_norm_length(100) - 100) / 100 < 0.15


def test_backends_agree(task, tmp_path, es_env):
    train, dev = load_split(task[0]), load_split(task[1])
    mems_a, hits_a = memories_with(
        bm25s_backend.BM25sBackend(engine="numpy"), train, dev, tmp_path / "a"
    )
    with ESStub() as es:
        es_env.setenv(es_backend.ENV_URL, es.url)
        backend = es_backend.ElasticsearchBackend(
            "relift-test", batch_size=5
        )  # several _bulk/_msearch calls
        mems_b, hits_b = memories_with(backend, train, dev, tmp_path / "b")
        paths = [p for _, p, _ in es.requests]
        assert paths.count("/_bulk") == 3 and "/relift-test/_refresh" in paths
        assert es.indices == {}, "the index is deleted at the end"
    assert mems_a == mems_b
    for s in ("train", "dev"):
        for a, b in zip(hits_a[s], hits_b[s], strict=True):
            assert a["ids"] == b["ids"]
            assert a["scores"] == pytest.approx(b["scores"], rel=1e-4)


def test_backends_agree_on_fixture_pairs(tmp_path, es_env):
    """The 60 hand-written UI sentence pairs of tests/fixtures (near-duplicates, as in a TM)."""
    rows = [
        line.split("\t")
        for line in (Path(__file__).parent / "fixtures" / "tm_pairs.tsv")
        .read_text(encoding="utf-8")
        .splitlines()
        if line.strip()
    ]
    train = load_split(write_split(tmp_path / "train.jsonl", rows[:50]))
    dev = load_split(write_split(tmp_path / "dev.jsonl", rows[50:]))
    mems_a, hits_a = memories_with(
        bm25s_backend.BM25sBackend(engine="numpy"), train, dev, tmp_path / "a", k=5
    )
    with ESStub() as es:
        es_env.setenv(es_backend.ENV_URL, es.url)
        mems_b, hits_b = memories_with(
            es_backend.ElasticsearchBackend("relift-fixture", batch_size=16),
            train,
            dev,
            tmp_path / "b",
            k=5,
        )
    assert mems_a == mems_b
    for s in ("train", "dev"):
        for a, b in zip(hits_a[s], hits_b[s], strict=True):
            assert a["scores"] == pytest.approx(b["scores"], rel=1e-4)
            assert a["ids"][:1] == b["ids"][:1]


def test_index_settings_sent(es_env):
    with ESStub() as es:
        es_env.setenv(es_backend.ENV_URL, es.url)
        backend = es_backend.ElasticsearchBackend("relift-settings", k1=0.9, b=0.4, keep_index=True)
        backend.index(["a b c"])
        idx = es.indices["relift-settings"]
        assert (idx.k1, idx.b) == (0.9, 0.4)
        analyzer = idx.settings["analysis"]["analyzer"][es_backend.ANALYZER]
        assert analyzer == {"type": "custom", "tokenizer": "standard", "filter": ["lowercase"]}
        assert idx.settings["number_of_shards"] == 1
        backend.close()
        assert "relift-settings" in es.indices  # keep_index


def test_credentials_from_env_never_logged(es_env, caplog):
    caplog.set_level(logging.DEBUG)
    es_env.setenv(es_backend.ENV_USER, "elastic")
    es_env.setenv(es_backend.ENV_PASSWORD, "s3cret-pw")
    import base64

    auth = "Basic " + base64.b64encode(b"elastic:s3cret-pw").decode()
    with ESStub(require_auth=auth) as es:
        es_env.setenv(es_backend.ENV_URL, es.url)
        backend = es_backend.ElasticsearchBackend("relift-auth")
        backend.index(["x y"])
        assert backend.search(["x"], 1)[0][0][0] == 0
        backend.close()
        assert all(
            {k.lower(): v for k, v in h.items()}.get("authorization") == auth
            for _, _, h in es.requests
        )
        # wrong password: a clear error that names the variables, not their values
        es_env.setenv(es_backend.ENV_PASSWORD, "wrong-pw")
        with pytest.raises(memory.BackendError, match="HTTP 401.*RELIFT_ES_USER") as err:
            es_backend.ElasticsearchBackend("relift-auth").index(["x"])
        assert "wrong-pw" not in str(err.value)
    text = caplog.text
    assert "s3cret-pw" not in text and "wrong-pw" not in text and es.url not in text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_cluster_is_a_clear_error(es_env, caplog):
    url = f"http://user:pw-123@127.0.0.1:{_free_port()}"
    es_env.setenv(es_backend.ENV_URL, url)
    sleeps = []
    backend = es_backend.ElasticsearchBackend(
        "relift-x", max_retries=2, backoff=0.5, timeout=2, sleep=sleeps.append
    )
    with pytest.raises(memory.BackendError) as err:
        backend.index(["a"])
    msg = str(err.value)
    assert "cannot reach the cluster named by RELIFT_ES_URL" in msg and "after 3 attempts" in msg
    assert "pw-123" not in msg and "127.0.0.1" not in msg
    assert len(sleeps) == 2 and sleeps[1] > sleeps[0] * 1.0  # exponential backoff (with jitter)
    assert "pw-123" not in caplog.text
    assert isinstance(err.value, InputError)  # CLI: one line, exit 2


def test_missing_url_is_a_clear_error(es_env, tmp_path, task, capsys):
    rc = run_cli(
        memory_cli.main,
        ["--train", str(task[0]), "--out-dir", str(tmp_path / "o"), "--backend", "elasticsearch"],
    )
    assert rc == 2
    assert "RELIFT_ES_URL" in capsys.readouterr().err


def test_transient_failures_are_retried(es_env):
    with ESStub(unavailable=2) as es:
        es_env.setenv(es_backend.ENV_URL, es.url)
        sleeps = []
        backend = es_backend.ElasticsearchBackend("relift-retry", backoff=0.1, sleep=sleeps.append)
        backend.index(["alpha beta", "gamma"])
        assert [h[0] for h in backend.search(["gamma"], 2)[0]] == [1]
        backend.close()
        assert len(sleeps) == 2


def test_bulk_item_error_names_documents(es_env):
    with ESStub(fail_bulk_ids=[1, 3]) as es:
        es_env.setenv(es_backend.ENV_URL, es.url)
        backend = es_backend.ElasticsearchBackend("relift-bulk")
        with pytest.raises(memory.BackendError) as err:
            backend.index(["a", "b", "c", "d", "e"])
        backend.close()
    msg = str(err.value)
    assert "rejected 2 of 5 documents" in msg
    assert "document 1 (HTTP 400: document_parsing_exception" in msg and "document 3" in msg


def test_check_bulk_response_unit():
    ok = {"errors": False, "items": [{"index": {"_id": "0", "status": 201}}]}
    es_backend.check_bulk_response(ok, 1)
    with pytest.raises(
        memory.BackendError, match="document 7 .*HTTP 429: es_rejected_execution_exception"
    ):
        es_backend.check_bulk_response(
            {
                "errors": True,
                "items": [
                    {
                        "index": {
                            "_id": "7",
                            "status": 429,
                            "error": {
                                "type": "es_rejected_execution_exception",
                                "reason": "queue full",
                            },
                        }
                    }
                ],
            },
            1,
        )


def test_not_elasticsearch_is_a_clear_error(es_env):
    with ESStub(no_product_header=True) as es:
        es_env.setenv(es_backend.ENV_URL, es.url)
        with pytest.raises(memory.BackendError, match="not Elasticsearch"):
            es_backend.ElasticsearchBackend("relift-np").index(["a"])


@pytest.mark.skipif(
    not os.environ.get("RELIFT_ES_URL"),
    reason="no real Elasticsearch cluster: set RELIFT_ES_URL (and RELIFT_ES_API_KEY or "
    "RELIFT_ES_USER/RELIFT_ES_PASSWORD) to run this test against one",
)
def test_real_cluster_agrees_with_bm25s(task, tmp_path):
    train, dev = load_split(task[0]), load_split(task[1])
    mems_a, hits_a = memories_with(
        bm25s_backend.BM25sBackend(engine="numpy"), train, dev, tmp_path / "a"
    )
    backend = es_backend.ElasticsearchBackend(
        f"relift-pytest-{os.getpid()}", batch_size=5, keep_index=True
    )
    try:
        memory.build_memories(backend, train, {"train": train, "dev": dev}, tmp_path / "b", 3)
        samples = ["Hello, World! It's v1.2 of 3,000 foo_bar", "Größe über-all don’t U.S.A. e.g."]
        for text in samples:  # the index analyzer tokenises as bm25s is configured to
            res = backend.client.indices.analyze(
                index=backend.index_name, analyzer=es_backend.ANALYZER, text=text
            )
            assert [t["token"] for t in res["tokens"]] == memory.analyze(text)
    finally:
        backend.keep_index = False
        backend.close()
    mems_b = {
        s: (tmp_path / "b" / f"{s}.txt").read_text(encoding="utf-8").split("\n")[:-1]
        for s in ("train", "dev")
    }
    assert mems_a == mems_b
