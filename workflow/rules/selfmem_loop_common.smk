# Selfmem part 2 settings and helper functions (included by selfmem_loop.smk).
SM_SEL = SM["selector"]
SM_LOOP = SM["loop"]
# selector.encoder: scratch = a from-scratch encoder over the task's own tokenizer
SEL_SCRATCH = SM_SEL["encoder"] == "scratch"
if SEL_SCRATCH and SM_SEL["layers"] < 1:
    raise ValueError(
        "selfmem.selector.encoder: scratch builds an encoder of selfmem.selector.layers layers; "
        "set layers >= 1"
    )
if SEL_SCRATCH and SM_SEL["scratch"]["hidden"] % SM_SEL["scratch"]["heads"]:
    raise ValueError(
        "selfmem.selector.scratch.hidden must be a multiple of selfmem.selector.scratch.heads"
    )
# module files of the loop's CLI and of the selector's (declared as inputs with code())
LOOP_CODE = (
    "selfmem/loop.py",
    "selfmem/formats.py",
    "selfmem/topb.py",
    "selfmem/oracle.py",
)
SELECTOR_CODE = ("selfmem/selector.py", "selfmem/formats.py", "selfmem/oracle.py")
LOOP_SPLITS = ["dev", "test"]
# vanilla reads no memory
LOOP_ARCHS = [a for a in SM_ARCHS if sm_arch_seed(a)[0] != "vanilla"]


def _sm_variant(name):
    v = SM_LOOP["variants"][name]
    return {
        "select": v.get("select", "selector"),
        "beam_b": v.get("beam_b", SM_LOOP["beam_b"]),
        "memory_mode": v.get("memory_mode", SM_LOOP["memory_mode"]),
    }


SM_VARIANTS = {name: _sm_variant(name) for name in SM_LOOP["variants"]}
for _name in SM_LOOP["run_variants"]:
    if _name not in SM_VARIANTS:
        raise ValueError(
            f"selfmem.loop.run_variants names {_name!r}, which selfmem.loop.variants does not "
            f"define (defined: {', '.join(SM_VARIANTS)})"
        )
if SM_LOOP["num_return_sequences"] > SM_CAND["num_return_sequences"]:
    raise ValueError(
        "selfmem.loop.num_return_sequences must not exceed selfmem.candidates."
        "num_return_sequences (iteration 0's pool is the first candidates of part 1's)"
    )
for _name, _v in [("selfmem.loop", SM_LOOP)] + [
    (f"selfmem.loop.variants.{n}", v) for n, v in SM_LOOP["variants"].items()
]:
    if _v.get("beam_b", 1) > SM_LOOP["num_return_sequences"]:
        raise ValueError(
            f"{_name}.beam_b ({_v['beam_b']}) must not exceed selfmem.loop."
            f"num_return_sequences ({SM_LOOP['num_return_sequences']}): Top-B keeps B "
            "children of each memory's candidate pool"
        )
SEL_VARIANT_RE = _sm_alternatives(
    n for n, v in SM_VARIANTS.items() if v["select"] == "selector"
)
ORACLE_VARIANT_RE = _sm_alternatives(
    n for n, v in SM_VARIANTS.items() if v["select"] == "oracle"
)
LOOP_ARCH_RE = f"(joint|dual){SEED_SUFFIX_RE}"
# the pools are decoded with the final beam: slot 0's best candidate is the hypothesis
LOOP_HYP_FROM_POOL = SM_LOOP["num_beams"] == SM_HYP["num_beams"]
K_POS = "[1-9][0-9]*"  # iterations >= 1


def sm_selector_encoder_input(wildcards):
    """The from-scratch encoder folder of a selector job's task and seed (none otherwise)."""
    if not SEL_SCRATCH:
        return []
    return f"results/selfmem/{wildcards.task}/selector_encoder/scratch.s{sm_seed(wildcards)}"


def sm_selector_encoder(wildcards):
    """--encoder of a selector job: the configured encoder, or its from-scratch folder."""
    return sm_selector_encoder_input(wildcards) if SEL_SCRATCH else SM_SEL["encoder"]


def sm_loop_slots(variant, k):
    """Memory slots of an iteration: iteration 0 holds the one BM25 memory, later ones B."""
    return 1 if int(k) == 0 else SM_VARIANTS[variant]["beam_b"]


