# Selfmem part 1: retrieval (BM25) memory -> tokenizer -> retrieval-augmented generator (per arch) ->
# beam candidates, final hypotheses and scores. One `{task}` per entry of selfmem.tasks; the
# embedded default `tm_ende` reads the en-de translation memory in results/data/tm/.
# Training checkpoints live in results/selfmem/<task>/work/<arch>/ (not declared outputs), so a
# rerun resumes (changed settings start over).
include: "selfmem_common.smk"


rule selfmem_memory:
    """Retrieval memory (BM25; backend bm25s or elasticsearch): the target side of each
    example's best training hit (self excluded)."""
    input:
        code_of("relift.selfmem.memory"),
        train=sm_split("train"),
        dev=sm_split("dev"),
        test=sm_split("test"),
    output:
        memories=expand("results/selfmem/{{task}}/memory/{split}.txt", split=SPLITS),
        hits=expand("results/selfmem/{{task}}/memory/{split}.hits.jsonl", split=SPLITS),
    log:
        "results/logs/selfmem/{task}/memory.log",
    benchmark:
        "results/benchmarks/selfmem/{task}/memory.tsv"
    wildcard_constraints:
        task=SELFMEM_TASK_RE,
    conda:
        "../../envs/relift.yaml"
    threads: config["threads"]
    params:
        out_dir="results/selfmem/{task}/memory",
        src_field=sm_opt("src_field"),
        trg_field=sm_opt("trg_field"),
        # selfmem.memory as one JSON value; --task names the Elasticsearch index
        settings=settings_json(SELFMEM["memory"]),
    shell:
        "python -m relift.selfmem.memory --train {input.train:q} --query train={input.train:q}"
        " --query dev={input.dev:q} --query test={input.test:q}"
        " --src-field {params.src_field:q} --trg-field {params.trg_field:q}"
        " --settings {params.settings:q} --task {wildcards.task:q} --threads {threads}"
        " --out-dir {params.out_dir:q} > {log:q} 2>&1"


rule selfmem_match:
    """Each example's fuzzy match with its top-1 memory (the memory's source against the
    example's source): the memory recipe's threshold and marker, the switch and the bands.
    """
    input:
        code_of("relift.selfmem.match"),
        train=sm_split("train"),
        data=lambda wc: SELFMEM_TASKS[wc.task][wc.split],
        hits="results/selfmem/{task}/memory/{split}.hits.jsonl",
    output:
        "results/selfmem/{task}/memory/{split}.match.txt",
    log:
        "results/logs/selfmem/{task}/match_{split}.log",
    wildcard_constraints:
        task=SELFMEM_TASK_RE,
        split="train|dev|test",
    conda:
        "../../envs/relift.yaml"
    params:
        src_field=sm_opt("src_field"),
        trg_field=sm_opt("trg_field"),
    shell:
        "python -m relift.selfmem.match --train {input.train:q} --data {input.data:q}"
        " --hits {input.hits:q} --src-field {params.src_field:q}"
        " --trg-field {params.trg_field:q} --output {output:q} > {log:q} 2>&1"


rule selfmem_memory_source:
    """The source of each example's top-1 memory, one per line (the memory_source recipe reads
    it before the memory's target)."""
    input:
        code_of("relift.selfmem.match"),
        train=sm_split("train"),
        data=lambda wc: SELFMEM_TASKS[wc.task][wc.split],
        hits="results/selfmem/{task}/memory/{split}.hits.jsonl",
    output:
        "results/selfmem/{task}/memory/{split}.source.txt",
    log:
        "results/logs/selfmem/{task}/memory_source_{split}.log",
    wildcard_constraints:
        task=SELFMEM_TASK_RE,
        split="train|dev|test",
    conda:
        "../../envs/relift.yaml"
    params:
        src_field=sm_opt("src_field"),
        trg_field=sm_opt("trg_field"),
    shell:
        "python -m relift.selfmem.match --sources --train {input.train:q}"
        " --data {input.data:q} --hits {input.hits:q} --src-field {params.src_field:q}"
        " --trg-field {params.trg_field:q} --output {output:q} > {log:q} 2>&1"


