# ReGPT model: stage 1 (in-batch negatives) -> stage 2 (hard negatives), a token-level baseline
# trained on as many tokens, full-table evaluation, generation and a report.
# Checkpoints live in results/regpt/<run>.ckpt/ (not declared outputs), so a rerun resumes.


include: "regpt_model_common.smk"


rule regpt_stage1:
    """ReGPT stage 1: a fresh decoder trained with in-batch negatives."""
    input:
        code(
            "regpt/train.py",
            "regpt/model.py",
            "regpt/losses.py",
            "regpt/data.py",
            "regpt/evaluate.py",
            "train/loop.py",
        ),
        train="results/regpt/data/train",
        dev="results/regpt/data/dev",
        tokenizer="results/regpt/tokenizer",
        embeddings="results/regpt/phrases_embeddings.npy",
        neg_ids="results/regpt/negatives_ids.npy",
        neg_scores="results/regpt/negatives_scores.npy",
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
        gpu=RG["stage1"]["gpus"],
        mem_mb=lambda wc, attempt: 6000 * attempt,
    params:
        work="results/regpt/stage1.ckpt",
        model=model_flags(),
        max_len=RM["max_len"],
        batch_size=RG["stage1"]["batch_size"],
        negatives=RG["stage1"]["negatives"],
        threshold=RG["stage1"]["threshold"],
        temperature=RG["stage1"]["temperature"],
        contrastive=contrastive_flags("stage1"),
        phrase_bias="--phrase-bias" if RM["phrase_bias"] else "--no-phrase-bias",
        dev_chunks=RG["stage1"]["dev_chunks"],
        max_train_chunks=RG["stage1"]["max_train_chunks"],
        loop=loop_flags("stage1"),
        device=config["device"],
    shell:
        "python -m relift.launch --gpus {resources.gpu} -- relift.regpt.train --stage 1 --tokenizer {input.tokenizer:q}"
        " --phrase-embeddings {input.embeddings:q} --negatives-ids {input.neg_ids:q}"
        " --negatives-scores {input.neg_scores:q} --train {input.train:q} --dev {input.dev:q}"
        " --dev-chunks {params.dev_chunks} --max-train-chunks {params.max_train_chunks}"
        " {params.model} {params.phrase_bias} --max-len {params.max_len}"
        " --batch-size {params.batch_size}"
        " --negatives {params.negatives} --threshold {params.threshold}"
        " --temperature {params.temperature} {params.contrastive} {params.loop}"
        " --device {params.device}"
        " --threads {threads} --no-progress --no-keep-checkpoints --work-dir {params.work:q} --output {output:q}"
        " > {log:q} 2>&1"


rule regpt_stage2:
    """ReGPT stage 2: continue from stage 1 with hard negatives from the pool."""
    input:
        code(
            "regpt/train.py",
            "regpt/model.py",
            "regpt/losses.py",
            "regpt/data.py",
            "regpt/evaluate.py",
            "train/loop.py",
        ),
        init="results/regpt/stage1",
        train="results/regpt/data/train",
        dev="results/regpt/data/dev",
        embeddings="results/regpt/phrases_embeddings.npy",
        neg_ids="results/regpt/negatives_ids.npy",
        neg_scores="results/regpt/negatives_scores.npy",
    output:
        directory("results/regpt/stage2"),
    log:
        "results/logs/regpt/stage2.log",
    benchmark:
        "results/benchmarks/regpt/stage2.tsv"
    conda:
        "../../envs/relift.yaml"
    threads: config["threads"]
    resources:
        gpu=RG["stage2"]["gpus"],
        mem_mb=lambda wc, attempt: 6000 * attempt,
    params:
        work="results/regpt/stage2.ckpt",
        max_len=RM["max_len"],
        batch_size=RG["stage2"]["batch_size"],
        negatives=RG["stage2"]["negatives"],
        in_device="--in-device" if RG["stage2"]["in_device"] else "--no-in-device",
        threshold=RG["stage2"]["threshold"],
        temperature=RG["stage2"]["temperature"],
        contrastive=contrastive_flags("stage2"),
        dev_chunks=RG["stage2"]["dev_chunks"],
        max_train_chunks=RG["stage2"]["max_train_chunks"],
        loop=loop_flags("stage2"),
        device=config["device"],
    shell:
        "python -m relift.launch --gpus {resources.gpu} -- relift.regpt.train --stage 2 --init {input.init:q}"
        " --phrase-embeddings {input.embeddings:q} --negatives-ids {input.neg_ids:q}"
        " --negatives-scores {input.neg_scores:q} --train {input.train:q} --dev {input.dev:q}"
        " --dev-chunks {params.dev_chunks} --max-train-chunks {params.max_train_chunks}"
        " --max-len {params.max_len} --batch-size {params.batch_size}"
        " --negatives {params.negatives} {params.in_device} --threshold {params.threshold}"
        " --temperature {params.temperature} {params.contrastive} {params.loop}"
        " --device {params.device}"
        " --threads {threads} --no-progress --no-keep-checkpoints --work-dir {params.work:q} --output {output:q}"
        " > {log:q} 2>&1"