def sm_loop_splits(pattern):
    """`pattern` (with {split}) for the loop splits, the other wildcards left in place."""
    return [pattern.replace("{split}", s) for s in LOOP_SPLITS]


def sm_loop_prev(wildcards):
    """Inputs of iteration k's selection: iteration k-1's beams, candidate pools and their
    scores (a selector variant's iteration-0 pools are scored once, in the selector folder).
    """
    prev = int(wildcards.k) - 1
    v = SM_VARIANTS[wildcards.variant]
    base = f"results/selfmem/{wildcards.task}/{wildcards.arch}/{wildcards.variant}/iter{prev}"
    slots = range(sm_loop_slots(wildcards.variant, prev))
    if v["select"] == "selector" and prev == 0:
        sel = f"results/selfmem/{wildcards.task}/{wildcards.arch}/selector"
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
    v = SM_VARIANTS[wildcards.variant]
    if v["memory_mode"] == "augment":
        budget = SM_LOOP["memory_budget"] or SM_GEN["max_memory_length"]
        flags.append(f"--budget {budget} --tokenizer {shlex.quote(input.generator)}")
    flags.append(f"--separator {shlex.quote(SM_LOOP['separator'])}")
    return " ".join(flags)


def sm_split_flags(flag, pattern):
    """Params function: `flag split=path` for every loop split (pattern with {split})."""

    def fn(wildcards):
        return " ".join(
            f"{flag} {s}={shlex.quote(pattern.format(split=s, **dict(wildcards.items())))}"
            for s in LOOP_SPLITS
        )

    return fn


def sm_data_flags(wildcards):
    return " ".join(
        f"--data {s}={shlex.quote(SM_TASKS[wildcards.task][s])}" for s in LOOP_SPLITS
    )


def sm_loop_data(wildcards):
    return [SM_TASKS[wildcards.task][s] for s in LOOP_SPLITS]


