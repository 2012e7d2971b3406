#!/usr/bin/env bash
# Reproduces docs/pretraining.md end to end on one machine (about 9 hours on 2 CPU cores):
#   1. the recipes: the 10-minute demo and the 60-minute English and Chinese recipes, each through
#      run_pretrain.sh, timed from the corpus on disk to the plot;
#   2. the ablation: knowledge masking alone on the demo corpus, one change a run, and the
#      Hugging Face reference on the same batches (python -m studies.pretraining ablation);
#   3. the fine-tuning check: one of those models and its random twin, fine-tuned by
#      ernie.finetune and by an independent PyTorch loop (... finetune-check);
#   4. downstream: the small recipes' models against random initialisation on the registries'
#      labelled tasks, with few labels and with all, and the English suite (python -m studies.downstream);
#   5. the document (python -m studies.pretraining report).
# Every step is skipped when its output is complete, so a killed study continues where it stopped
# when the script runs again. OUT (default output/study) holds everything but the recipes' own
# output directories (output/demo, output/small_en, output/small_zh).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-output/study}
mkdir -p "$OUT"

for corpus in brown-genre sentiment msra-ner review-sentiment tweet-sentiment spam-email brown-pos; do
  [ -d "data/$corpus" ] || python -m data_gen fetch "$corpus" --dir data
done

# recipe NAME DATA_CONFIG PRETRAIN_CONFIG: run_pretrain.sh, its wall time kept beside the run
recipe() {
  local name=$1 output
  output=$(python -c "import sys; from ernie.pretrain.config import load_config; print(load_config(sys.argv[1]).output)" "$3")
  if [ ! -f "$output/summary.json" ]; then
    local start resume=()
    start=$(date +%s)
    [ -d "$output/checkpoints" ] && resume=(RESUME=1)
    env "${resume[@]}" DATA_CONFIG="$2" CONFIG="$3" bash run_pretrain.sh > "$OUT/recipe-$name.log" 2>&1
    echo $(( $(date +%s) - start )) > "$output/wall_s"
  fi
}
recipe demo configs/data/demo_en.yaml configs/pretrain/demo_en.yaml
recipe small_en configs/data/sotu_en.yaml configs/pretrain/small_en.yaml
recipe small_zh configs/data/peoples_daily_zh.yaml configs/pretrain/small_zh.yaml

python -m studies.pretraining ablation --output "$OUT"
python -m studies.pretraining finetune-check --output "$OUT"

python -m studies.downstream run --model output/small_en/pretrain/model --lang en --output "$OUT/downstream/small_en"
python -m studies.downstream run --model output/small_zh/pretrain/model --lang zh --output "$OUT/downstream/small_zh"
python -m studies.downstream run --model output/small_en/pretrain/model --lang en-suite --output "$OUT/downstream/small_en-suite"

python -m studies.pretraining report --output "$OUT"
