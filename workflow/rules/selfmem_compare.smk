# Selfmem reports: the loop's scores per iteration, the memory-use diagnostics and the one
# comparison table per task (results/selfmem/<task>/report/).


include: "selfmem_compare_common.smk"
# the report's landing page and figures (they read the comparison tables)
include: "report.smk"


rule selfmem_loop_report:
    """Per task: scores per iteration (BM25 memory, self memory, Top-B, augment, ORACLE)."""
    input:
        code_of("relift.selfmem.evaluation.report"),
        sm_loop_report_inputs,
    output:
        table=report(
            "results/selfmem/{task}/report/loop_scores.csv",
            caption="../report/selfmem_loop_scores.rst",
            category="Selfmem",
        ),
        html=report(
            "results/selfmem/{task}/report/loop_report.html",
            caption="../report/selfmem_loop_report.rst",
            category="Selfmem",
        ),
        plot=report(
            "results/selfmem/{task}/report/loop_bleu.png",
            caption="../report/selfmem_loop_plot.rst",
            category="Selfmem",
        ),
    log:
        "results/logs/selfmem/{task}/loop_report.log",
    wildcard_constraints:
        task=SELFMEM_TASK_RE,
    conda:
        "../../envs/relift.yaml"
    params:
        archs=" ".join(LOOP_ARCHS),
        variants=" ".join(
            "{}={}:{}:{}".format(
                n,
                SELFMEM_VARIANTS[n]["select"],
                SELFMEM_VARIANTS[n]["beam_b"],
                SELFMEM_VARIANTS[n]["memory_mode"],
            )
            for n in SELFMEM_LOOP["run_variants"]
        ),
        iterations=SELFMEM_LOOP["iterations"],
        metric=sm_opt("metric"),
    shell:
        "python -m relift.selfmem.evaluation.report --root results/selfmem/{wildcards.task:q}"
        " --task {wildcards.task:q} --archs {params.archs} --variants {params.variants}"
        " --iterations {params.iterations} --metric {params.metric}"
        " --output-csv {output.table:q} --output-html {output.html:q}"
        " --output-png {output.plot:q} > {log:q} 2>&1"


rule selfmem_memory_use:
    """Does the generator read its memory? Decodes with the empty memory and with the
    reference as memory (ORACLE: a diagnostic, never a result)."""
    input:
        code_of("relift.selfmem.evaluation.compare"),
        generator="results/selfmem/{task}/generator/{arch}",
        data=lambda wc: SELFMEM_TASKS[wc.task][wc.split],
    output:
        empty="results/selfmem/{task}/diagnostics/{arch}/{split}.empty.txt",
        reference="results/selfmem/{task}/diagnostics/{arch}/{split}.reference.txt",
    log:
        "results/logs/selfmem/{task}/memory_use_{arch}_{split}.log",
    benchmark:
        "results/benchmarks/selfmem/{task}/memory_use_{arch}_{split}.tsv"
    wildcard_constraints:
        task=SELFMEM_TASK_RE,
        arch=LOOP_ARCH_RE,
        split="dev|test",
    conda:
        "../../envs/relift.yaml"
    threads: config["threads"]
    resources:
        gpu=SELFMEM_CANDIDATES["gpus"],
        mem_mb=lambda wc, attempt: 4000 * attempt,
    params:
        src_field=sm_opt("src_field"),
        trg_field=sm_opt("trg_field"),
        num_beams=SELFMEM_HYPOTHESES["num_beams"],
        batch_size=SELFMEM_HYPOTHESES["batch_size"],
        device=config["device"],
    shell:
        "python -m relift.selfmem.evaluation.compare memory-use --generator {input.generator:q}"
        " --data {input.data:q} --src-field {params.src_field:q}"
        " --trg-field {params.trg_field:q} --num-beams {params.num_beams}"
        " --batch-size {params.batch_size} --device {params.device} --threads {threads}"
        " --out-empty {output.empty:q} --out-reference {output.reference:q} > {log:q} 2>&1"


rule selfmem_compare:
    """One table per task: baselines (memory copy, fuzzy-match switch), generators, memory-use
    diagnostics and loop variants, with collapse flags and paired-bootstrap p-values."""
    input:
        unpack(sm_compare_inputs),
        code_of("relift.selfmem.evaluation.compare"),
    output:
        json="results/selfmem/{task}/report/comparison.json",
        csv=report(
            "results/selfmem/{task}/report/comparison.csv",
            caption="../report/selfmem_comparison.rst",
            category="Selfmem",
        ),
        html=report(
            "results/selfmem/{task}/report/comparison.html",
            caption="../report/selfmem_comparison.rst",
            category="Selfmem",
        ),
    log:
        "results/logs/selfmem/{task}/compare.log",
    wildcard_constraints:
        task=SELFMEM_TASK_RE,
    conda:
        "../../envs/relift.yaml"
    params:
        args=sm_compare_args,
        # selfmem.compare (the bootstrap's resamples and seed) as one JSON value
        settings=settings_json(SELFMEM["compare"]),
    shell:
        "python -m relift.selfmem.evaluation.compare table {params.args}"
        " --settings {params.settings:q} --output-json {output.json:q} --output-csv {output.csv:q}"
        " --output-html {output.html:q} > {log:q} 2>&1"