rule regpt_baseline:
    """Token-level LlamaForCausalLM of the same backbone, as many training tokens as ReGPT."""
    input:
        code(
            "regpt/baseline.py",
            "regpt/token_lm.py",
            "regpt/train.py",
            "regpt/model.py",
            "regpt/data.py",
            "regpt/tokenizer.py",
            "train/loop.py",
        ),
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
        gpu=RG["baseline"]["gpus"],
        mem_mb=lambda wc, attempt: 6000 * attempt,
    params:
        work="results/regpt/baseline.ckpt",
        base=RG["tokenizer"]["base"],
        model=model_flags(),
        max_len=RM["max_len"],
        batch_size=RG["baseline"]["batch_size"],
        max_train_chunks=RG["baseline"]["max_train_chunks"],
        flags=baseline_flags(),
        loop=loop_flags("baseline"),
        device=config["device"],
    shell:
        "python -m relift.launch --gpus {resources.gpu} -- relift.regpt.baseline --base-tokenizer {params.base:q}"
        " --match-tokens {input.regpt:q}/train_info.json --train {input.train:q}"
        " --dev {input.dev:q} {params.flags}"
        " --max-train-chunks {params.max_train_chunks} {params.model}"
        " --max-len {params.max_len} --batch-size {params.batch_size} {params.loop}"
        " --device {params.device} --threads {threads} --no-progress --no-keep-checkpoints"
        " --work-dir {params.work:q} --output {output:q} > {log:q} 2>&1"


rule regpt_evaluate:
    """Held-out next-phrase accuracy (full table), exact log-likelihood and bits per byte."""
    input:
        unpack(regpt_eval_inputs),
        code(
            "regpt/evaluate.py",
            "regpt/model.py",
            "regpt/token_lm.py",
            "regpt/data.py",
            "regpt/losses.py",
            "regpt/floors.py",
        ),
        model="results/regpt/{run}",
        split=f"results/regpt/data/{RG['evaluate']['split']}",
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
        gpu=RG["evaluate"]["gpus"],
        mem_mb=lambda wc, attempt: 4000 * attempt,
    params:
        flags=regpt_eval_flags,
        max_len=RM["max_len"],
        max_chunks=RG["evaluate"]["max_chunks"],
        batch_size=RG["evaluate"]["batch_size"],
        table_chunk=RG["evaluate"]["table_chunk"],
        seed=RG["evaluate"]["seed"],
        device=config["device"],
    shell:
        "python -m relift.regpt.evaluate --model {input.model:q} --split {input.split:q}"
        " {params.flags} --max-len {params.max_len}"
        " --max-chunks {params.max_chunks} --batch-size {params.batch_size}"
        " --table-chunk {params.table_chunk} --seed {params.seed} --device {params.device}"
        " --threads {threads} --output {output:q} > {log:q} 2>&1"


rule regpt_generate:
    """Continuations of held-out prompts by the stage-2 model and by the token LM (same settings,
    KV-cached; ReGPT scores the whole table): speed, diversity, cross-scored bits per byte.
    """
    input:
        code(
            "regpt/generate.py",
            "regpt/model.py",
            "regpt/token_lm.py",
            "regpt/data.py",
            "regpt/evaluate.py",
        ),
        model="results/regpt/stage2",
        baseline="results/regpt/baseline",
        embeddings="results/regpt/phrases_embeddings.npy",
        split=f"results/regpt/data/{RG['evaluate']['split']}",
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
        gpu=RG["generate"]["gpus"],
    params:
        num_prompts=RG["generate"]["num_prompts"],
        prompt_words=RG["generate"]["prompt_words"],
        max_new=RG["generate"]["max_new"],
        max_bytes=RG["generate"]["max_bytes"],
        strategy=RG["generate"]["strategy"],
        temperature=RG["generate"]["temperature"],
        top_k=RG["generate"]["top_k"],
        top_p=RG["generate"]["top_p"],
        seed=RG["generate"]["seed"],
        device=config["device"],
    shell:
        "python -m relift.regpt.generate --model {input.model:q}"
        " --phrase-embeddings {input.embeddings:q} --from-split {input.split:q}"
        " --num-prompts {params.num_prompts} --prompt-words {params.prompt_words}"
        " --max-new {params.max_new} --max-bytes {params.max_bytes} --strategy {params.strategy}"
        " --temperature {params.temperature} --top-k {params.top_k} --top-p {params.top_p}"
        " --seed {params.seed} --device {params.device} --threads {threads}"
        " --baseline {input.baseline:q} --baseline-output {output.baseline_samples:q}"
        " --metrics {output.metrics:q} --side-by-side {output.side:q}"
        " --output {output.samples:q} > {log:q} 2>&1"


rule regpt_report:
    """Evaluation table with the n-gram floors, loss curves, and dev learning curves (bits per
    byte against training seconds and bytes) of stage 1, stage 2 and the baseline."""
    input:
        code("regpt/report.py"),
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
            if RG["evaluate"]["floors"]
            else ""
        ),
        budgets=" ".join(f"--budget {b}" for b in RG["evaluate"]["budgets"]),
    shell:
        "python -m relift.regpt.report"
        " --eval stage1={input.evals[0]:q} --eval stage2={input.evals[1]:q}"
        " --eval baseline={input.evals[2]:q} --run stage1={input.runs[0]:q}"
        " --run stage2={input.runs[1]:q} --run baseline={input.runs[2]:q} {params.floors}"
        " --table {output.table:q} --curves {output.curves:q}"
        " --learning-curves {output.learning:q} --curves-csv {output.learning_csv:q}"
        " {params.budgets} --equal-compute {output.equal:q}"
        " > {log:q} 2>&1"
