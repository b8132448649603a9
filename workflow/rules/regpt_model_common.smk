# Helpers of workflow/rules/regpt_model.smk (config sections -> settings JSON and flags, targets).
REGPT_MODEL = REGPT["model"]


def regpt_stage_inputs(start):
    """Inputs of a ReGPT training stage; ``start``: the tokenizer (stage 1) or the stage-1 model."""
    return {
        "code": code_of("relift.launch", "relift.regpt.train"),
        "start": start,
        "train": "results/regpt/data/train",
        "dev": "results/regpt/data/dev",
        "embeddings": "results/regpt/phrases_embeddings.npy",
        "neg_ids": "results/regpt/negatives_ids.npy",
        "neg_scores": "results/regpt/negatives_scores.npy",
    }


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
    if REGPT["evaluate"]["floors"] and wildcards.run != "stage1":
        floors = f"--floors-train {input.train} --floors-dev {input.dev} "
    if wildcards.run == "baseline":
        return floors
    return floors + (
        f"--phrase-embeddings {input.embeddings} --negatives-ids {input.neg_ids}"
        f" --negatives-scores {input.neg_scores}"
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
