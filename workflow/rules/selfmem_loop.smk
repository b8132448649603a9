# Selfmem part 2: the self-memory loop (paper Algorithm 1) as DAG iterations, with Top-B memory
# beams, augmented memory and an ORACLE bound (the selector: selfmem_selector.smk).
#
#   results/selfmem/<task>/<arch>/<variant>/iter<k>/   (ITER; beam<b>/ is SLOT)
#       beams.<split>.jsonl, memory.<split>.txt    memory of iteration k (B slots / the best)
#       beam<b>/candidates.<split>.jsonl           G(x, memory of slot b): the next pool
#       beam<b>/cand_scores.<split>.jsonl          selector (or ORACLE) scores of that pool
#       hypotheses.<split>.txt                     G(x, best memory), final beam
#       scores.<split>.json, memory_scores.<split>.json
#
# Iteration 0 is the BM25 memory (part 1's memory, candidates and hypotheses). Iteration k >= 1
# reads iteration k-1 only (sm_loop_prev), so raising selfmem.loop.iterations adds the new
# iterations' jobs and nothing else. The generator stays frozen throughout. Each path is
# written once: as a named input or output, which sm_split_args turns into the CLI's
# `--flag split=path` arguments.


rule selfmem_loop_iter0:
    """Iteration 0 = the BM25 memory: part 1's memory, candidate pool and hypotheses."""
    input:
        code_of("relift.selfmem.loop.run"),
        data=sm_loop_data,
        memory=sm_loop_splits("results/selfmem/{task}/memory/{split}.txt"),
        candidates=sm_loop_splits(
            "results/selfmem/{task}/candidates/{arch}/{split}.jsonl"
        ),
        hypotheses=sm_loop_splits(
            "results/selfmem/{task}/hypotheses/{arch}/{split}.txt"
        ),
    output:
        beams=sm_loop_splits("beams.{split}.jsonl", ITER0),
        memory=sm_loop_splits("memory.{split}.txt", ITER0),
        candidates=sm_loop_splits("beam0/candidates.{split}.jsonl", ITER0),
        hypotheses=sm_loop_splits("hypotheses.{split}.txt", ITER0),
    log:
        "results/logs/selfmem/{task}/loop_{arch}_{variant}_iter0.log",
    wildcard_constraints:
        task=SELFMEM_TASK_RE,
        arch=LOOP_ARCH_RE,
        variant=_sm_alternatives(SELFMEM_VARIANTS),
    conda:
        "../../envs/relift.yaml"
    params:
        files=sm_split_args(
            data="input.data",
            memory="input.memory",
            candidates="input.candidates",
            hypotheses="input.hypotheses",
        ),
        pool_size=SELFMEM_LOOP["num_return_sequences"],
        out_dir=ITER0,
        src_field=sm_opt("src_field"),
        trg_field=sm_opt("trg_field"),
    shell:
        "python -m relift.selfmem.loop.run iter0 {params.files} --pool-size {params.pool_size}"
        " --src-field {params.src_field:q} --trg-field {params.trg_field:q}"
        " --out-dir {params.out_dir:q} > {log:q} 2>&1"


rule selfmem_loop_select:
    """Memory of iteration k: Top-B over iteration k-1's scored pools (replace or augment)."""
    input:
        unpack(sm_loop_prev),
        code_of("relift.selfmem.loop.run"),
    output:
        beams=sm_loop_splits("beams.{split}.jsonl", ITER),
        memory=sm_loop_splits("memory.{split}.txt", ITER),
    log:
        "results/logs/selfmem/{task}/loop_{arch}_{variant}_iter{k}_select.log",
    wildcard_constraints:
        task=SELFMEM_TASK_RE,
        arch=LOOP_ARCH_RE,
        variant=_sm_alternatives(SELFMEM_VARIANTS),
        k=K_POS,
    conda:
        "../../envs/relift.yaml"
    params:
        inputs=sm_loop_select_flags,
        beam_b=lambda wc: SELFMEM_VARIANTS[wc.variant]["beam_b"],
        mode=lambda wc: SELFMEM_VARIANTS[wc.variant]["memory_mode"],
        outputs=sm_split_args(out_beams="output.beams", out_memory="output.memory"),
    shell:
        "python -m relift.selfmem.loop.run select {params.inputs} --beam-b {params.beam_b}"
        " --memory-mode {params.mode} {params.outputs} > {log:q} 2>&1"


