# Selfmem settings and helper functions (included by selfmem.smk).
import re
import shlex

from relift.selfmem.generator.settings import CANDIDATES_WORKFLOW_KEYS

SELFMEM = config["selfmem"]
# an overlay's task map is merged into the default's (tasks set to null are dropped by the
# Snakefile); only the tasks in run_tasks are built
SELFMEM_TASKS = SELFMEM["tasks"]
# (run_tasks names tasks of the map: relift.config_checks, run by the Snakefile)
SELFMEM_RUN_TASKS = list(SELFMEM["run_tasks"])
SELFMEM_BASE_ARCHS = list(SELFMEM["archs"])
SELFMEM_SEEDS = list(SELFMEM["seeds"])


def sm_seeded(arch, seed):
    """The arch name of one seed's outputs: plain for the first seed, `<arch>.s<seed>` else."""
    return arch if seed == SELFMEM_SEEDS[0] else f"{arch}.s{seed}"


def sm_arch_seed(name):
    """`joint.s1` -> ("joint", 1); `joint` -> ("joint", first seed)."""
    arch, _, seed = name.partition(".s")
    return arch, int(seed) if seed else SELFMEM_SEEDS[0]


def sm_base_arch(wildcards):
    return sm_arch_seed(wildcards.arch)[0]


def sm_seed(wildcards):
    return sm_arch_seed(wildcards.arch)[1]


# every (arch, seed) pair, as arch names
SELFMEM_ARCHS = [sm_seeded(a, s) for a in SELFMEM_BASE_ARCHS for s in SELFMEM_SEEDS]
SEED_SUFFIX_RE = r"(\.s[0-9]+)?"
SELFMEM_ARCH_RE = f"(vanilla|joint|dual|control){SEED_SUFFIX_RE}"
# archs that read no memory: vanilla, and `control`, the equal-compute control of a
# warm-started memory arch (vanilla continued for warm_start_train's updates, no memory)
NO_MEMORY_ARCHS = ("vanilla", "control")


def sm_model_arch(wildcards):
    """The generator architecture a job trains or decodes (control is a vanilla model)."""
    arch = sm_base_arch(wildcards)
    return "vanilla" if arch == "control" else arch


SELFMEM_GENERATOR = SELFMEM["generator"]
SELFMEM_CANDIDATES = SELFMEM["candidates"]


def sm_generator_settings(wildcards):
    """selfmem.generator as one --settings JSON: a continuation (a warm-started memory arch, or
    control) trains with the warm_start_train values (its updates and schedule); vanilla and
    control, which read no memory, do not depend on the warm-start and memory_* keys.
    """
    arch, _ = sm_arch_seed(wildcards.arch)
    section = dict(SELFMEM_GENERATOR)
    continuation = section.pop("warm_start_train")
    continues = arch == "control" or (arch != "vanilla" and section["warm_start"])
    if arch in NO_MEMORY_ARCHS:  # the memory recipe's keys are not its settings
        for key in [k for k in section if k == "warm_start" or k.startswith("memory_")]:
            section.pop(key)
    if continues:
        section |= continuation
    return settings_json(section, drop=("gpus",))


def sm_warm_start(wildcards):
    """The trained vanilla generator of the same seed, where a memory arch continues from it
    (selfmem.generator.warm_start) and for control; else no input."""
    arch, seed = sm_arch_seed(wildcards.arch)
    if arch == "vanilla" or (arch != "control" and not SELFMEM_GENERATOR["warm_start"]):
        return []
    return f"results/selfmem/{wildcards.task}/generator/{sm_seeded('vanilla', seed)}"


SELFMEM_HYPOTHESES = SELFMEM["hypotheses"]


def _sm_alternatives(names):
    return "|".join(re.escape(n) for n in names) or "(?!)"


SELFMEM_TASK_RE = _sm_alternatives(SELFMEM_TASKS)


SELFMEM_TASK_DEFAULTS = {"src_field": "src", "trg_field": "trg", "metric": "bleu"}


def sm_opt(key):
    """Params function: a task setting (src_field, trg_field, metric) with its default."""
    return lambda wildcards: SELFMEM_TASKS[wildcards.task].get(
        key, SELFMEM_TASK_DEFAULTS[key]
    )


def sm_flag(flag, value):
    """`flag value` (value shell-quoted), or nothing for an empty value."""
    return f"{flag} {shlex.quote(str(value))}" if value else ""


def sm_split(split):
    """Input function: the JSONL file of one split of the job's task."""
    return lambda wildcards: SELFMEM_TASKS[wildcards.task][split]


def sm_reads_memory_sources(wildcards):
    """Whether the job's generator reads each memory with its own source (memory_source)."""
    return (
        SELFMEM_GENERATOR["memory_source"]
        and sm_base_arch(wildcards) not in NO_MEMORY_ARCHS
    )


def sm_memory_sources(split):
    """Input function: memory/<split>.source.txt where the generator reads memory sources
    (split may be the `{split}` wildcard), else no input."""

    def inputs(wildcards):
        if not sm_reads_memory_sources(wildcards):
            return []
        name = split.format(split=wildcards.get("split", ""))
        return f"results/selfmem/{wildcards.task}/memory/{name}.source.txt"

    return inputs


def sm_memory_sources_flag(wildcards, input):
    """--memory-sources of a candidates/hypotheses job, or nothing."""
    return sm_flag("--memory-sources", input.memory_sources)


def sm_memory_flags(wildcards, input):
    """Memory inputs of the generator: none for vanilla and control."""
    if sm_base_arch(wildcards) in NO_MEMORY_ARCHS:
        return ""
    flags = [
        sm_flag("--train-memory", input.train_memory),
        sm_flag("--dev-memory", input.dev_memory),
        sm_flag("--train-memory-sources", input.train_memory_sources),
        sm_flag("--dev-memory-sources", input.dev_memory_sources),
    ]
    return " ".join(f for f in flags if f)


def sm_metrics(wildcards):
    metric = SELFMEM_TASKS[wildcards.task].get("metric", "bleu")
    return "bleu,chrf,ter" if metric == "bleu" else "rouge"


def selfmem_targets():
    """Final Selfmem outputs: candidates, hypotheses and scores of every task and arch."""
    out = []
    for task in SELFMEM_RUN_TASKS:
        base = f"results/selfmem/{task}"
        out += expand(
            f"{base}/scores/bm25_memory/{{split}}.json", split=["dev", "test"]
        )
        for arch in SELFMEM_ARCHS:
            # (control is read only through its hypotheses)
            out += expand(
                f"{base}/candidates/{arch}/{{split}}.{{ext}}",
                split=(
                    SELFMEM_CANDIDATES["splits"]
                    if sm_arch_seed(arch)[0] != "control"
                    else []
                ),
                ext=["jsonl", "txt"],
            )
            out += expand(f"{base}/scores/{arch}/{{split}}.json", split=["dev", "test"])
    return out
