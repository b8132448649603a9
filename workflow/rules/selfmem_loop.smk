# Selfmem part 2: the memory selector and the self-memory loop (paper Algorithm 1) as DAG
# iterations, with Top-B memory beams, augmented memory and an ORACLE bound.
#
#   results/selfmem/<task>/<arch>/selector/        selector training pools, model, BM25-pool scores
#   results/selfmem/<task>/<arch>/<variant>/iter<k>/
#       beams.<split>.jsonl, memory.<split>.txt    memory of iteration k (B slots / the best)
#       beam<b>/candidates.<split>.jsonl           G(x, memory of slot b): the next pool
#       beam<b>/cand_scores.<split>.jsonl          selector (or ORACLE) scores of that pool
#       hypotheses.<split>.txt                     G(x, best memory), final beam
#       scores.<split>.json, memory_scores.<split>.json
#   results/selfmem/<task>/report/loop_*           table (CSV/HTML) and plot
#
# Iteration 0 is the BM25 memory (part 1's memory, candidates and hypotheses). Iteration k >= 1
# reads iteration k-1 only (sm_loop_prev), so raising selfmem.loop.iterations adds the new
# iterations' jobs and nothing else. The generator stays frozen throughout.
include: "selfmem_loop_common.smk"


rule selfmem_selector_train_candidates:
    """Selector training pools: candidates of the first N TRAINING inputs with BM25 memory."""
    input:
        code("selfmem/candidates.py", "selfmem/model.py", "selfmem/data.py"),
        generator="results/selfmem/{task}/generator/{arch}",
        data=sm_split("train"),
        memory="results/selfmem/{task}/memory/bm25/train.txt",
    output:
        jsonl="results/selfmem/{task}/{arch}/selector/train_candidates.jsonl",
        txt="results/selfmem/{task}/{arch}/selector/train_candidates.txt",
    log:
        "results/logs/selfmem/{task}/selector_train_candidates_{arch}.log",
    benchmark:
        "results/benchmarks/selfmem/{task}/selector_train_candidates_{arch}.tsv"
    wildcard_constraints:
        task=SM_TASK_RE,
        arch=LOOP_ARCH_RE,
    conda:
        "../../envs/relift.yaml"
    threads: config["threads"]
    resources:
        gpu=SM_CAND["gpus"],
        mem_mb=lambda wc, attempt: 4000 * attempt,
    params:
        src_field=sm_opt("src_field"),
        trg_field=sm_opt("trg_field"),
        num_beams=SM_SEL["train_num_beams"],
        num_return=SM_SEL["train_num_return_sequences"],
        batch_size=SM_CAND["batch_size"],
        max_examples=SM_SEL["train_examples"],
        device=config["device"],
    shell:
        "python -m relift.selfmem.candidates --generator {input.generator:q}"
        " --data {input.data:q} --memory {input.memory:q}"
        " --src-field {params.src_field:q} --trg-field {params.trg_field:q}"
        " --num-beams {params.num_beams} --num-return-sequences {params.num_return}"
        " --batch-size {params.batch_size} --max-examples {params.max_examples}"
        " --device {params.device} --threads {threads}"
        " --output-jsonl {output.jsonl:q} --output-txt {output.txt:q} > {log:q} 2>&1"


rule selfmem_selector_scratch_encoder:
    """selector.encoder scratch: a randomly initialised encoder over the task's tokenizer."""
    input:
        code("selfmem/scratch_encoder.py", "selfmem/tokenizer.py"),
        tokenizer="results/selfmem/{task}/tokenizer",
    output:
        directory("results/selfmem/{task}/selector_encoder/scratch.s{seed}"),
    log:
        "results/logs/selfmem/{task}/selector_scratch_encoder_s{seed}.log",
    wildcard_constraints:
        task=SM_TASK_RE,
        seed="[0-9]+",
    conda:
        "../../envs/relift.yaml"
    params:
        hidden=SM_SEL["scratch"]["hidden"],
        layers=SM_SEL["layers"],
        heads=SM_SEL["scratch"]["heads"],
        intermediate=SM_SEL["scratch"]["intermediate"],
        max_positions=SM_SEL["max_length"],
    shell:
        "python -m relift.selfmem.scratch_encoder --tokenizer {input.tokenizer:q}"
        " --hidden {params.hidden} --layers {params.layers} --heads {params.heads}"
        " --intermediate {params.intermediate} --max-positions {params.max_positions}"
        " --seed {wildcards.seed} --output {output:q} > {log:q} 2>&1"