rule selfmem_tokenizer:
    """Joint byte-level BPE over both sides of the training split (or a pretrained copy)."""
    input:
        code_of("relift.selfmem.generator.tokenizer"),
        train=sm_split("train"),
    output:
        directory("results/selfmem/{task}/tokenizer"),
    log:
        "results/logs/selfmem/{task}/tokenizer.log",
    wildcard_constraints:
        task=SELFMEM_TASK_RE,
    conda:
        "../../envs/relift.yaml"
    threads: config["threads"]
    params:
        source=lambda wc, input: (
            sm_flag("--pretrained", SELFMEM["tokenizer"]["pretrained"])
            or sm_flag("--train", input.train)
        ),
        src_field=sm_opt("src_field"),
        trg_field=sm_opt("trg_field"),
        vocab_size=SELFMEM["tokenizer"]["vocab_size"],
        min_frequency=SELFMEM["tokenizer"]["min_frequency"],
    shell:
        "RAYON_NUM_THREADS={threads} python -m relift.selfmem.generator.tokenizer {params.source}"
        " --src-field {params.src_field:q} --trg-field {params.trg_field:q}"
        " --vocab-size {params.vocab_size} --min-frequency {params.min_frequency}"
        " --output {output:q} > {log:q} 2>&1"


rule selfmem_train_generator:
    """Retrieval-augmented generator (vanilla/joint/dual), best checkpoint by dev score."""
    input:
        code_of("relift.selfmem.generator.train"),
        train=sm_split("train"),
        dev=sm_split("dev"),
        train_memory="results/selfmem/{task}/memory/train.txt",
        dev_memory="results/selfmem/{task}/memory/dev.txt",
        train_hits="results/selfmem/{task}/memory/train.hits.jsonl",
        train_match="results/selfmem/{task}/memory/train.match.txt",
        dev_match="results/selfmem/{task}/memory/dev.match.txt",
        train_memory_sources=sm_memory_sources("train"),
        dev_memory_sources=sm_memory_sources("dev"),
        tokenizer="results/selfmem/{task}/tokenizer",
        init=sm_warm_start,
    output:
        directory("results/selfmem/{task}/generator/{arch}"),
    log:
        "results/logs/selfmem/{task}/train_generator_{arch}.log",
    benchmark:
        "results/benchmarks/selfmem/{task}/train_generator_{arch}.tsv"
    wildcard_constraints:
        task=SELFMEM_TASK_RE,
        arch=SELFMEM_ARCH_RE,
    conda:
        "../../envs/relift.yaml"
    threads: config["threads"]
    resources:
        gpu=SELFMEM_GENERATOR["gpus"],
        mem_mb=lambda wc, attempt: 4000 * attempt,
    params:
        work="results/selfmem/{task}/work/{arch}",
        memory=sm_memory_flags,
        init=lambda wc, input: sm_flag("--init-generator", input.init),
        src_field=sm_opt("src_field"),
        trg_field=sm_opt("trg_field"),
        metric=sm_opt("metric"),
        # the whole section as one value: a changed setting reruns the job
        settings=sm_generator_settings,
        seed=sm_seed,
        arch=sm_model_arch,
        device=config["device"],
    shell:
        "python -m relift.selfmem.generator.train --train {input.train:q} --dev {input.dev:q}"
        " {params.memory} --src-field {params.src_field:q} --trg-field {params.trg_field:q}"
        " --tokenizer {input.tokenizer:q} --train-hits {input.train_hits:q}"
        " --train-match {input.train_match:q} --dev-match {input.dev_match:q} {params.init}"
        " --arch {params.arch} --eval-metric {params.metric} --settings {params.settings:q}"
        " --seed {params.seed} --device {params.device} --threads {threads}"
        " --no-progress --no-keep-checkpoints"
        " --work-dir {params.work:q} --output {output:q} > {log:q} 2>&1"


