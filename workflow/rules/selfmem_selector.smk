# Selfmem part 2, the memory selector: its training pools, an optional from-scratch encoder,
# the cross-encoder itself and its scores of iteration 0's pools.
#
#   results/selfmem/<task>/<arch>/selector/        training pools, model, BM25-pool scores
include: "selfmem_loop_common.smk"


use rule selfmem_candidates as selfmem_selector_train_candidates with:
    input:
        code_of("relift.selfmem.generator.candidates"),
        generator="results/selfmem/{task}/generator/{arch}",
        data=sm_split("train"),
        memory="results/selfmem/{task}/memory/train.txt",
        match="results/selfmem/{task}/memory/train.match.txt",
        memory_sources=sm_memory_sources("train"),
    output:
        jsonl=f"{SELECTOR_DIR}/train_candidates.jsonl",
        txt=f"{SELECTOR_DIR}/train_candidates.txt",
    log:
        "results/logs/selfmem/{task}/selector_train_candidates_{arch}.log",
    benchmark:
        "results/benchmarks/selfmem/{task}/selector_train_candidates_{arch}.tsv"
    wildcard_constraints:
        task=SELFMEM_TASK_RE,
        arch=LOOP_ARCH_RE,
    params:
        # the selector's training pools: selfmem.selector's train_* keys, candidates' batch size
        settings=settings_json(
            {
                "num_beams": SELFMEM_SELECTOR["train_num_beams"],
                "num_return_sequences": SELFMEM_SELECTOR["train_num_return_sequences"],
                "max_examples": SELFMEM_SELECTOR["train_examples"],
                "batch_size": SELFMEM_CANDIDATES["batch_size"],
            }
        ),


rule selfmem_selector_scratch_encoder:
    """selector.encoder scratch: a randomly initialised encoder over the task's tokenizer."""
    input:
        code_of("relift.selfmem.selector.scratch_encoder"),
        tokenizer="results/selfmem/{task}/tokenizer",
    output:
        directory("results/selfmem/{task}/selector_encoder/scratch.s{seed}"),
    log:
        "results/logs/selfmem/{task}/selector_scratch_encoder_s{seed}.log",
    wildcard_constraints:
        task=SELFMEM_TASK_RE,
        seed="[0-9]+",
    conda:
        "../../envs/relift.yaml"
    params:
        settings=SCRATCH_ENCODER_SETTINGS,
    shell:
        "python -m relift.selfmem.selector.scratch_encoder --tokenizer {input.tokenizer:q}"
        " --settings {params.settings:q} --seed {wildcards.seed} --output {output:q}"
        " > {log:q} 2>&1"


rule selfmem_selector_train:
    """Cross-encoder selector, KL to softmax(minmax(Δ)/τ); best by dev selection BLEU."""
    input:
        code_of("relift.selfmem.selector.cli"),
        train=sm_split("train"),
        train_candidates=f"{SELECTOR_DIR}/train_candidates.jsonl",
        dev=sm_split("dev"),
        dev_candidates="results/selfmem/{task}/candidates/{arch}/dev.jsonl",
        encoder=sm_selector_encoder_input,
    output:
        directory(f"{SELECTOR_DIR}/model"),
    log:
        "results/logs/selfmem/{task}/selector_train_{arch}.log",
    benchmark:
        "results/benchmarks/selfmem/{task}/selector_train_{arch}.tsv"
    wildcard_constraints:
        task=SELFMEM_TASK_RE,
        arch=LOOP_ARCH_RE,
    conda:
        "../../envs/relift.yaml"
    threads: config["threads"]
    resources:
        gpu=SELFMEM_SELECTOR["gpus"],
        mem_mb=lambda wc, attempt: 4000 * attempt,
    params:
        work="results/selfmem/{task}/work/selector_{arch}",
        src_field=sm_opt("src_field"),
        trg_field=sm_opt("trg_field"),
        metric=sm_opt("metric"),
        # the selfmem.selector section as one value: a changed setting reruns the job
        settings=SELECTOR_SETTINGS,
        encoder=sm_selector_encoder,
        dev_pool_size=SELFMEM_LOOP["num_return_sequences"],
        seed=sm_seed,
        device=config["device"],
    shell:
        "python -m relift.selfmem.selector.cli train --train-data {input.train:q}"
        " --train-candidates {input.train_candidates:q} --dev-data {input.dev:q}"
        " --dev-candidates {input.dev_candidates:q}"
        " --src-field {params.src_field:q} --trg-field {params.trg_field:q}"
        " --metric {params.metric} --settings {params.settings:q} {params.encoder}"
        " --dev-pool-size {params.dev_pool_size} --seed {params.seed}"
        " --device {params.device} --threads {threads} --no-progress --no-keep-checkpoints"
        " --work-dir {params.work:q} --output {output:q} > {log:q} 2>&1"


rule selfmem_selector_bm25_pools:
    """Selector scores of iteration 0's pools (part 1's candidates), shared by the variants."""
    input:
        code_of("relift.selfmem.selector.cli"),
        selector=f"{SELECTOR_DIR}/model",
        data=sm_loop_data,
        candidates=sm_loop_splits(
            "results/selfmem/{task}/candidates/{arch}/{split}.jsonl"
        ),
    output:
        sm_loop_splits("bm25_pool_scores.{split}.jsonl", SELECTOR_DIR),
    log:
        "results/logs/selfmem/{task}/selector_bm25_pools_{arch}.log",
    benchmark:
        "results/benchmarks/selfmem/{task}/selector_bm25_pools_{arch}.tsv"
    wildcard_constraints:
        task=SELFMEM_TASK_RE,
        arch=LOOP_ARCH_RE,
    conda:
        "../../envs/relift.yaml"
    threads: config["threads"]
    resources:
        gpu=SELFMEM_SELECTOR["gpus"],
        mem_mb=lambda wc, attempt: 3000 * attempt,
    params:
        files=sm_split_args(
            data="input.data", candidates="input.candidates", output="output"
        ),
        src_field=sm_opt("src_field"),
        trg_field=sm_opt("trg_field"),
        pool_size=SELFMEM_LOOP["num_return_sequences"],
        settings=SELECTOR_SETTINGS,
        device=config["device"],
    shell:
        "python -m relift.selfmem.selector.cli score --selector {input.selector:q} {params.files}"
        " --pool-size {params.pool_size}"
        " --src-field {params.src_field:q} --trg-field {params.trg_field:q}"
        " --settings {params.settings:q} --device {params.device} --threads {threads}"
        " > {log:q} 2>&1"


use rule selfmem_selector_bm25_pools as selfmem_loop_selector_scores with:
    input:
        code_of("relift.selfmem.selector.cli"),
        selector=f"{SELECTOR_DIR}/model",
        data=sm_loop_data,
        candidates=sm_loop_splits("candidates.{split}.jsonl", SLOT),
    output:
        sm_loop_splits("cand_scores.{split}.jsonl", SLOT),
    log:
        "results/logs/selfmem/{task}/loop_{arch}_{variant}_iter{k}_beam{beam}_scores.log",
    benchmark:
        "results/benchmarks/selfmem/{task}/loop_{arch}_{variant}_iter{k}_beam{beam}_scores.tsv"
    wildcard_constraints:
        task=SELFMEM_TASK_RE,
        arch=LOOP_ARCH_RE,
        variant=SELECTOR_VARIANT_RE,
        k=K_POS,
        beam="[0-9]+",
    params:
        # iteration k's pools hold exactly loop.num_return_sequences candidates
        pool_size=0,