rule selfmem_loop_candidates:
    """Candidate pool of beam slot b: G(x, memory of slot b), beam N returning K (one job per
    slot: the B slots of an iteration run in parallel on a cluster)."""
    input:
        code_of("relift.selfmem.loop.run"),
        generator="results/selfmem/{task}/generator/{arch}",
        data=sm_loop_data,
        match=sm_loop_match,
        beams=sm_loop_splits("beams.{split}.jsonl", ITER),
    output:
        sm_loop_splits("candidates.{split}.jsonl", SLOT),
    log:
        "results/logs/selfmem/{task}/loop_{arch}_{variant}_iter{k}_beam{beam}_candidates.log",
    benchmark:
        "results/benchmarks/selfmem/{task}/loop_{arch}_{variant}_iter{k}_beam{beam}_candidates.tsv"
    wildcard_constraints:
        task=SELFMEM_TASK_RE,
        arch=LOOP_ARCH_RE,
        variant=_sm_alternatives(SELFMEM_VARIANTS),
        k=K_POS,
        beam="[0-9]+",
    conda:
        "../../envs/relift.yaml"
    threads: config["threads"]
    resources:
        gpu=SELFMEM_CANDIDATES["gpus"],
        mem_mb=lambda wc, attempt: 4000 * attempt,
    params:
        data=sm_split_args(data="input.data", match="input.match"),
        beams=sm_split_args(beams="input.beams"),
        outputs=sm_split_args(output_jsonl="output"),
        src_field=sm_opt("src_field"),
        trg_field=sm_opt("trg_field"),
        # the pool's beam (selfmem.loop) and candidates' batch size as one JSON value
        settings=settings_json(
            {
                "num_beams": SELFMEM_LOOP["num_beams"],
                "num_return_sequences": SELFMEM_LOOP["num_return_sequences"],
                "batch_size": SELFMEM_CANDIDATES["batch_size"],
            }
        ),
        device=config["device"],
    shell:
        "python -m relift.selfmem.loop.run generate --generator {input.generator:q} {params.data}"
        " {params.beams} --slot {wildcards.beam} {params.outputs}"
        " --src-field {params.src_field:q} --trg-field {params.trg_field:q}"
        " --settings {params.settings:q} --device {params.device} --threads {threads}"
        " > {log:q} 2>&1"


rule selfmem_loop_oracle_scores:
    """ORACLE scores of a pool: sentence BLEU (ROUGE mix) against the REFERENCE (the ceiling a
    selector could reach; only the oracle variants use them)."""
    input:
        code_of("relift.selfmem.loop.run"),
        data=sm_loop_data,
        candidates=sm_loop_splits("candidates.{split}.jsonl", SLOT),
    output:
        sm_loop_splits("cand_scores.{split}.jsonl", SLOT),
    log:
        "results/logs/selfmem/{task}/loop_{arch}_{variant}_iter{k}_beam{beam}_oracle.log",
    wildcard_constraints:
        task=SELFMEM_TASK_RE,
        arch=LOOP_ARCH_RE,
        variant=ORACLE_VARIANT_RE,
        k="[0-9]+",
        beam="[0-9]+",
    conda:
        "../../envs/relift.yaml"
    params:
        files=sm_split_args(
            data="input.data", candidates="input.candidates", output="output"
        ),
        src_field=sm_opt("src_field"),
        trg_field=sm_opt("trg_field"),
        metric=sm_opt("metric"),
    shell:
        "python -m relift.selfmem.loop.run oracle-scores {params.files} --metric {params.metric}"
        " --src-field {params.src_field:q} --trg-field {params.trg_field:q} > {log:q} 2>&1"


rule selfmem_loop_hypotheses:
    """Hypotheses of iteration k: G(x, best memory) with the final beam, one returned. When the
    pools are decoded with the final beam (loop.num_beams = hypotheses.num_beams, the default),
    that beam search already ran for slot 0 (the best memory): its best candidate IS the
    hypothesis and is taken from the pool instead of decoding a second time."""
    input:
        unpack(sm_loop_hyp_inputs),
        code_of("relift.selfmem.loop.run"),
    output:
        sm_loop_splits("hypotheses.{split}.txt", ITER),
    log:
        "results/logs/selfmem/{task}/loop_{arch}_{variant}_iter{k}_hypotheses.log",
    benchmark:
        "results/benchmarks/selfmem/{task}/loop_{arch}_{variant}_iter{k}_hypotheses.tsv"
    wildcard_constraints:
        task=SELFMEM_TASK_RE,
        arch=LOOP_ARCH_RE,
        variant=_sm_alternatives(SELFMEM_VARIANTS),
        k=K_POS,
    conda:
        "../../envs/relift.yaml"
    threads: 1 if LOOP_HYP_FROM_POOL else config["threads"]
    resources:
        gpu=0 if LOOP_HYP_FROM_POOL else SELFMEM_CANDIDATES["gpus"],
        mem_mb=lambda wc, attempt: 4000 * attempt,
    params:
        args=sm_loop_hyp_args,
    shell:
        "python -m relift.selfmem.loop.run {params.args} > {log:q} 2>&1"


rule selfmem_loop_score:
    """Dev and test scores of iteration k: the hypotheses and the memory itself."""
    input:
        code_of("relift.selfmem.loop.run"),
        data=sm_loop_data,
        hyp=sm_loop_splits("hypotheses.{split}.txt", ITER),
        memory=sm_loop_splits("memory.{split}.txt", ITER),
    output:
        hyp=sm_loop_splits("scores.{split}.json", ITER),
        memory=sm_loop_splits("memory_scores.{split}.json", ITER),
    log:
        "results/logs/selfmem/{task}/loop_{arch}_{variant}_iter{k}_score.log",
    wildcard_constraints:
        task=SELFMEM_TASK_RE,
        arch=LOOP_ARCH_RE,
        variant=_sm_alternatives(SELFMEM_VARIANTS),
        k="[0-9]+",
    conda:
        "../../envs/relift.yaml"
    params:
        files=sm_split_args(
            data="input.data",
            hyp="input.hyp",
            memory="input.memory",
            out_hyp="output.hyp",
            out_memory="output.memory",
        ),
        src_field=sm_opt("src_field"),
        trg_field=sm_opt("trg_field"),
        metrics=sm_metrics,
    shell:
        "python -m relift.selfmem.loop.run score {params.files} --metrics {params.metrics}"
        " --src-field {params.src_field:q} --trg-field {params.trg_field:q} > {log:q} 2>&1"
