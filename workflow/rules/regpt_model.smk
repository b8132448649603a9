# ReGPT model: stage 1 (in-batch negatives) -> stage 2 (hard negatives), a token-level baseline
# trained on as many tokens, full-table evaluation, generation and a report.
# Checkpoints live in results/regpt/<run>.ckpt/ (not declared outputs), so a rerun resumes.


include: "regpt_model_common.smk"


rule regpt_stage1:
    """ReGPT stage 1: a fresh decoder trained with in-batch negatives. Stage 2 (below) is this
    rule from the stage-1 model; the settings come as one JSON of regpt.model + the stage's
    section (relift.regpt.settings and relift.train.TrainConfig read it: regpt_json)."""
    input:
        **regpt_stage_inputs(start="results/regpt/tokenizer"),
    output:
        directory("results/regpt/stage1"),
    log:
        "results/logs/regpt/stage1.log",
    benchmark:
        "results/benchmarks/regpt/stage1.tsv"
    conda:
        "../../envs/relift.yaml"
    threads: config["threads"]
    resources:
        gpu=REGPT["stage1"]["gpus"],
        mem_mb=lambda wc, attempt: 6000 * attempt,
    params:
        start="--stage 1 --tokenizer",
        settings=regpt_json("stage1", model=True),
        work=lambda wc, output: f"{output[0]}.ckpt",
        device=config["device"],
    shell:
        "python -m relift.launch --gpus {resources.gpu} -- relift.regpt.train"
        " {params.start} {input.start:q} --phrase-embeddings {input.embeddings:q}"
        " --negatives-ids {input.neg_ids:q} --negatives-scores {input.neg_scores:q}"
        " --train {input.train:q} --dev {input.dev:q} --settings {params.settings:q}"
        " --device {params.device} --threads {threads} --no-progress --no-keep-checkpoints"
        " --work-dir {params.work:q} --output {output:q} > {log:q} 2>&1"


use rule regpt_stage1 as regpt_stage2 with:
    input:
        **regpt_stage_inputs(start="results/regpt/stage1"),
    output:
        directory("results/regpt/stage2"),
    log:
        "results/logs/regpt/stage2.log",
    benchmark:
        "results/benchmarks/regpt/stage2.tsv"
    resources:
        gpu=REGPT["stage2"]["gpus"],
        mem_mb=lambda wc, attempt: 6000 * attempt,
    params:
        start="--stage 2 --init",
        settings=regpt_json("stage2", model=True),


rule regpt_baseline:
    """Token-level LlamaForCausalLM of the same backbone, as many training tokens as ReGPT."""
    input:
        code_of("relift.launch", "relift.regpt.baseline"),
        train="results/regpt/data/train",
        dev="results/regpt/data/dev",
        regpt="results/regpt/stage2",
    output:
        directory("results/regpt/baseline"),
    log:
        "results/logs/regpt/baseline.log",
    benchmark:
        "results/benchmarks/regpt/baseline.tsv"
    conda:
        "../../envs/relift.yaml"
    threads: config["threads"]
    resources:
        gpu=REGPT["baseline"]["gpus"],
        mem_mb=lambda wc, attempt: 6000 * attempt,
    params:
        base=REGPT["tokenizer"]["base"],
        settings=regpt_json("baseline", model=True),
        work=lambda wc, output: f"{output[0]}.ckpt",
        device=config["device"],
    shell:
        "python -m relift.launch --gpus {resources.gpu} -- relift.regpt.baseline"
        " --base-tokenizer {params.base:q} --match-tokens {input.regpt:q}/train_info.json"
        " --train {input.train:q} --dev {input.dev:q} --settings {params.settings:q}"
        " --device {params.device} --threads {threads} --no-progress --no-keep-checkpoints"
        " --work-dir {params.work:q} --output {output:q} > {log:q} 2>&1"