rule selfmem_selector_train:
    """Cross-encoder selector, KL to softmax(minmax(Δ)/τ); best by dev selection BLEU."""
    input:
        code(*SELECTOR_CODE, "train/loop.py", "score.py"),
        train=sm_split("train"),
        train_candidates="results/selfmem/{task}/{arch}/selector/train_candidates.jsonl",
        dev=sm_split("dev"),
        dev_candidates="results/selfmem/{task}/candidates/{arch}/dev.jsonl",
        encoder=sm_selector_encoder_input,
    output:
        directory("results/selfmem/{task}/{arch}/selector/model"),
    log:
        "results/logs/selfmem/{task}/selector_train_{arch}.log",
    benchmark:
        "results/benchmarks/selfmem/{task}/selector_train_{arch}.tsv"
    wildcard_constraints:
        task=SM_TASK_RE,
        arch=LOOP_ARCH_RE,
    conda:
        "../../envs/relift.yaml"
    threads: config["threads"]
    resources:
        gpu=SM_SEL["gpus"],
        mem_mb=lambda wc, attempt: 4000 * attempt,
    params:
        work="results/selfmem/{task}/work/selector_{arch}",
        src_field=sm_opt("src_field"),
        trg_field=sm_opt("trg_field"),
        metric=sm_opt("metric"),
        encoder=sm_selector_encoder,
        pooling=SM_SEL["pooling"],
        layers=SM_SEL["layers"],
        max_length=SM_SEL["max_length"],
        temperature=SM_SEL["temperature"],
        batch_size=SM_SEL["batch_size"],
        dev_pool_size=SM_LOOP["num_return_sequences"],
        lr=SM_SEL["lr"],
        warmup=SM_SEL["warmup_steps"],
        max_steps=SM_SEL["max_steps"],
        eval_every=SM_SEL["eval_every"],
        dev_max=SM_SEL["dev_max_examples"],
        patience=SM_SEL["patience"],
        score_batch_size=SM_SEL["score_batch_size"],
        seed=sm_seed,
        device=config["device"],
    shell:
        "python -m relift.selfmem.selector train --train-data {input.train:q}"
        " --train-candidates {input.train_candidates:q} --dev-data {input.dev:q}"
        " --dev-candidates {input.dev_candidates:q}"
        " --src-field {params.src_field:q} --trg-field {params.trg_field:q}"
        " --metric {params.metric} --encoder {params.encoder:q} --pooling {params.pooling}"
        " --layers {params.layers} --max-length {params.max_length}"
        " --temperature {params.temperature} --batch-size {params.batch_size}"
        " --dev-pool-size {params.dev_pool_size} --lr {params.lr}"
        " --warmup-steps {params.warmup}"
        " --max-steps {params.max_steps} --eval-every {params.eval_every}"
        " --save-every {params.eval_every} --dev-max-examples {params.dev_max}"
        " --patience {params.patience} --score-batch-size {params.score_batch_size}"
        " --seed {params.seed} --device {params.device} --threads {threads} --no-progress --no-keep-checkpoints"
        " --work-dir {params.work:q} --output {output:q} > {log:q} 2>&1"


