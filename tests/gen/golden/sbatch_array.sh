#!/bin/bash
#SBATCH --array=0-3
#SBATCH --chdir='/data/it'"'"'s a "dir" with spaces'
#SBATCH --cpus-per-task=1
#SBATCH --job-name=gen-seq-0123456789ab
#SBATCH --mem=1024M
#SBATCH --output='/data/it'"'"'s a "dir" with spaces/gen_cache/seq/0123456789ab/logs/%A_%a.out'
#SBATCH --time=7

# written by scorch-gen; each array task generates its share of the samples
exec /opt/venv/bin/python -m scorch.gen._worker --dir '/data/it'"'"'s a "dir" with spaces' --params-json '{"name":"a b","x":1}' --total 100 --jobs 4
