#!/usr/bin/env bash
# Table 7 of the paper on 2 CPU cores (docs/table7.md): the three strategies pre-trained from one
# initialisation at equal budgets, every task's held-out loss stage by stage, then every model and
# random initialisation fine-tuned over 5 seeds, each at its own learning rate; the document is
# written from the runs' files. The variants and their runs: configs/studies/table7.yaml.
#   bash scripts/table7.sh en        # English as the paper ran it: the tiny model, 4 x 2,500 steps
#   bash scripts/table7.sh zh        # Chinese: the micro model, 4 x 750 steps
#   SEEDS=3 bash scripts/table7.sh en
# Every step is skipped when its output is complete, so a killed run continues where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
VARIANT=${1:-en}
python -m studies.table7 pretrain --variant "$VARIANT"
python -m studies.table7 finetune --variant "$VARIANT" --seeds "${SEEDS:-5}"
python -m studies.table7 report
