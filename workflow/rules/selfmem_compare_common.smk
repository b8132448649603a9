# Helper functions of selfmem_compare.smk: the rows of the comparison table.


def _sm_row_label(arch):
    if arch == "control":
        return "vanilla continued, no memory (equal-compute control)"
    return "vanilla (no memory)" if arch == "vanilla" else f"{arch} + BM25 memory"


def sm_compare_inputs(wildcards):
    base = f"results/selfmem/{wildcards.task}"
    task = SELFMEM_TASKS[wildcards.task]
    out = {
        "data": [task[s] for s in LOOP_SPLITS],
        "memory": [
            f"{base}/memory/{s}.{x}" for s in LOOP_SPLITS for x in ("txt", "match.txt")
        ],
        "hyps": [
            f"{base}/hypotheses/{a}/{s}.txt" for a in SELFMEM_ARCHS for s in LOOP_SPLITS
        ],
        "generators": [f"{base}/generator/{a}" for a in SELFMEM_ARCHS],
        "diag": [
            f"{base}/diagnostics/{a}/{s}.{kind}.txt"
            for a in LOOP_ARCHS
            for s in LOOP_SPLITS
            for kind in ("empty", "reference")
        ],
        "loop": [
            f"{base}/{a}/{v}/iter{k}/hypotheses.{s}.txt"
            for a in LOOP_ARCHS
            for v in SELFMEM_LOOP["run_variants"]
            for k in range(1, SELFMEM_LOOP["iterations"] + 1)
            for s in LOOP_SPLITS
        ],
    }
    return out


def _sm_seed_files(arch, pattern):
    """`pattern` ({a}: the arch name of a seed) for every seed of `arch`, ';'-joined."""
    return ";".join(pattern.format(a=sm_seeded(arch, seed)) for seed in SELFMEM_SEEDS)


def sm_compare_args(wildcards):
    """Rows of the comparison table (see relift.selfmem.evaluation.compare); a row's files hold one
    alternative per seed (';'-separated), a loop row's one iteration list per seed."""
    base = f"results/selfmem/{wildcards.task}"
    task = SELFMEM_TASKS[wildcards.task]
    q = shlex.quote
    archs = SELFMEM_BASE_ARCHS
    loop_archs = [a for a in archs if a not in NO_MEMORY_ARCHS]
    args = [
        f"--task {q(wildcards.task)} --dev {q(task['dev'])}",
        f"--test {q(task['test'])}",
        f"--src-field {q(task.get('src_field', 'src'))}",
        f"--trg-field {q(task.get('trg_field', 'trg'))}",
    ]
    for s in LOOP_SPLITS:
        args.append(f"--memory-{s} {base}/memory/{s}.txt")
        args.append(f"--match-{s} {base}/memory/{s}.match.txt")
    for a in archs:
        dev, test = (
            _sm_seed_files(a, f"{base}/hypotheses/{{a}}/{s}.txt") for s in LOOP_SPLITS
        )
        info = _sm_seed_files(a, f"{base}/generator/{{a}}/train_result.json")
        args.append(f"--row {q(f'{_sm_row_label(a)}|generator|{dev}|{test}|{info}')}")
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
        for v in SELFMEM_LOOP["run_variants"]:
            its = range(1, SELFMEM_LOOP["iterations"] + 1)
            dev, test = (
                _sm_seed_files(
                    a,
                    ",".join(
                        f"{base}/{{a}}/{v}/iter{k}/hypotheses.{s}.txt" for k in its
                    ),
                )
                for s in LOOP_SPLITS
            )
            kind = "oracle" if SELFMEM_VARIANTS[v]["select"] == "oracle" else "loop"
            label = f"{a} {v}" + (" (ORACLE selection)" if kind == "oracle" else "")
            if SELFMEM_LOOP["iterations"]:
                args.append(f"--loop {q(f'{label}|{kind}|{dev}|{test}')}")
    if "vanilla" in archs:
        args.append(f"--vanilla {q(_sm_row_label('vanilla'))}")
    if (
        "control" in archs
    ):  # the equal-compute control: tested against, overall and per band
        args.append(f"--against {q(_sm_row_label('control'))}")
    ref = loop_archs[0] if loop_archs else archs[0]
    args.append(f"--reference {q(_sm_row_label(ref))}")
    args.append(
        f"--metrics {'bleu,chrf' if task.get('metric', 'bleu') == 'bleu' else 'rouge'}"
    )
    return " ".join(args)


def selfmem_compare_targets():
    if not SELFMEM_ARCHS:
        return []
    return [
        f"results/selfmem/{task}/report/comparison.{ext}"
        for task in SELFMEM_RUN_TASKS
        for ext in ("json", "csv", "html")
    ]