def sm_loop_hyp_inputs(wildcards):
    """Hypotheses of iteration k: slot 0's pool (decoded with the final beam), or a decode of
    the best memory."""
    it = "results/selfmem/{task}/{arch}/{variant}/iter{k}".format(
        **dict(wildcards.items())
    )
    if LOOP_HYP_FROM_POOL:
        return {"pool": [f"{it}/beam0/candidates.{s}.jsonl" for s in LOOP_SPLITS]}
    return {
        "generator": f"results/selfmem/{wildcards.task}/generator/{wildcards.arch}",
        "data": sm_loop_data(wildcards),
        "memory": [f"{it}/memory.{s}.txt" for s in LOOP_SPLITS],
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
    task = SM_TASKS[wildcards.task]
    mems = " ".join(
        f"--memory {s}={shlex.quote(p)}" for s, p in zip(LOOP_SPLITS, input.memory)
    )
    return (
        f"generate --generator {shlex.quote(input.generator)} {sm_data_flags(wildcards)}"
        f" {mems} {outs} --src-field {shlex.quote(task.get('src_field', 'src'))}"
        f" --trg-field {shlex.quote(task.get('trg_field', 'trg'))}"
        f" --num-beams {SM_HYP['num_beams']} --num-return-sequences 1"
        f" --batch-size {SM_HYP['batch_size']} --device {config['device']}"
        f" --threads {threads}"
    )


def sm_loop_report_inputs(wildcards):
    return [
        f"results/selfmem/{wildcards.task}/{arch}/{variant}/iter{k}/{kind}.{split}.json"
        for arch in LOOP_ARCHS
        for variant in SM_LOOP["run_variants"]
        for k in range(SM_LOOP["iterations"] + 1)
        for kind in ("scores", "memory_scores")
        for split in LOOP_SPLITS
    ] + [
        f"results/selfmem/{wildcards.task}/{arch}/selector/model"
        for arch in LOOP_ARCHS
        if any(SM_VARIANTS[v]["select"] == "selector" for v in SM_LOOP["run_variants"])
    ]


def selfmem_loop_targets():
    """The per-task report of the loop (it pulls in every iteration of every variant)."""
    if not LOOP_ARCHS or not SM_LOOP["run_variants"]:
        return []
    return [
        f"results/selfmem/{task}/report/loop_{name}"
        for task in SM_RUN
        for name in ("scores.csv", "report.html", "bleu.png")
    ]


def _sm_row_label(arch):
    return "vanilla (no memory)" if arch == "vanilla" else f"{arch} + BM25 memory"


def sm_compare_inputs(wildcards):
    base = f"results/selfmem/{wildcards.task}"
    task = SM_TASKS[wildcards.task]
    out = {
        "data": [task[s] for s in ("train", "dev", "test")],
        "memory": [
            f"{base}/memory/bm25/{s}.{x}"
            for s in LOOP_SPLITS
            for x in ("txt", "hits.jsonl")
        ],
        "hyps": [
            f"{base}/hypotheses/{a}/{s}.txt" for a in SM_ARCHS for s in LOOP_SPLITS
        ],
        "diag": [
            f"{base}/diagnostics/{a}/{s}.{kind}.txt"
            for a in LOOP_ARCHS
            for s in LOOP_SPLITS
            for kind in ("empty", "reference")
        ],
        "loop": [
            f"{base}/{a}/{v}/iter{k}/hypotheses.{s}.txt"
            for a in LOOP_ARCHS
            for v in SM_LOOP["run_variants"]
            for k in range(1, SM_LOOP["iterations"] + 1)
            for s in LOOP_SPLITS
        ],
    }
    return out


def _sm_seed_files(arch, pattern):
    """`pattern` ({a}: the arch name of a seed) for every seed of `arch`, ';'-joined."""
    return ";".join(pattern.format(a=sm_seeded(arch, seed)) for seed in SM_SEEDS)


def sm_compare_args(wildcards):
    """Rows of the comparison table (see relift.selfmem.compare); a row's files hold one
    alternative per seed (';'-separated), a loop row's one iteration list per seed."""
    base = f"results/selfmem/{wildcards.task}"
    task = SM_TASKS[wildcards.task]
    q = shlex.quote
    archs = SM_BASE_ARCHS
    loop_archs = [a for a in archs if a != "vanilla"]
    args = [
        f"--task {q(wildcards.task)} --train {q(task['train'])} --dev {q(task['dev'])}",
        f"--test {q(task['test'])}",
        f"--src-field {q(task.get('src_field', 'src'))}",
        f"--trg-field {q(task.get('trg_field', 'trg'))}",
    ]
    for s in LOOP_SPLITS:
        args.append(f"--memory-{s} {base}/memory/bm25/{s}.txt")
        args.append(f"--hits-{s} {base}/memory/bm25/{s}.hits.jsonl")
    for a in archs:
        dev, test = (
            _sm_seed_files(a, f"{base}/hypotheses/{{a}}/{s}.txt") for s in LOOP_SPLITS
        )
        args.append(f"--row {q(f'{_sm_row_label(a)}|generator|{dev}|{test}')}")
    for a in loop_archs:
        for kind, label in (
            ("empty", f"{a} + empty memory|diagnostic"),
            ("reference", f"{a} + reference as memory (ORACLE)|oracle"),
        ):
            dev, test = (
                _sm_seed_files(a, f"{base}/diagnostics/{{a}}/{s}.{kind}.txt")
                for s in LOOP_SPLITS
            )
            args.append(f"--row {q(f'{label}|{dev}|{test}')}")
        for v in SM_LOOP["run_variants"]:
            its = range(1, SM_LOOP["iterations"] + 1)
            dev, test = (
                _sm_seed_files(
                    a,
                    ",".join(
                        f"{base}/{{a}}/{v}/iter{k}/hypotheses.{s}.txt" for k in its
                    ),
                )
                for s in LOOP_SPLITS
            )
            kind = "oracle" if SM_VARIANTS[v]["select"] == "oracle" else "loop"
            label = f"{a} {v}" + (" (ORACLE selection)" if kind == "oracle" else "")
            if SM_LOOP["iterations"]:
                args.append(f"--loop {q(f'{label}|{kind}|{dev}|{test}')}")
    if "vanilla" in archs:
        args.append(f"--vanilla {q(_sm_row_label('vanilla'))}")
    ref = loop_archs[0] if loop_archs else archs[0]
    args.append(f"--reference {q(_sm_row_label(ref))}")
    args.append(
        f"--metrics {'bleu,chrf' if task.get('metric', 'bleu') == 'bleu' else 'rouge'}"
    )
    args.append(
        f"--resamples {SM['compare']['resamples']} --seed {SM['compare']['seed']}"
    )
    return " ".join(args)


def selfmem_compare_targets():
    if not SM_ARCHS:
        return []
    return [
        f"results/selfmem/{task}/report/comparison.{ext}"
        for task in SM_RUN
        for ext in ("json", "csv", "html")
    ]
