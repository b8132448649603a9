# Selfmem settings and helper functions (included by selfmem.smk).
import re
import shlex

SM = config["selfmem"]
SM_TASKS = SM["tasks"]
SM_RUN = list(SM["run_tasks"])
SM_ARCHS = list(SM["archs"])
SM_GEN = SM["generator"]
SM_CAND = SM["candidates"]
SM_HYP = SM["hypotheses"]


def _sm_alternatives(names):
    return "|".join(re.escape(n) for n in names) or "(?!)"


SM_TASK_RE = _sm_alternatives(SM_TASKS)


SM_TASK_DEFAULTS = {"src_field": "src", "trg_field": "trg", "metric": "bleu"}


def sm_opt(key):
    """Params function: a task setting (src_field, trg_field, metric) with its default."""
    return lambda wildcards: SM_TASKS[wildcards.task].get(key, SM_TASK_DEFAULTS[key])


def sm_flag(flag, value):
    """`flag value` (value shell-quoted), or nothing for an empty value."""
    return f"{flag} {shlex.quote(str(value))}" if value else ""


def sm_split(split):
    """Input function: the JSONL file of one split of the job's task."""
    return lambda wildcards: SM_TASKS[wildcards.task][split]


def sm_memory_flags(wildcards, input):
    """Memory inputs of the generator: none for vanilla."""
    if wildcards.arch == "vanilla":
        return ""
    return (
        sm_flag("--train-memory", input.train_memory)
        + " "
        + sm_flag("--dev-memory", input.dev_memory)
    )


def sm_metrics(wildcards):
    metric = SM_TASKS[wildcards.task].get("metric", "bleu")
    return "bleu,chrf,ter" if metric == "bleu" else "rouge"


def selfmem_targets():
    """Final Selfmem outputs: candidates, hypotheses and scores of every task and arch."""
    out = []
    for task in SM_RUN:
        base = f"results/selfmem/{task}"
        out += expand(
            f"{base}/scores/bm25_memory/{{split}}.json", split=["dev", "test"]
        )
        for arch in SM_ARCHS:
            out += expand(
                f"{base}/candidates/{arch}/{{split}}.{{ext}}",
                split=SM_CAND["splits"],
                ext=["jsonl", "txt"],
            )
            out += expand(f"{base}/scores/{arch}/{{split}}.json", split=["dev", "test"])
    return out
