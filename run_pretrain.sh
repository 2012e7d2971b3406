#!/usr/bin/env bash
# ERNIE 2.0 continual multi-task pre-training, end to end, on one machine:
#   1. a vocabulary from the corpus (python -m data_gen build-vocab --config: every input, read
#      with the data config's format and layout), 2. the task shards (python -m data_gen make),
#   3. pre-training (python -m ernie.pretrain), 4. the loss-curve plot (python -m ernie.plot).
# With no arguments: the embedded State of the Union demo corpus, the micro model, continual
# multi-task learning over the English task set, 5 to 8 minutes on 2 CPU cores (README).
# Variables choose other runs, e.g. the 60-minute recipes of docs/pretraining.md:
#   DATA_CONFIG=configs/data/sotu_en.yaml CONFIG=configs/pretrain/small_en.yaml bash run_pretrain.sh
#   DATA_CONFIG=configs/data/peoples_daily_zh.yaml CONFIG=configs/pretrain/small_zh.yaml bash run_pretrain.sh
# A corpus the data config reads from data/NAME/ is fetched first (python -m data_gen fetch NAME), and
# a released model whose vocabulary it names as models/NAME/vocab.txt (python -m ernie.pretrained get NAME).
# Data config values are read with `python -m data_gen get` (the config's own defaults and checks).
#   DATA_CONFIG  data config         (default configs/data/demo_en.yaml)
#   CONFIG       pre-training config (default configs/pretrain/demo_en.yaml)
#   VOCAB_SIZE   vocabulary size when the data config's vocab file does not exist yet
#                (default 8000, 12000 for Chinese)
#   LANG_VOCAB   en, zh or mixed, for that vocabulary (default: the data config's lang)
#   RESUME=1     continue a killed run from its newest checkpoint
#   OVERWRITE=1  start afresh where the output holds an earlier run (it is removed; without either,
#                a run into an earlier one's output stops with an error)
#   DATA_ONLY=1  stop after the shards (fetch, vocabulary, data_gen make): runs that share the
#                shards make them once before they start side by side (scripts/table7.sh)
#   AMP          mixed precision: fp16 (GPU), bf16 (GPU, CPU with AMX or AVX512_BF16), auto (bf16
#                where it pays: AMX, or AMD with AVX512_BF16; else off), in one process or many
#   NPROC        processes per node (default 1), one a GPU: on GPU nodes, the node's GPU count (a
#                launched process given several GPUs is refused); more than 1, or NNODES > 1, launches data-parallel
#                training with `python -m paddle.distributed.launch` (fleet collective: gloo on
#                CPU, NCCL on GPU); each rank reads its own part of the shards
#   NNODES       nodes (default 1); MASTER=ip:port of node 0 for several nodes, and run this
#                script on every node with the same variables but NODE_RANK (the data and the
#                output directory shared; node 0 alone prepares the data, the others wait for it)
#   NODE_RANK    with NNODES > 1: this node's rank, 0 to NNODES-1, another on each node (the
#                launcher's --rank). Each node's launcher logs go to a folder of their own,
#                OUTPUT/launch_logs/node-NODE_RANK (node-0 on one node), since the launcher names
#                them by local rank (workerlog.0 on every node): workerlog.I there is rank
#                NODE_RANK x NPROC + I
set -euo pipefail
cd "$(dirname "$0")"
DATA_CONFIG=${DATA_CONFIG:-configs/data/demo_en.yaml}
CONFIG=${CONFIG:-configs/pretrain/demo_en.yaml}
NPROC=${NPROC:-1}
NNODES=${NNODES:-1}
if [ "$NNODES" -gt 1 ] && ! [[ "${NODE_RANK:-}" =~ ^[0-9]+$ && "${NODE_RANK:-}" -lt "$NNODES" ]]; then
  echo "error: NNODES=$NNODES needs NODE_RANK, this node's rank: 0 to $((NNODES - 1)), another on each node" >&2
  exit 2
fi
if [ "$NNODES" -gt 1 ] && [ -z "${MASTER:-}" ]; then  # without it each node's launcher waits for peers of its own
  echo "error: NNODES=$NNODES needs MASTER=ip:port, node 0's address, the same on every node" >&2
  exit 2
fi

