# Selfmem settings and helper functions (included by selfmem.smk).
import re
import shlex

SM = config["selfmem"]
# an overlay's task map is merged into the default's (tasks set to null are dropped by the
# Snakefile); only the tasks in run_tasks are built
SM_TASKS = SM["tasks"]
SM_RUN = list(SM["run_tasks"])
for _name in SM_RUN:
    if _name not in SM_TASKS:
        raise ValueError(
            f"selfmem.run_tasks names {_name!r}, which selfmem.tasks does not define "
            f"(defined: {', '.join(SM_TASKS) or 'none'})"
        )
SM_BASE_ARCHS = list(SM["archs"])
SM_SEEDS = list(SM["seeds"])


def sm_seeded(arch, seed):
    """The arch name of one seed's outputs: plain for the first seed, `<arch>.s<seed>` else."""
    return arch if seed == SM_SEEDS[0] else f"{arch}.s{seed}"


def sm_arch_seed(name):
    """`joint.s1` -> ("joint", 1); `joint` -> ("joint", first seed)."""
    arch, _, seed = name.partition(".s")
    return arch, int(seed) if seed else SM_SEEDS[0]


def sm_base_arch(wildcards):
    return sm_arch_seed(wildcards.arch)[0]


def sm_seed(wildcards):
    return sm_arch_seed(wildcards.arch)[1]


# every (arch, seed) pair, as arch names
SM_ARCHS = [sm_seeded(a, s) for a in SM_BASE_ARCHS for s in SM_SEEDS]
SEED_SUFFIX_RE = r"(\.s[0-9]+)?"
SM_ARCH_RE = f"(vanilla|joint|dual){SEED_SUFFIX_RE}"
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
    if sm_base_arch(wildcards) == "vanilla":
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