rule selfmem_selector_bm25_pools:
    """Selector scores of iteration 0's pools (part 1's candidates), shared by the variants."""
    input:
        code(*SELECTOR_CODE),
        selector="results/selfmem/{task}/{arch}/selector/model",
        data=sm_loop_data,
        candidates=sm_loop_splits(
            "results/selfmem/{task}/candidates/{arch}/{split}.jsonl"
        ),
    output:
        sm_loop_splits(
            "results/selfmem/{task}/{arch}/selector/bm25_pool_scores.{split}.jsonl"
        ),
    log:
        "results/logs/selfmem/{task}/selector_bm25_pools_{arch}.log",
    benchmark:
        "results/benchmarks/selfmem/{task}/selector_bm25_pools_{arch}.tsv"
    wildcard_constraints:
        task=SM_TASK_RE,
        arch=LOOP_ARCH_RE,
    conda:
        "../../envs/relift.yaml"
    threads: config["threads"]
    resources:
        gpu=SM_SEL["gpus"],
        mem_mb=lambda wc, attempt: 3000 * attempt,
    params:
        data=sm_data_flags,
        candidates=sm_split_flags(
            "--candidates", "results/selfmem/{task}/candidates/{arch}/{split}.jsonl"
        ),
        outputs=sm_split_flags(
            "--output",
            "results/selfmem/{task}/{arch}/selector/bm25_pool_scores.{split}.jsonl",
        ),
        src_field=sm_opt("src_field"),
        trg_field=sm_opt("trg_field"),
        pool_size=SM_LOOP["num_return_sequences"],
        batch_size=SM_SEL["score_batch_size"],
        device=config["device"],
    shell:
        "python -m relift.selfmem.selector score --selector {input.selector:q} {params.data}"
        " {params.candidates} {params.outputs} --pool-size {params.pool_size}"
        " --src-field {params.src_field:q} --trg-field {params.trg_field:q}"
        " --batch-size {params.batch_size} --device {params.device} --threads {threads}"
        " > {log:q} 2>&1"


rule selfmem_loop_iter0:
    """Iteration 0 = the BM25 memory: part 1's memory, candidate pool and hypotheses."""
    input:
        code(*LOOP_CODE, "selfmem/data.py"),
        data=sm_loop_data,
        memory=sm_loop_splits("results/selfmem/{task}/memory/bm25/{split}.txt"),
        candidates=sm_loop_splits(
            "results/selfmem/{task}/candidates/{arch}/{split}.jsonl"
        ),
        hypotheses=sm_loop_splits(
            "results/selfmem/{task}/hypotheses/{arch}/{split}.txt"
        ),
    output:
        beams=sm_loop_splits(
            "results/selfmem/{task}/{arch}/{variant}/iter0/beams.{split}.jsonl"
        ),
        memory=sm_loop_splits(
            "results/selfmem/{task}/{arch}/{variant}/iter0/memory.{split}.txt"
        ),
        candidates=sm_loop_splits(
            "results/selfmem/{task}/{arch}/{variant}/iter0/beam0/candidates.{split}.jsonl"
        ),
        hypotheses=sm_loop_splits(
            "results/selfmem/{task}/{arch}/{variant}/iter0/hypotheses.{split}.txt"
        ),
    log:
        "results/logs/selfmem/{task}/loop_{arch}_{variant}_iter0.log",
    wildcard_constraints:
        task=SM_TASK_RE,
        arch=LOOP_ARCH_RE,
        variant=_sm_alternatives(SM_VARIANTS),
    conda:
        "../../envs/relift.yaml"
    params:
        data=sm_data_flags,
        memory=sm_split_flags(
            "--memory", "results/selfmem/{task}/memory/bm25/{split}.txt"
        ),
        candidates=sm_split_flags(
            "--candidates", "results/selfmem/{task}/candidates/{arch}/{split}.jsonl"
        ),
        hypotheses=sm_split_flags(
            "--hypotheses", "results/selfmem/{task}/hypotheses/{arch}/{split}.txt"
        ),
        pool_size=SM_LOOP["num_return_sequences"],
        out_dir="results/selfmem/{task}/{arch}/{variant}/iter0",
        src_field=sm_opt("src_field"),
        trg_field=sm_opt("trg_field"),
    shell:
        "python -m relift.selfmem.loop iter0 {params.data} {params.memory}"
        " {params.candidates} {params.hypotheses} --pool-size {params.pool_size}"
        " --src-field {params.src_field:q} --trg-field {params.trg_field:q}"
        " --out-dir {params.out_dir:q} > {log:q} 2>&1"


