# relift: retrieval-augmented text generation (ReGPT, Selfmem) as one Snakemake workflow.
#
#   snakemake --profile profiles/local                  # the embedded default (config.yaml)
#   snakemake --profile profiles/local --configfile config/paper-regpt.yaml
#   snakemake --profile profiles/slurm                  # on a SLURM cluster
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/regpt_phrases.smk"


rule all:
    input:
        all_targets(),
    default_target: True
