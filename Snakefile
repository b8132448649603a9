# relift: retrieval-augmented text generation (ReGPT, Selfmem) as one Snakemake workflow.
#
#   snakemake --profile profiles/local                  # the embedded default (config.yaml)
#   snakemake --profile profiles/local --configfile config/paper-regpt.yaml
#   snakemake --profile profiles/slurm                  # on a SLURM cluster
import os
import sys

from snakemake.utils import min_version, validate

min_version("9.0")

# this checkout's package, for the stdlib-only helpers the workflow shares with it
# (relift.config_checks, relift.settings, relift.codedeps)
sys.path.insert(0, os.path.join(workflow.basedir, "src"))
from relift.config_checks import validate as validate_across_keys


# the embedded default, found next to this file whatever the working directory; overlays given
# with --configfile are merged on top of it
configfile: os.path.join(workflow.basedir, "config.yaml")


# an overlay removes a task of the default's map by setting it to null (`tm_ende: null`)
config["selfmem"]["tasks"] = {
    name: task for name, task in config["selfmem"]["tasks"].items() if task is not None
}


# each key's type and range (the schema holds no defaults: every value is config.yaml's or an
# overlay's), then every check that relates several keys
validate(
    config,
    os.path.join(workflow.basedir, "workflow/schemas/config.schema.yaml"),
    set_default=False,
)
validate_across_keys(config)


envvars:
    "PATH",


# `snakemake --report` opens on what the run shows (results/report/landing.html, built from the
# run's numbers by rule report_landing)
report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/regpt_phrases.smk"
include: "workflow/rules/regpt_model.smk"
include: "workflow/rules/selfmem.smk"
include: "workflow/rules/selfmem_selector.smk"
include: "workflow/rules/selfmem_loop.smk"
include: "workflow/rules/selfmem_compare.smk"


rule all:
    default_target: True
    input:
        all_targets(),
