"""Evaluate a ReGPT model or the token-level baseline on a held-out split → JSON.

Both kinds of model are scored on the same chunks of text (the rows of the split, optionally an
evenly spaced subset: ``--max-chunks``), each as ``[<s>] + tokens`` cut into windows of at most
``--max-len`` inputs (see ``relift.regpt.data``), so every token of the text is predicted once.

ReGPT (a model folder with ``config.json`` of type relift-regpt):

* ``acc@1`` / ``acc@10``: the gold next phrase is the top-1 / among the top-10 of ALL V phrases
  (rank = number of phrases scoring strictly higher than the gold one);
* ``nll_per_token`` (nats) under the normalised softmax over the FULL phrase table, computed
  exactly with a chunked, streaming log-sum-exp (the table is never scored in one piece);
* ``bits_per_byte`` = Σ −log2 p(token) over the text's tokens / UTF-8 bytes of the text;
* ``inbatch_loss``: the original's contrastive loss (stage-1 in-batch candidates, 1 pool negative
  per position, seeded) on the same batches, for reference: it depends on the batch size.

Baseline (a ``LlamaForCausalLM`` folder, or ``relift-token-lm`` with its output bias, loaded
by ``relift.regpt.token_lm.load_token_lm``): next-token ``acc@1``/``acc@10`` (over its own 32k
tokens: not comparable with phrase accuracy), ``nll_per_token`` and ``bits_per_byte``.

``<eos>`` is never a target; an ``<unk>`` in the text is scored like any token and counted.

With ``--floors-train`` (and ``--floors-dev``) the JSON also holds ``floors``: the unigram and
bigram bits per byte of the same text under the model's own tokenizer, estimated on the training
split (``relift.regpt.floors``; the smoothing constant picked on dev).

Settings (:class:`relift.regpt.settings.EvaluateSettings`: config.yaml's ``regpt.evaluate`` with
``regpt.model.max_len`` and ``regpt.stage1.threshold``) come as ``--settings JSON`` and/or one
flag each; the scoring itself is :mod:`relift.regpt.scoring`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from relift.encoders import pick_device
from relift.io import LOG, InputError, require_file, run_cli, write_json_atomic
from relift.regpt import data as D
from relift.regpt.scoring import evaluate_folder, pick_chunks
from relift.regpt.settings import EvaluateSettings
from relift.settings import add_settings, settings_from_args


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m relift.regpt.evaluate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--model", required=True, type=Path, help="ReGPT or baseline model folder")
    ap.add_argument("--split", required=True, type=Path, help="held-out split folder (Arrow)")
    ap.add_argument(
        "--phrase-embeddings",
        type=Path,
        help="ReGPT: raw phrase embeddings (default: the path in config.json)",
    )
    ap.add_argument("--negatives-ids", type=Path, help="ReGPT: pool ids, for the in-batch loss")
    ap.add_argument(
        "--negatives-scores", type=Path, help="ReGPT: pool scores, for the in-batch loss"
    )
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--floors-train", type=Path, help="training split: add unigram/bigram floors")
    ap.add_argument("--floors-dev", type=Path, help="dev split: picks the floors' smoothing")
    ap.add_argument("--output", required=True, type=Path, help="JSON to write")
    add_settings(ap, EvaluateSettings)
    return ap


def floors_of(tok, train: Path, dev: Path | None, texts: list[str]) -> dict:
    from relift.regpt.floors import floors

    if not dev:
        raise InputError("--floors-train needs --floors-dev (the smoothing is picked on dev)")
    out = floors(tok, D.load_texts(train), D.load_texts(dev), texts)
    LOG.info(
        "floors of this tokenization: unigram %.4f, bigram %.4f bits/byte",
        out["unigram_bits_per_byte"],
        out["bigram_bits_per_byte"],
    )
    return out


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    st = settings_from_args(args, EvaluateSettings)
    if args.threads:
        torch.set_num_threads(args.threads)
    texts = pick_chunks(D.load_texts(args.split), st.max_chunks)
    pool = (args.negatives_ids, args.negatives_scores)
    folder = require_file(args.model, "model folder")
    got, tok = evaluate_folder(
        folder,
        texts,
        st,
        pick_device(args.device),
        args.phrase_embeddings,
        all(pool) and pool,
        args.split,
    )
    out = {"model": str(args.model), "kind": got.pop("kind"), "split": str(args.split), **got}
    if args.floors_train:
        out["floors"] = floors_of(tok, args.floors_train, args.floors_dev, texts)
    write_json_atomic(args.output, out)
    LOG.info(
        "%s on %d chunks (%d tokens, %d bytes): acc@1 %.4f acc@10 %.4f %.4f bits/byte "
        "in %.1fs -> %s",
        *(out["kind"], len(texts), out["tokens"], out["bytes"], out["acc@1"], out["acc@10"]),
        *(out["bits_per_byte"], out["seconds"], args.output),
    )


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
