# The report's landing page (what this run shows, generated from its numbers; the workflow
# description, workflow/report/workflow.rst, includes it) and the figures it and the report show.


include: "report_common.smk"


rule selfmem_figures:
    """Per task: the rows as bars with the copy and switch lines, rows x fuzzy-match bands, and
    the generators' dev learning curves."""
    input:
        code_of("relift.selfmem.evaluation.figures"),
        comparison="results/selfmem/{task}/report/comparison.json",
        generators=report_selfmem_generators,
    output:
        bars=report(
            "results/selfmem/{task}/report/bleu_bars.png",
            caption="../report/selfmem_bars.rst",
            category="Selfmem",
        ),
        bands=report(
            "results/selfmem/{task}/report/bleu_bands.png",
            caption="../report/selfmem_bands.rst",
            category="Selfmem",
        ),
        curves=report(
            "results/selfmem/{task}/report/learning_curves.png",
            caption="../report/selfmem_learning_curves.rst",
            category="Selfmem",
        ),
    log:
        "results/logs/selfmem/{task}/figures.log",
    wildcard_constraints:
        task=SELFMEM_TASK_RE,
    conda:
        "../../envs/relift.yaml"
    params:
        generators=report_selfmem_generator_args,
        metric=sm_opt("metric"),
    shell:
        "python -m relift.selfmem.evaluation.figures --comparison {input.comparison:q}"
        " {params.generators} --metric {params.metric}"
        " --bars {output.bars:q} --bands {output.bands:q} --curves {output.curves:q}"
        " > {log:q} 2>&1"


rule regpt_dev_curves:
    """ReGPT and the token LM: dev bits per byte during training, with the n-gram floors."""
    input:
        code_of("relift.report.regpt"),
        table="results/regpt/eval_table.csv",
        curves="results/regpt/learning_curves.csv",
    output:
        report(
            "results/regpt/dev_curves.png",
            caption="../report/regpt_dev_curves.rst",
            category="ReGPT",
        ),
    log:
        "results/logs/regpt/dev_curves.log",
    conda:
        "../../envs/relift.yaml"
    shell:
        "python -m relift.report.regpt --table {input.table:q} --curves {input.curves:q}"
        " --output {output:q} > {log:q} 2>&1"


rule report_landing:
    """What this run shows: one line per system, the headline tables and the main figures."""
    input:
        unpack(report_landing_inputs),
        code_of("relift.report.landing"),
    output:
        report(
            "results/report/landing.html",
            caption="../report/landing.rst",
            category="Overview",
        ),
    log:
        "results/logs/report/landing.log",
    conda:
        "../../envs/relift.yaml"
    params:
        selfmem=report_landing_args,
    shell:
        "python -m relift.report.landing {params.selfmem}"
        " --regpt-table {input.regpt_table:q} --regpt-equal {input.regpt_equal:q}"
        " --regpt-curves {input.regpt_curves:q} --output {output:q} > {log:q} 2>&1"
