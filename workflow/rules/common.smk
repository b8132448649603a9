# Helpers shared by all rules: paths, the Python interpreter, input functions.
import os
import sys
from pathlib import Path

SRC = Path(workflow.basedir) / "src" / "relift"

# Jobs run `python -m relift.<step>` with this checkout's src/ on PYTHONPATH. `python` is the
# interpreter running Snakemake (the project's virtualenv) unless --use-conda activates the
# rule's environment from envs/, whose bin/ then comes first on PATH.
os.environ.update(PYTHONPATH=str(SRC.parent))
os.environ["PATH"] = os.pathsep.join(
    (str(Path(sys.executable).parent), os.environ["PATH"])
)
# this checkout's package (on sys.path: see the Snakefile), for the helpers rules share with it
from relift.settings import settings_json
from relift.regpt.settings import (
    REGPT_ONLY_MODEL_KEYS,
    WORKFLOW_KEYS as REGPT_WORKFLOW_KEYS,
)

SPLITS = ["train", "dev", "test"]
LM_DATA = config["data"]["lm"]
TM_DATA = config["data"]["translation_memory"]
REGPT = config["regpt"]


from relift.codedeps import module_files


def regpt_json(section, model=False, **extra):
    """regpt.<section> as the one --settings JSON of its CLI (relift.regpt.settings reads it),
    without the keys the workflow reads itself (a job's GPUs, ...); ``model``: with regpt.model
    first (the training sections; the baseline without ReGPT's own model keys); ``extra``: keys
    of other sections the CLI reads."""
    values = {}
    if model:
        drop = REGPT_ONLY_MODEL_KEYS if section == "baseline" else ()
        values.update((k, v) for k, v in REGPT["model"].items() if k not in drop)
    values.update(REGPT[section], **extra)
    return settings_json(values, drop=REGPT_WORKFLOW_KEYS.get(section, ()))


def code_of(*modules):
    """The files of the modules a rule runs and of every relift module they import
    (relift.codedeps), declared as inputs so that a code change reruns exactly its rules.
    """
    return sorted({str(SRC / f) for m in modules for f in module_files(m)})


def lm_split(wildcards):
    """The raw language-model corpus of one split: sotu (built) or the user's files."""
    if LM_DATA["source"] == "sotu":
        return f"results/data/lm/{wildcards.split}.jsonl"
    return LM_DATA["files"][wildcards.split]


def lm_format():
    return "jsonl" if LM_DATA["source"] == "sotu" else LM_DATA["files"]["format"]


def lm_cleanup_flags():
    """Corpus cleanups, settings of the data source: sotu drops its bracketed transcript notes;
    the user's files get only what data.lm.files asks for."""
    if LM_DATA["source"] == "sotu":
        return " --drop-bracketed" if LM_DATA["sotu"]["drop_bracketed"] else ""
    files = LM_DATA["files"]
    return (" --wikitext-fix" if files["wikitext_fix"] else "") + (
        " --drop-bracketed" if files["drop_bracketed"] else ""
    )


def tm_wheels():
    """Folder of wheels holding German gettext catalogs: the user's, or downloaded."""
    return TM_DATA["wheel_dir"] or "results/data/tm/wheels"


def regpt_phrase_table():
    return [
        "results/regpt/phrases.npy",
        "results/regpt/phrases_embeddings.npy",
        "results/regpt/phrases_embeddings_normalized.npy",
        "results/regpt/negatives.tsv",
    ]


def all_targets():
    """Everything a run builds. The en-de translation memory (results/data/tm/) is not a
    target of its own: it is built only when a task in selfmem.run_tasks reads it."""
    return (
        regpt_phrase_table()
        + regpt_model_targets()
        + selfmem_targets()
        + selfmem_loop_targets()
        + selfmem_compare_targets()
        + report_targets()
    )
