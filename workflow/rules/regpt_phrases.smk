# ReGPT phrase table: corpus -> phrase tokenizer -> phrases.npy -> embeddings -> negatives.


rule regpt_preprocess:
    """Sentence chunks of at most max_words words, length-sorted Arrow dataset per split."""
    input:
        code_of("relift.regpt.preprocess"),
        corpus=lm_split,
    output:
        directory("results/regpt/data/{split}"),
    log:
        "results/logs/regpt/preprocess_{split}.log",
    wildcard_constraints:
        split="train|dev|test",
    conda:
        "../../envs/relift.yaml"
    params:
        fmt=lm_format(),
        text_field=LM_DATA["files"]["text_field"],
        settings=regpt_json("preprocess"),
        flags=lm_cleanup_flags(),
    shell:
        "python -m relift.regpt.preprocess --input {input.corpus:q} --format {params.fmt:q}"
        " --text-field {params.text_field:q} --settings {params.settings:q}{params.flags}"
        " --output {output:q} > {log:q} 2>&1"


rule regpt_tokenizer:
    """Retrain a Llama-family tokenizer into a phrase tokenizer (BPE across words)."""
    input:
        code_of("relift.regpt.tokenizer"),
        train="results/regpt/data/train",
    output:
        directory("results/regpt/tokenizer"),
    log:
        "results/logs/regpt/tokenizer.log",
    benchmark:
        "results/benchmarks/regpt/tokenizer.tsv"
    conda:
        "../../envs/relift.yaml"
    threads: config["threads"]
    params:
        settings=regpt_json("tokenizer"),
    shell:
        "RAYON_NUM_THREADS={threads} python -m relift.regpt.tokenizer --train {input.train:q}"
        " --settings {params.settings:q} --output {output:q} > {log:q} 2>&1"


rule regpt_phrases:
    """phrases.npy: entry i is the text of phrase id i."""
    input:
        code_of("relift.regpt.phrases"),
        tokenizer="results/regpt/tokenizer",
    output:
        "results/regpt/phrases.npy",
    log:
        "results/logs/regpt/phrases.log",
    conda:
        "../../envs/relift.yaml"
    shell:
        "python -m relift.regpt.phrases --tokenizer {input.tokenizer:q} --output {output:q}"
        " > {log:q} 2>&1"


rule regpt_embeddings:
    """Raw and L2-normalised phrase embeddings from a mean-pooled encoder."""
    input:
        code_of("relift.regpt.embed"),
        phrases="results/regpt/phrases.npy",
    output:
        raw="results/regpt/phrases_embeddings.npy",
        normalized="results/regpt/phrases_embeddings_normalized.npy",
    log:
        "results/logs/regpt/embeddings.log",
    benchmark:
        "results/benchmarks/regpt/embeddings.tsv"
    conda:
        "../../envs/relift.yaml"
    threads: config["threads"]
    resources:
        gpu=REGPT["embeddings"]["gpus"],
        mem_mb=lambda wc, attempt: 4000 * attempt,
    params:
        settings=regpt_json("embeddings"),
        device=config["device"],
    shell:
        "python -m relift.regpt.embed --phrases {input.phrases:q} --settings {params.settings:q}"
        " --device {params.device:q} --threads {threads}"
        " --output {output.raw:q} --output-normalized {output.normalized:q} > {log:q} 2>&1"


rule regpt_negatives:
    """Hard-negative pool: exact top-depth cosine neighbours of every phrase (itself included)."""
    input:
        code_of("relift.regpt.negatives"),
        embeddings="results/regpt/phrases_embeddings_normalized.npy",
        phrases="results/regpt/phrases.npy",
    output:
        tsv="results/regpt/negatives.tsv",
        ids="results/regpt/negatives_ids.npy",
        scores="results/regpt/negatives_scores.npy",
    log:
        "results/logs/regpt/negatives.log",
    benchmark:
        "results/benchmarks/regpt/negatives.tsv"
    conda:
        "../../envs/relift.yaml"
    threads: config["threads"]
    resources:
        gpu=REGPT["negatives"]["gpus"],
        mem_mb=lambda wc, attempt: 4000 * attempt,
    params:
        settings=regpt_json("negatives"),
    shell:
        "python -m relift.regpt.negatives --embeddings {input.embeddings:q}"
        " --phrases {input.phrases:q} --settings {params.settings:q} --threads {threads} --output {output.tsv:q} --output-ids {output.ids:q}"
        " --output-scores {output.scores:q} > {log:q} 2>&1"
