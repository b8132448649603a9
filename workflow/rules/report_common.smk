# Helpers of report.smk: the report's landing page and figures.


def report_selfmem_tasks():
    """The Selfmem tasks with a comparison table in this run."""
    return SELFMEM_RUN_TASKS if SELFMEM_ARCHS else []


def report_selfmem_generators(wildcards):
    return [f"results/selfmem/{wildcards.task}/generator/{a}" for a in SELFMEM_ARCHS]


def report_selfmem_generator_args(wildcards, input):
    return " ".join(
        f"--generator {shlex.quote(f'{a}={g}')}"
        for a, g in zip(SELFMEM_ARCHS, input.generators)
    )


def report_landing_inputs(wildcards):
    tasks = report_selfmem_tasks()
    return {
        "comparisons": [f"results/selfmem/{t}/report/comparison.json" for t in tasks],
        "bars": [f"results/selfmem/{t}/report/bleu_bars.png" for t in tasks],
        "regpt_table": "results/regpt/eval_table.csv",
        "regpt_equal": "results/regpt/equal_compute.csv",
        "regpt_curves": "results/regpt/dev_curves.png",
    }


def report_landing_args(wildcards, input):
    tasks = report_selfmem_tasks()
    q = shlex.quote
    args = [f"--selfmem {q(f'{t}={p}')}" for t, p in zip(tasks, input.comparisons)]
    args += [f"--selfmem-bars {q(f'{t}={p}')}" for t, p in zip(tasks, input.bars)]
    return " ".join(args)


def report_targets():
    """The landing page (which reads every figure below) and the figures."""
    figures = [
        f"results/selfmem/{t}/report/{name}.png"
        for t in report_selfmem_tasks()
        for name in ("bleu_bars", "bleu_bands", "learning_curves")
    ]
    return ["results/report/landing.html", "results/regpt/dev_curves.png"] + figures