rule regpt_evaluate:
    """Held-out next-phrase accuracy (full table), exact log-likelihood and bits per byte."""
    input:
        unpack(regpt_eval_inputs),
        code_of("relift.regpt.evaluate"),
        model="results/regpt/{run}",
        split=f"results/regpt/data/{REGPT['evaluate']['split']}",
        train="results/regpt/data/train",
        dev="results/regpt/data/dev",
    output:
        "results/regpt/eval/{run}.json",
    log:
        "results/logs/regpt/evaluate_{run}.log",
    benchmark:
        "results/benchmarks/regpt/evaluate_{run}.tsv"
    wildcard_constraints:
        run="stage1|stage2|baseline",
    conda:
        "../../envs/relift.yaml"
    threads: config["threads"]
    resources:
        gpu=REGPT["evaluate"]["gpus"],
        mem_mb=lambda wc, attempt: 4000 * attempt,
    params:
        flags=regpt_eval_flags,
        # regpt.evaluate with the window length and the in-batch reference loss's guard
        settings=regpt_json(
            "evaluate",
            max_len=REGPT_MODEL["max_len"],
            threshold=REGPT["stage1"]["threshold"],
        ),
        device=config["device"],
    shell:
        "python -m relift.regpt.evaluate --model {input.model:q} --split {input.split:q}"
        " {params.flags} --settings {params.settings:q} --device {params.device}"
        " --threads {threads} --output {output:q} > {log:q} 2>&1"


rule regpt_generate:
    """Continuations of held-out prompts by the stage-2 model and by the token LM (same settings,
    KV-cached; ReGPT scores the whole table): speed, diversity, cross-scored bits per byte.
    """
    input:
        code_of("relift.regpt.generate"),
        model="results/regpt/stage2",
        baseline="results/regpt/baseline",
        embeddings="results/regpt/phrases_embeddings.npy",
        split=f"results/regpt/data/{REGPT['evaluate']['split']}",
    output:
        samples="results/regpt/samples.jsonl",
        baseline_samples="results/regpt/samples_baseline.jsonl",
        metrics=report(
            "results/regpt/generation.json",
            caption="../report/regpt_generation.rst",
            category="ReGPT",
        ),
        side=report(
            "results/regpt/samples_side_by_side.csv",
            caption="../report/regpt_samples.rst",
            category="ReGPT",
        ),
    log:
        "results/logs/regpt/generate.log",
    conda:
        "../../envs/relift.yaml"
    threads: config["threads"]
    resources:
        gpu=REGPT["generate"]["gpus"],
    params:
        settings=regpt_json("generate"),
        device=config["device"],
    shell:
        "python -m relift.regpt.generate --model {input.model:q}"
        " --phrase-embeddings {input.embeddings:q} --from-split {input.split:q}"
        " --settings {params.settings:q} --device {params.device} --threads {threads}"
        " --baseline {input.baseline:q} --baseline-output {output.baseline_samples:q}"
        " --metrics {output.metrics:q} --side-by-side {output.side:q}"
        " --output {output.samples:q} > {log:q} 2>&1"


rule regpt_report:
    """Evaluation table with the n-gram floors, loss curves, and dev learning curves (bits per
    byte against training seconds and bytes) of stage 1, stage 2 and the baseline."""
    input:
        code_of("relift.regpt.report"),
        evals=expand(
            "results/regpt/eval/{run}.json", run=["stage1", "stage2", "baseline"]
        ),
        runs=expand("results/regpt/{run}", run=["stage1", "stage2", "baseline"]),
    output:
        table=report(
            "results/regpt/eval_table.csv",
            caption="../report/regpt_eval_table.rst",
            category="ReGPT",
        ),
        curves=report(
            "results/regpt/loss_curves.png",
            caption="../report/regpt_loss_curves.rst",
            category="ReGPT",
        ),
        learning=report(
            "results/regpt/learning_curves.html",
            caption="../report/regpt_learning_curves.rst",
            category="ReGPT",
        ),
        learning_csv="results/regpt/learning_curves.csv",
        equal=report(
            "results/regpt/equal_compute.csv",
            caption="../report/regpt_equal_compute.rst",
            category="ReGPT",
        ),
    log:
        "results/logs/regpt/report.log",
    conda:
        "../../envs/relift.yaml"
    params:
        floors=(
            "--floors-of stage2 --floors-of baseline"
            if REGPT["evaluate"]["floors"]
            else ""
        ),
        budgets=" ".join(f"--budget {b}" for b in REGPT["evaluate"]["budgets"]),
    shell:
        "python -m relift.regpt.report"
        " --eval stage1={input.evals[0]:q} --eval stage2={input.evals[1]:q}"
        " --eval baseline={input.evals[2]:q} --run stage1={input.runs[0]:q}"
        " --run stage2={input.runs[1]:q} --run baseline={input.runs[2]:q} {params.floors}"
        " --table {output.table:q} --curves {output.curves:q}"
        " --learning-curves {output.learning:q} --curves-csv {output.learning_csv:q}"
        " {params.budgets} --equal-compute {output.equal:q}"
        " > {log:q} 2>&1"