rule selfmem_loop_select:
    """Memory of iteration k: Top-B over iteration k-1's scored pools (replace or augment)."""
    input:
        unpack(sm_loop_prev),
        code(*LOOP_CODE),
    output:
        beams=sm_loop_splits(
            "results/selfmem/{task}/{arch}/{variant}/iter{k}/beams.{split}.jsonl"
        ),
        memory=sm_loop_splits(
            "results/selfmem/{task}/{arch}/{variant}/iter{k}/memory.{split}.txt"
        ),
    log:
        "results/logs/selfmem/{task}/loop_{arch}_{variant}_iter{k}_select.log",
    wildcard_constraints:
        task=SM_TASK_RE,
        arch=LOOP_ARCH_RE,
        variant=_sm_alternatives(SM_VARIANTS),
        k=K_POS,
    conda:
        "../../envs/relift.yaml"
    params:
        inputs=sm_loop_select_flags,
        beam_b=lambda wc: SM_VARIANTS[wc.variant]["beam_b"],
        mode=lambda wc: SM_VARIANTS[wc.variant]["memory_mode"],
        out_beams=sm_split_flags(
            "--out-beams",
            "results/selfmem/{task}/{arch}/{variant}/iter{k}/beams.{split}.jsonl",
        ),
        out_memory=sm_split_flags(
            "--out-memory",
            "results/selfmem/{task}/{arch}/{variant}/iter{k}/memory.{split}.txt",
        ),
    shell:
        "python -m relift.selfmem.loop select {params.inputs} --beam-b {params.beam_b}"
        " --memory-mode {params.mode} {params.out_beams} {params.out_memory} > {log:q} 2>&1"


rule selfmem_loop_candidates:
    """Candidate pool of beam slot b: G(x, memory of slot b), beam N returning K (one job per
    slot: the B slots of an iteration run in parallel on a cluster)."""
    input:
        code(*LOOP_CODE, "selfmem/candidates.py", "selfmem/model.py"),
        generator="results/selfmem/{task}/generator/{arch}",
        data=sm_loop_data,
        beams=sm_loop_splits(
            "results/selfmem/{task}/{arch}/{variant}/iter{k}/beams.{split}.jsonl"
        ),
    output:
        sm_loop_splits(
            "results/selfmem/{task}/{arch}/{variant}/iter{k}/beam{beam}/candidates.{split}.jsonl"
        ),
    log:
        "results/logs/selfmem/{task}/loop_{arch}_{variant}_iter{k}_beam{beam}_candidates.log",
    benchmark:
        "results/benchmarks/selfmem/{task}/loop_{arch}_{variant}_iter{k}_beam{beam}_candidates.tsv"
    wildcard_constraints:
        task=SM_TASK_RE,
        arch=LOOP_ARCH_RE,
        variant=_sm_alternatives(SM_VARIANTS),
        k=K_POS,
        beam="[0-9]+",
    conda:
        "../../envs/relift.yaml"
    threads: config["threads"]
    resources:
        gpu=SM_CAND["gpus"],
        mem_mb=lambda wc, attempt: 4000 * attempt,
    params:
        data=sm_data_flags,
        beams=sm_split_flags(
            "--beams",
            "results/selfmem/{task}/{arch}/{variant}/iter{k}/beams.{split}.jsonl",
        ),
        outputs=sm_split_flags(
            "--output-jsonl",
            "results/selfmem/{task}/{arch}/{variant}/iter{k}/beam{beam}/candidates.{split}.jsonl",
        ),
        src_field=sm_opt("src_field"),
        trg_field=sm_opt("trg_field"),
        num_beams=SM_LOOP["num_beams"],
        num_return=SM_LOOP["num_return_sequences"],
        batch_size=SM_CAND["batch_size"],
        device=config["device"],
    shell:
        "python -m relift.selfmem.loop generate --generator {input.generator:q} {params.data}"
        " {params.beams} --slot {wildcards.beam} {params.outputs}"
        " --src-field {params.src_field:q} --trg-field {params.trg_field:q}"
        " --num-beams {params.num_beams} --num-return-sequences {params.num_return}"
        " --batch-size {params.batch_size} --device {params.device} --threads {threads}"
        " > {log:q} 2>&1"


