# Helpers of workflow/rules/regpt_model.smk (config sections -> command-line flags, targets).
import shlex

RM = RG["model"]

LOOP_KEYS = [
    "optimizer",
    "lr",
    "weight_decay",
    "scheduler",
    "warmup_steps",
    "min_lr_ratio",
    "grad_clip",
    "grad_accum",
    "precision",
    "seed",
    "save_every",
    "eval_every",
]


def loop_flags(section):
    """Flags of the shared training loop for one config section (every key is a param)."""
    c = RG[section]
    flags = [f"--max-steps {c['steps']}"] if "steps" in c else []
    flags += ["--" + k.replace("_", "-") + f" {c[k]}" for k in LOOP_KEYS]
    flags.append(
        "--gradient-checkpointing"
        if c["gradient_checkpointing"]
        else "--no-gradient-checkpointing"
    )
    if c["deepspeed_config"]:
        flags.append(f"--deepspeed-config {shlex.quote(c['deepspeed_config'])}")
    return " ".join(flags)


def contrastive_flags(section):
    """Candidate-set options of a ReGPT stage: the whole table, the logQ correction."""
    c = RG[section]
    return ("--full-table" if c["full_table"] else "--no-full-table") + (
        " --logq" if c["logq"] else " --no-logq"
    )


def baseline_flags():
    """Token LM: explicit steps (0 = match ReGPT's tokens), a retrained vocabulary, the output
    bias, dev curve."""
    c = RG["baseline"]
    return (
        f"--steps {c['steps']} --vocab-size {c['vocab_size']}"
        + (" --output-bias" if c["output_bias"] else " --no-output-bias")
        + f" --dev-chunks {c['dev_chunks']}"
    )


def model_flags():
    return (
        f"--hidden {RM['hidden']} --layers {RM['layers']} --heads {RM['heads']}"
        f" --intermediate {RM['intermediate']} --max-positions {RM['max_positions']}"
        + (
            f" --pretrained-decoder {shlex.quote(RM['pretrained_decoder'])}"
            if RM["pretrained_decoder"]
            else ""
        )
    )


def regpt_eval_inputs(wildcards):
    if wildcards.run == "baseline":
        return []
    return {
        "embeddings": "results/regpt/phrases_embeddings.npy",
        "neg_ids": "results/regpt/negatives_ids.npy",
        "neg_scores": "results/regpt/negatives_scores.npy",
    }


def regpt_eval_flags(wildcards, input):
    floors = ""
    # n-gram floors of each tokenization: stage 2's phrases (stage 1 has the same), the baseline's
    if RG["evaluate"]["floors"] and wildcards.run != "stage1":
        floors = f"--floors-train {input.train} --floors-dev {input.dev} "
    if wildcards.run == "baseline":
        return floors
    return floors + (
        f"--phrase-embeddings {input.embeddings} --negatives-ids {input.neg_ids}"
        f" --negatives-scores {input.neg_scores} --threshold {RG['stage1']['threshold']}"
    )


def regpt_model_targets():
    return expand(
        "results/regpt/eval/{run}.json", run=["stage1", "stage2", "baseline"]
    ) + [
        "results/regpt/samples.jsonl",
        "results/regpt/generation.json",
        "results/regpt/eval_table.csv",
        "results/regpt/loss_curves.png",
        "results/regpt/learning_curves.html",
        "results/regpt/equal_compute.csv",
    ]
