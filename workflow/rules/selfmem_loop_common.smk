# Selfmem part 2 settings and helper functions (of selfmem_selector.smk, selfmem_loop.smk and
# selfmem_compare.smk).
SELFMEM_SELECTOR = SELFMEM["selector"]
from relift.selfmem.selector.settings import WORKFLOW_KEYS as SELECTOR_WORKFLOW_KEYS

# the selector section as the one --settings JSON of the selector's CLI (train and score)
SELECTOR_SETTINGS = settings_json(SELFMEM_SELECTOR, drop=SELECTOR_WORKFLOW_KEYS)
# ... and the from-scratch encoder's sizes, with the selector's depth and pair length
SCRATCH_ENCODER_SETTINGS = settings_json(
    {
        **SELFMEM_SELECTOR["scratch"],
        "layers": SELFMEM_SELECTOR["layers"],
        "max_length": SELFMEM_SELECTOR["max_length"],
    }
)
SELFMEM_LOOP = SELFMEM["loop"]
# selector.encoder: scratch = a from-scratch encoder over the task's own tokenizer (the checks
# that relate these keys, here and below, are relift.config_checks', run by the Snakefile)
SELECTOR_SCRATCH = SELFMEM_SELECTOR["encoder"] == "scratch"
LOOP_SPLITS = ["dev", "test"]
# vanilla and control read no memory
LOOP_ARCHS = [a for a in SELFMEM_ARCHS if sm_arch_seed(a)[0] not in NO_MEMORY_ARCHS]


def _sm_variant(name):
    v = SELFMEM_LOOP["variants"][name]
    return {
        "select": v.get("select", "selector"),
        "beam_b": v.get("beam_b", SELFMEM_LOOP["beam_b"]),
        "memory_mode": v.get("memory_mode", SELFMEM_LOOP["memory_mode"]),
    }


SELFMEM_VARIANTS = {name: _sm_variant(name) for name in SELFMEM_LOOP["variants"]}
SELECTOR_VARIANT_RE = _sm_alternatives(
    n for n, v in SELFMEM_VARIANTS.items() if v["select"] == "selector"
)
ORACLE_VARIANT_RE = _sm_alternatives(
    n for n, v in SELFMEM_VARIANTS.items() if v["select"] == "oracle"
)
LOOP_ARCH_RE = f"(joint|dual){SEED_SUFFIX_RE}"
# the pools are decoded with the final beam: slot 0's best candidate is the hypothesis
LOOP_HYP_FROM_POOL = SELFMEM_LOOP["num_beams"] == SELFMEM_HYPOTHESES["num_beams"]
K_POS = "[1-9][0-9]*"  # iterations >= 1
# one iteration of a variant, and one memory slot (beam) of it
ITER = "results/selfmem/{task}/{arch}/{variant}/iter{k}"
SLOT = f"{ITER}/beam{{beam}}"
ITER0 = ITER.replace("{k}", "0")
SELECTOR_DIR = "results/selfmem/{task}/{arch}/selector"


def sm_selector_encoder_input(wildcards):
    """The from-scratch encoder folder of a selector job's task and seed (none otherwise)."""
    if not SELECTOR_SCRATCH:
        return []
    return f"results/selfmem/{wildcards.task}/selector_encoder/scratch.s{sm_seed(wildcards)}"


def sm_selector_encoder(wildcards):
    """encoder: scratch: `--encoder FOLDER` (the job's from-scratch encoder, over the JSON's
    `scratch`); the configured encoder comes with the settings JSON."""
    if not SELECTOR_SCRATCH:
        return ""
    return sm_flag("--encoder", sm_selector_encoder_input(wildcards))


def sm_loop_slots(variant, k):
    """Memory slots of an iteration: iteration 0 holds the one BM25 memory, later ones B."""
    return 1 if int(k) == 0 else SELFMEM_VARIANTS[variant]["beam_b"]


def sm_loop_splits(pattern, folder=None):
    """`pattern` (with {split}; under `folder` if given) for the loop splits, the other
    wildcards left in place."""
    if folder:
        pattern = f"{folder}/{pattern}"
    return [pattern.replace("{split}", s) for s in LOOP_SPLITS]


def sm_loop_prev(wildcards):
    """Inputs of iteration k's selection: iteration k-1's beams, candidate pools and their
    scores (a selector variant's iteration-0 pools are scored once, in the selector folder).
    """
    prev = int(wildcards.k) - 1
    v = SELFMEM_VARIANTS[wildcards.variant]
    base = ITER.format(**{**dict(wildcards.items()), "k": prev})
    slots = range(sm_loop_slots(wildcards.variant, prev))
    if v["select"] == "selector" and prev == 0:
        sel = SELECTOR_DIR.format(**dict(wildcards.items()))
        scores = {s: [f"{sel}/bm25_pool_scores.{s}.jsonl"] for s in LOOP_SPLITS}
    else:
        scores = {
            s: [f"{base}/beam{b}/cand_scores.{s}.jsonl" for b in slots]
            for s in LOOP_SPLITS
        }
    out = {
        "beams": [f"{base}/beams.{s}.jsonl" for s in LOOP_SPLITS],
        "candidates": [
            f"{base}/beam{b}/candidates.{s}.jsonl" for s in LOOP_SPLITS for b in slots
        ],
        "scores": [p for s in LOOP_SPLITS for p in scores[s]],
    }
    if v["memory_mode"] == "augment":
        out["generator"] = (
            f"results/selfmem/{wildcards.task}/generator/{wildcards.arch}"
        )
    return out