rule selfmem_loop_selector_scores:
    """Selector scores of a beam slot's candidate pool (iteration k >= 1)."""
    input:
        code(*SELECTOR_CODE),
        selector="results/selfmem/{task}/{arch}/selector/model",
        data=sm_loop_data,
        candidates=sm_loop_splits(
            "results/selfmem/{task}/{arch}/{variant}/iter{k}/beam{beam}/candidates.{split}.jsonl"
        ),
    output:
        sm_loop_splits(
            "results/selfmem/{task}/{arch}/{variant}/iter{k}/beam{beam}/cand_scores.{split}.jsonl"
        ),
    log:
        "results/logs/selfmem/{task}/loop_{arch}_{variant}_iter{k}_beam{beam}_scores.log",
    benchmark:
        "results/benchmarks/selfmem/{task}/loop_{arch}_{variant}_iter{k}_beam{beam}_scores.tsv"
    wildcard_constraints:
        task=SM_TASK_RE,
        arch=LOOP_ARCH_RE,
        variant=SEL_VARIANT_RE,
        k=K_POS,
        beam="[0-9]+",
    conda:
        "../../envs/relift.yaml"
    threads: config["threads"]
    resources:
        gpu=SM_SEL["gpus"],
        mem_mb=lambda wc, attempt: 3000 * attempt,
    params:
        data=sm_data_flags,
        candidates=sm_split_flags(
            "--candidates",
            "results/selfmem/{task}/{arch}/{variant}/iter{k}/beam{beam}/candidates.{split}.jsonl",
        ),
        outputs=sm_split_flags(
            "--output",
            "results/selfmem/{task}/{arch}/{variant}/iter{k}/beam{beam}/cand_scores.{split}.jsonl",
        ),
        src_field=sm_opt("src_field"),
        trg_field=sm_opt("trg_field"),
        batch_size=SM_SEL["score_batch_size"],
        device=config["device"],
    shell:
        "python -m relift.selfmem.selector score --selector {input.selector:q} {params.data}"
        " {params.candidates} {params.outputs}"
        " --src-field {params.src_field:q} --trg-field {params.trg_field:q}"
        " --batch-size {params.batch_size} --device {params.device} --threads {threads}"
        " > {log:q} 2>&1"


rule selfmem_loop_oracle_scores:
    """ORACLE scores of a pool: sentence BLEU (ROUGE mix) against the REFERENCE (the ceiling a
    selector could reach; only the oracle variants use them)."""
    input:
        code(*LOOP_CODE),
        data=sm_loop_data,
        candidates=sm_loop_splits(
            "results/selfmem/{task}/{arch}/{variant}/iter{k}/beam{beam}/candidates.{split}.jsonl"
        ),
    output:
        sm_loop_splits(
            "results/selfmem/{task}/{arch}/{variant}/iter{k}/beam{beam}/cand_scores.{split}.jsonl"
        ),
    log:
        "results/logs/selfmem/{task}/loop_{arch}_{variant}_iter{k}_beam{beam}_oracle.log",
    wildcard_constraints:
        task=SM_TASK_RE,
        arch=LOOP_ARCH_RE,
        variant=ORACLE_VARIANT_RE,
        k="[0-9]+",
        beam="[0-9]+",
    conda:
        "../../envs/relift.yaml"
    params:
        data=sm_data_flags,
        candidates=sm_split_flags(
            "--candidates",
            "results/selfmem/{task}/{arch}/{variant}/iter{k}/beam{beam}/candidates.{split}.jsonl",
        ),
        outputs=sm_split_flags(
            "--output",
            "results/selfmem/{task}/{arch}/{variant}/iter{k}/beam{beam}/cand_scores.{split}.jsonl",
        ),
        src_field=sm_opt("src_field"),
        trg_field=sm_opt("trg_field"),
        metric=sm_opt("metric"),
    shell:
        "python -m relift.selfmem.loop oracle-scores {params.data} {params.candidates}"
        " {params.outputs} --metric {params.metric}"
        " --src-field {params.src_field:q} --trg-field {params.trg_field:q} > {log:q} 2>&1"