rule selfmem_candidates:
    """Beam candidates (num_return_sequences per input) with BM25 memory; the final hypotheses
    (selfmem_hypotheses) and the selector's training pools are the same job with other beams.
    """
    input:
        code_of("relift.selfmem.generator.candidates"),
        generator="results/selfmem/{task}/generator/{arch}",
        data=lambda wc: SELFMEM_TASKS[wc.task][wc.split],
        memory="results/selfmem/{task}/memory/{split}.txt",
        match="results/selfmem/{task}/memory/{split}.match.txt",
        memory_sources=sm_memory_sources("{split}"),
    output:
        jsonl="results/selfmem/{task}/candidates/{arch}/{split}.jsonl",
        txt="results/selfmem/{task}/candidates/{arch}/{split}.txt",
    log:
        "results/logs/selfmem/{task}/candidates_{arch}_{split}.log",
    benchmark:
        "results/benchmarks/selfmem/{task}/candidates_{arch}_{split}.tsv"
    wildcard_constraints:
        task=SELFMEM_TASK_RE,
        arch=SELFMEM_ARCH_RE,
        split="train|dev|test",
    conda:
        "../../envs/relift.yaml"
    threads: config["threads"]
    resources:
        gpu=SELFMEM_CANDIDATES["gpus"],
        mem_mb=lambda wc, attempt: 4000 * attempt,
    params:
        src_field=sm_opt("src_field"),
        trg_field=sm_opt("trg_field"),
        # selfmem.candidates as one JSON value (splits and gpus are the workflow's keys)
        settings=settings_json(SELFMEM_CANDIDATES, drop=CANDIDATES_WORKFLOW_KEYS),
        device=config["device"],
        memory_sources=sm_memory_sources_flag,
    shell:
        "python -m relift.selfmem.generator.candidates --generator {input.generator:q}"
        " --data {input.data:q} --memory {input.memory:q} --match {input.match:q}"
        " {params.memory_sources}"
        " --src-field {params.src_field:q} --trg-field {params.trg_field:q}"
        " --settings {params.settings:q} --device {params.device} --threads {threads}"
        " --output-jsonl {output.jsonl:q} --output-txt {output.txt:q} > {log:q} 2>&1"


use rule selfmem_candidates as selfmem_hypotheses with:
    output:
        jsonl="results/selfmem/{task}/hypotheses/{arch}/{split}.jsonl",
        txt="results/selfmem/{task}/hypotheses/{arch}/{split}.txt",
    log:
        "results/logs/selfmem/{task}/hypotheses_{arch}_{split}.log",
    benchmark:
        "results/benchmarks/selfmem/{task}/hypotheses_{arch}_{split}.tsv"
    params:
        # selfmem.hypotheses' beam and batch size; one hypothesis per input, every example
        settings=settings_json(
            {
                "num_beams": SELFMEM_HYPOTHESES["num_beams"],
                "num_return_sequences": 1,
                "batch_size": SELFMEM_HYPOTHESES["batch_size"],
                "max_examples": 0,
            }
        ),


rule selfmem_score:
    """Corpus scores of the hypotheses (BLEU/chrF++/TER, or ROUGE for summarisation)."""
    input:
        code_of("relift.cli"),
        hyp="results/selfmem/{task}/hypotheses/{arch}/{split}.txt",
        ref=lambda wc: SELFMEM_TASKS[wc.task][wc.split],
    output:
        "results/selfmem/{task}/scores/{arch}/{split}.json",
    log:
        "results/logs/selfmem/{task}/score_{arch}_{split}.log",
    wildcard_constraints:
        task=SELFMEM_TASK_RE,
        arch=SELFMEM_ARCH_RE,
        split="train|dev|test",
    conda:
        "../../envs/relift.yaml"
    params:
        ref_field=sm_opt("trg_field"),
        metrics=sm_metrics,
    shell:
        "python -m relift.cli score --hyp {input.hyp:q} --ref {input.ref:q}"
        " --ref-field {params.ref_field:q} --metrics {params.metrics}"
        " --output {output:q} > {log:q} 2>&1"


use rule selfmem_score as selfmem_memory_score with:
    input:
        code_of("relift.cli"),
        hyp="results/selfmem/{task}/memory/{split}.txt",
        ref=lambda wc: SELFMEM_TASKS[wc.task][wc.split],
    output:
        "results/selfmem/{task}/scores/bm25_memory/{split}.json",
    log:
        "results/logs/selfmem/{task}/score_bm25_memory_{split}.log",
    wildcard_constraints:
        task=SELFMEM_TASK_RE,
        split="train|dev|test",
