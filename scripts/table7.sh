#!/usr/bin/env bash
# Table 7 of the paper on 2 CPU cores: continual learning, multi-task learning and continual
# multi-task learning, each pre-training the micro model from one initialisation (seed 1) for the
# same 3,000 steps (750 loss-on steps a task) on People's Daily, then each model fine-tuned on
# three Chinese tasks over 5 seeds; docs/table7.md is written from the runs' files.
#   bash scripts/table7.sh                 # about 2 hours on 2 cores (estimated; not yet run whole)
#   SEEDS=3 OUT=output/t7 bash scripts/table7.sh
# Every step is skipped when its output is complete, so a killed run continues where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-output/table7_small}
SEEDS=${SEEDS:-5}

for corpus in sentiment msra-ner; do
  [ -d "data/$corpus" ] || python -m data_gen fetch "$corpus" --dir data
done
for strategy in continual multitask continual_multitask; do
  config=configs/pretrain/table7_small_$strategy.yaml
  run_dir=$(python -c "import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))['output'])" "$config")
  if [ ! -f "$run_dir/summary.json" ]; then
    resume=()
    [ -d "$run_dir/checkpoints" ] && resume=(RESUME=1)
    # run_pretrain.sh fetches the corpus, builds the vocabulary and the shards the first time
    env "${resume[@]}" DATA_CONFIG=configs/data/table7_zh.yaml CONFIG="$config" bash run_pretrain.sh
  fi
done
python scripts/table7.py finetune --output "$OUT" --seeds "$SEEDS"
python scripts/table7.py report --output "$OUT"