rule selfmem_loop_hypotheses:
    """Hypotheses of iteration k: G(x, best memory) with the final beam, one returned. When the
    pools are decoded with the final beam (loop.num_beams = hypotheses.num_beams, the default),
    that beam search already ran for slot 0 (the best memory): its best candidate IS the
    hypothesis and is taken from the pool instead of decoding a second time."""
    input:
        unpack(sm_loop_hyp_inputs),
        code(*LOOP_CODE, "selfmem/candidates.py", "selfmem/model.py"),
    output:
        sm_loop_splits(
            "results/selfmem/{task}/{arch}/{variant}/iter{k}/hypotheses.{split}.txt"
        ),
    log:
        "results/logs/selfmem/{task}/loop_{arch}_{variant}_iter{k}_hypotheses.log",
    benchmark:
        "results/benchmarks/selfmem/{task}/loop_{arch}_{variant}_iter{k}_hypotheses.tsv"
    wildcard_constraints:
        task=SM_TASK_RE,
        arch=LOOP_ARCH_RE,
        variant=_sm_alternatives(SM_VARIANTS),
        k=K_POS,
    conda:
        "../../envs/relift.yaml"
    threads: 1 if LOOP_HYP_FROM_POOL else config["threads"]
    resources:
        gpu=0 if LOOP_HYP_FROM_POOL else SM_CAND["gpus"],
        mem_mb=lambda wc, attempt: 4000 * attempt,
    params:
        args=sm_loop_hyp_args,
    shell:
        "python -m relift.selfmem.loop {params.args} > {log:q} 2>&1"


rule selfmem_loop_score:
    """Dev and test scores of iteration k: the hypotheses and the memory itself."""
    input:
        code(*LOOP_CODE, "score.py"),
        data=sm_loop_data,
        hyp=sm_loop_splits(
            "results/selfmem/{task}/{arch}/{variant}/iter{k}/hypotheses.{split}.txt"
        ),
        memory=sm_loop_splits(
            "results/selfmem/{task}/{arch}/{variant}/iter{k}/memory.{split}.txt"
        ),
    output:
        hyp=sm_loop_splits(
            "results/selfmem/{task}/{arch}/{variant}/iter{k}/scores.{split}.json"
        ),
        memory=sm_loop_splits(
            "results/selfmem/{task}/{arch}/{variant}/iter{k}/memory_scores.{split}.json"
        ),
    log:
        "results/logs/selfmem/{task}/loop_{arch}_{variant}_iter{k}_score.log",
    wildcard_constraints:
        task=SM_TASK_RE,
        arch=LOOP_ARCH_RE,
        variant=_sm_alternatives(SM_VARIANTS),
        k="[0-9]+",
    conda:
        "../../envs/relift.yaml"
    params:
        data=sm_data_flags,
        hyp=sm_split_flags(
            "--hyp",
            "results/selfmem/{task}/{arch}/{variant}/iter{k}/hypotheses.{split}.txt",
        ),
        memory=sm_split_flags(
            "--memory",
            "results/selfmem/{task}/{arch}/{variant}/iter{k}/memory.{split}.txt",
        ),
        out_hyp=sm_split_flags(
            "--out-hyp",
            "results/selfmem/{task}/{arch}/{variant}/iter{k}/scores.{split}.json",
        ),
        out_memory=sm_split_flags(
            "--out-memory",
            "results/selfmem/{task}/{arch}/{variant}/iter{k}/memory_scores.{split}.json",
        ),
        src_field=sm_opt("src_field"),
        trg_field=sm_opt("trg_field"),
        metrics=sm_metrics,
    shell:
        "python -m relift.selfmem.loop score {params.data} {params.hyp} {params.memory}"
        " {params.out_hyp} {params.out_memory} --metrics {params.metrics}"
        " --src-field {params.src_field:q} --trg-field {params.trg_field:q} > {log:q} 2>&1"