VOCAB=$(python -m data_gen get --config "$DATA_CONFIG" vocab)
INPUTS=$(python -m data_gen get --config "$DATA_CONFIG" input)  # files, folders, glob patterns: one a line
LANG_VOCAB=${LANG_VOCAB:-$(python -m data_gen get --config "$DATA_CONFIG" lang)}
if [ -z "${DATA_ONLY:-}" ]; then  # the pre-training config's output, through its own loader
  OUTPUT=$(python -c "import sys
from ernie.pretrain.config import PretrainError, load_config
try:
    print(load_config(sys.argv[1]).output)
except PretrainError as err:
    print(f'error: {err}', file=sys.stderr)
    sys.exit(2)" "$CONFIG")
fi
if [ "$LANG_VOCAB" = zh ]; then VOCAB_SIZE=${VOCAB_SIZE:-12000}; else VOCAB_SIZE=${VOCAB_SIZE:-8000}; fi

prepare_data() {  # the corpus (fetched from a registry where it is one), the vocabulary, the shards
  shopt -s globstar  # compgen -G below matches `**` as the data config does
  while IFS= read -r entry; do  # an input under data/NAME/ that is not there yet: registry corpus NAME
    dir=$(dirname "$entry")
    if ! compgen -G "$entry" > /dev/null && [ "$(basename "$(dirname "$dir")")" = data ]; then
      python -m data_gen fetch "$(basename "$dir")" --dir "$(dirname "$dir")"
    fi
  done <<< "$INPUTS"
  VOCAB_DIR=$(dirname "$VOCAB")
  if [ ! -f "$VOCAB" ] && [ "$(basename "$(dirname "$VOCAB_DIR")")" = models ]; then
    # a released model's vocabulary (models/NAME/vocab.txt): the model is fetched, never a new vocabulary built
    python -m ernie.pretrained get "$(basename "$VOCAB_DIR")" --dir "$(dirname "$VOCAB_DIR")"
  elif [ ! -f "$VOCAB" ]; then
    python -m data_gen build-vocab --config "$DATA_CONFIG" --size "$VOCAB_SIZE" --lang "$LANG_VOCAB"
  fi
  python -m data_gen make --config "$DATA_CONFIG"
}

start=$(date +%s)
if [ "${NODE_RANK:-0}" = 0 ]; then
  prepare_data
else
  # the data (shared, as the output is) is node 0's to make: nodes making it at once would write
  # over each other. This node's launcher waits for node 0's, which starts once it is made.
  echo "node $NODE_RANK: the data is node 0's to prepare; the launcher waits for node 0's"
fi
[ -n "${DATA_ONLY:-}" ] && exit 0
if [ "$NPROC" -gt 1 ] || [ "$NNODES" -gt 1 ]; then
  LOG_DIR=$OUTPUT/launch_logs/node-${NODE_RANK:-0}  # Paddle's launcher names its logs workerlog.<local rank>
  mkdir -p "$LOG_DIR"
  rm -f "$LOG_DIR"/rank-*.exit
  # the launcher hands its ranks the OMP_NUM_THREADS=1 its own import of Paddle sets; where the
  # user set none, say so, and each rank takes its share of the cores (ernie/__init__.py)
  [ -z "${OMP_NUM_THREADS:-}" ] && export ERNIE_THREADS_UNSET=1
  # each rank writes its exit code there (scripts/pretrain_launch.py): the launcher can exit 0
  # although a worker failed, and on another node than 0 the model, rank 0's, is no sign of ours
  ERNIE_LAUNCH_STATUS=$LOG_DIR python -m paddle.distributed.launch --nproc_per_node "$NPROC" --nnodes "$NNODES" \
    ${MASTER:+--master "$MASTER"} ${NODE_RANK:+--rank "$NODE_RANK"} --log_dir "$LOG_DIR" scripts/pretrain_launch.py \
    --config "$CONFIG" ${RESUME:+--resume} ${OVERWRITE:+--overwrite} ${AMP:+--amp "$AMP"} 2>&1 | tee "$LOG_DIR/launcher.out" || true
  failed=0
  for ((i = 0; i < NPROC; i++)); do
    rank=$(( ${NODE_RANK:-0} * NPROC + i ))
    [ "$(cat "$LOG_DIR/rank-$rank.exit" 2>/dev/null)" = 0 ] || failed=1
  done
  if [ "$failed" = 1 ]; then
    echo "pre-training failed:" >&2
    grep -h "^Container rank .* status failed\|^error: rank" "$LOG_DIR/launcher.out" \
      "$LOG_DIR"/workerlog.* 2>/dev/null | sed 's/ cmd \[.*\] code / exit code /' | sort -u >&2 || true
    echo "see $LOG_DIR/workerlog.* (and the other nodes' folders beside it); RESUME=1 continues from the last checkpoint" >&2
    exit 1
  fi
  if [ "${NODE_RANK:-0}" != 0 ]; then
    echo "node $NODE_RANK: its $NPROC rank(s) finished; rank 0, on node 0, writes the model, log and plot to $OUTPUT"
    exit 0
  fi
else
  python -m ernie.pretrain --config "$CONFIG" ${RESUME:+--resume} ${OVERWRITE:+--overwrite} ${AMP:+--amp "$AMP"}
fi
python -m ernie.plot "$OUTPUT"
echo
echo "done in $(( $(date +%s) - start )) s"
python -c "import json, sys; from ernie.pretrain.log import summary_line; print(summary_line(json.load(open(sys.argv[1]))) or '')" \
  "$OUTPUT/summary.json"
echo "model:       $OUTPUT/model   (ernie_config.json, vocab.txt, params.safetensors)"
echo "log:         $OUTPUT/log.jsonl"
echo "plot:        $OUTPUT/loss_curves.png"
echo "checkpoints: $OUTPUT/checkpoints"