def sm_loop_select_flags(wildcards, input):
    """--beams/--candidates/--scores flags of a selection job, slots in order per split."""
    flags = []
    for path in input.beams:
        split = path.rsplit(".", 2)[-2]
        flags.append(f"--beams {split}={shlex.quote(path)}")
    for flag, paths in (("--candidates", input.candidates), ("--scores", input.scores)):
        for path in paths:
            split = path.rsplit(".", 2)[-2]
            flags.append(f"{flag} {split}={shlex.quote(path)}")
    v = SELFMEM_VARIANTS[wildcards.variant]
    if v["memory_mode"] == "augment":
        budget = SELFMEM_LOOP["memory_budget"] or SELFMEM_GENERATOR["max_memory_length"]
        flags.append(f"--budget {budget} --tokenizer {shlex.quote(input.generator)}")
    flags.append(f"--separator {shlex.quote(SELFMEM_LOOP['separator'])}")
    return " ".join(flags)


def sm_split_args(**flags):
    """Params function: `--flag split=path` for every loop split, the paths taken from the
    job's named inputs and outputs, so that each path is written once (as the input or output):
    sm_split_args(out_beams="output.beams") -> `--out-beams dev=... --out-beams test=...`;
    "output" alone is the unnamed output list."""

    def fn(wildcards, input, output):
        files = {"input": input, "output": output}
        parts = []
        for name, ref in flags.items():
            kind, _, key = ref.partition(".")
            paths = getattr(files[kind], key) if key else list(files[kind])
            flag = f"--{name.replace('_', '-')}"
            parts += [
                f"{flag} {s}={shlex.quote(p)}"
                for s, p in zip(LOOP_SPLITS, paths, strict=True)
            ]
        return " ".join(parts)

    return fn


def sm_loop_data(wildcards):
    return [SELFMEM_TASKS[wildcards.task][s] for s in LOOP_SPLITS]


def sm_loop_match(wildcards):
    """The retrieved memories' fuzzy-match scores: a generator with a memory recipe reads
    every memory of an example with its retrieval's score."""
    return [
        f"results/selfmem/{wildcards.task}/memory/{s}.match.txt" for s in LOOP_SPLITS
    ]


def sm_loop_hyp_inputs(wildcards):
    """Hypotheses of iteration k: slot 0's pool (decoded with the final beam), or a decode of
    the best memory."""
    it = ITER.format(**dict(wildcards.items()))
    if LOOP_HYP_FROM_POOL:
        return {"pool": [f"{it}/beam0/candidates.{s}.jsonl" for s in LOOP_SPLITS]}
    return {
        "generator": f"results/selfmem/{wildcards.task}/generator/{wildcards.arch}",
        "data": sm_loop_data(wildcards),
        "memory": [f"{it}/memory.{s}.txt" for s in LOOP_SPLITS],
        "match": sm_loop_match(wildcards),
    }


def sm_loop_hyp_args(wildcards, input, output, threads):
    """Command line of the hypotheses job (see sm_loop_hyp_inputs)."""
    outs = " ".join(
        f"--output-txt {s}={shlex.quote(o)}" for s, o in zip(LOOP_SPLITS, output)
    )
    if LOOP_HYP_FROM_POOL:
        pools = " ".join(
            f"--candidates {s}={shlex.quote(p)}"
            for s, p in zip(LOOP_SPLITS, input.pool)
        )
        return f"top1 {pools} {outs}"
    task = SELFMEM_TASKS[wildcards.task]
    data = " ".join(
        f"--data {s}={shlex.quote(p)}" for s, p in zip(LOOP_SPLITS, input.data)
    )
    mems = " ".join(
        f"--memory {s}={shlex.quote(p)} --match {s}={shlex.quote(m)}"
        for s, p, m in zip(LOOP_SPLITS, input.memory, input.match)
    )
    # the final beam (selfmem.hypotheses), one hypothesis per input
    hyp_settings = settings_json(
        {
            "num_beams": SELFMEM_HYPOTHESES["num_beams"],
            "num_return_sequences": 1,
            "batch_size": SELFMEM_HYPOTHESES["batch_size"],
        }
    )
    return (
        f"generate --generator {shlex.quote(input.generator)} {data}"
        f" {mems} {outs} --src-field {shlex.quote(task.get('src_field', 'src'))}"
        f" --trg-field {shlex.quote(task.get('trg_field', 'trg'))}"
        f" --settings {shlex.quote(hyp_settings)} --device {config['device']}"
        f" --threads {threads}"
    )


def sm_loop_report_inputs(wildcards):
    return [
        f"{ITER.format(task=wildcards.task, arch=arch, variant=variant, k=k)}/{kind}.{split}.json"
        for arch in LOOP_ARCHS
        for variant in SELFMEM_LOOP["run_variants"]
        for k in range(SELFMEM_LOOP["iterations"] + 1)
        for kind in ("scores", "memory_scores")
        for split in LOOP_SPLITS
    ] + [
        f"{SELECTOR_DIR.format(task=wildcards.task, arch=arch)}/model"
        for arch in LOOP_ARCHS
        if any(
            SELFMEM_VARIANTS[v]["select"] == "selector"
            for v in SELFMEM_LOOP["run_variants"]
        )
    ]


def selfmem_loop_targets():
    """The per-task report of the loop (it pulls in every iteration of every variant)."""
    if not LOOP_ARCHS or not SELFMEM_LOOP["run_variants"]:
        return []
    return [
        f"results/selfmem/{task}/report/loop_{name}"
        for task in SELFMEM_RUN_TASKS
        for name in ("scores.csv", "report.html", "bleu.png")
    ]