rule selfmem_loop_report:
    """Per task: scores per iteration (BM25 memory, self memory, Top-B, augment, ORACLE)."""
    input:
        code("selfmem/report.py"),
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
        task=SM_TASK_RE,
    conda:
        "../../envs/relift.yaml"
    params:
        archs=" ".join(LOOP_ARCHS),
        variants=" ".join(
            "{}={}:{}:{}".format(
                n,
                SM_VARIANTS[n]["select"],
                SM_VARIANTS[n]["beam_b"],
                SM_VARIANTS[n]["memory_mode"],
            )
            for n in SM_LOOP["run_variants"]
        ),
        iterations=SM_LOOP["iterations"],
        metric=sm_opt("metric"),
    shell:
        "python -m relift.selfmem.report --root results/selfmem/{wildcards.task:q}"
        " --task {wildcards.task:q} --archs {params.archs} --variants {params.variants}"
        " --iterations {params.iterations} --metric {params.metric}"
        " --output-csv {output.table:q} --output-html {output.html:q}"
        " --output-png {output.plot:q} > {log:q} 2>&1"


rule selfmem_memory_use:
    """Does the generator read its memory? Decodes with the empty memory and with the
    reference as memory (ORACLE: a diagnostic, never a result)."""
    input:
        code("selfmem/compare.py", "selfmem/candidates.py", "selfmem/model.py"),
        generator="results/selfmem/{task}/generator/{arch}",
        data=lambda wc: SM_TASKS[wc.task][wc.split],
    output:
        empty="results/selfmem/{task}/diagnostics/{arch}/{split}.empty.txt",
        reference="results/selfmem/{task}/diagnostics/{arch}/{split}.reference.txt",
    log:
        "results/logs/selfmem/{task}/memory_use_{arch}_{split}.log",
    benchmark:
        "results/benchmarks/selfmem/{task}/memory_use_{arch}_{split}.tsv"
    wildcard_constraints:
        task=SM_TASK_RE,
        arch=LOOP_ARCH_RE,
        split="dev|test",
    conda:
        "../../envs/relift.yaml"
    threads: config["threads"]
    resources:
        gpu=SM_CAND["gpus"],
        mem_mb=lambda wc, attempt: 4000 * attempt,
    params:
        src_field=sm_opt("src_field"),
        trg_field=sm_opt("trg_field"),
        num_beams=SM_HYP["num_beams"],
        batch_size=SM_HYP["batch_size"],
        device=config["device"],
    shell:
        "python -m relift.selfmem.compare memory-use --generator {input.generator:q}"
        " --data {input.data:q} --src-field {params.src_field:q}"
        " --trg-field {params.trg_field:q} --num-beams {params.num_beams}"
        " --batch-size {params.batch_size} --device {params.device} --threads {threads}"
        " --out-empty {output.empty:q} --out-reference {output.reference:q} > {log:q} 2>&1"


rule selfmem_compare:
    """One table per task: baselines (memory copy, fuzzy-match switch), generators, memory-use
    diagnostics and loop variants, with collapse flags and paired-bootstrap p-values."""
    input:
        unpack(sm_compare_inputs),
        code("selfmem/compare.py", "score.py"),
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
        task=SM_TASK_RE,
    conda:
        "../../envs/relift.yaml"
    params:
        args=sm_compare_args,
    shell:
        "python -m relift.selfmem.compare table {params.args}"
        " --output-json {output.json:q} --output-csv {output.csv:q}"
        " --output-html {output.html:q} > {log:q} 2>&1"
