#!/usr/bin/env bash
# Task 1 at full data on one GPU, inside a fixed time budget: the trial-speed benchmark alone on
# the GPU first, then these runs side by side on the same GPU (each process takes GPU memory as
# it needs it), every one stopped at the deadline with what it finished kept (a transfer writes
# each seed's row as it ends; a search is exported from its finished trials):
#   - CNN rank 1 of CONFIGS and the textbook CNN on Fashion-MNIST (54,000 / 6,000 / 10,000);
#   - CNN ranks 1-3 and the textbook CNN on CIFAR-10 (45,000 / 5,000 / 10,000);
#   - an MLP search on all 54,000 Fashion-MNIST images (bohb, --workers sharing the GPU), then its
#     rank 1 retrained; the textbook MLP beside it.
# Any Keras backend works; on a machine without TensorFlow, KERAS_BACKEND=jax.
#
#   CONFIGS=dir/with/rank_{1,2,3}.yaml,textbook-cnn.yaml,textbook-mlp.yaml  OUT=runs/gpu \
#   HPSEARCH_DATA_DIR=data  bash benchmarks/full_data_gpu.sh
#
# Knobs (environment): DEADLINE seconds for everything (540), SUBSET (all), SEEDS (3),
# CNN_EPOCHS (15), MLP_EPOCHS (40), MLP_SEARCH_SECONDS (210), MLP_WORKERS (3), BENCH_SECONDS (80).
set -u
: "${CONFIGS:?directory of the CNN top configs and the textbook ones}" "${OUT:?output directory}"
DEADLINE=${DEADLINE:-540} SUBSET=${SUBSET:-all} SEEDS=${SEEDS:-3}
CNN_EPOCHS=${CNN_EPOCHS:-15} MLP_EPOCHS=${MLP_EPOCHS:-40} MLP_SEARCH_SECONDS=${MLP_SEARCH_SECONDS:-210}
MLP_WORKERS=${MLP_WORKERS:-3} BENCH_SECONDS=${BENCH_SECONDS:-80} BENCH_IMAGES=${BENCH_IMAGES:-60000}
export XLA_PYTHON_CLIENT_PREALLOCATE=false TF_FORCE_GPU_ALLOW_GROWTH=true PYTHONUNBUFFERED=1
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
PYTHON=${PYTHON:-python3}
start=$(date +%s)
left() { local s=$((DEADLINE - ($(date +%s) - start))); echo $((s > 1 ? s : 1)); }
say() { echo "[$(($(date +%s) - start)) s] $*" | tee -a "$OUT/timeline.log"; }
hp() { "$PYTHON" -m tuner.cli "$@"; }
mkdir -p "$OUT"
say "start: backend ${KERAS_BACKEND:-default}, deadline ${DEADLINE} s"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >>"$OUT/timeline.log" 2>&1

say "trial speed, alone on the device"
timeout "$BENCH_SECONDS" "$PYTHON" -m benchmarks.bench_trial_speed --images "$BENCH_IMAGES" \
    --cnn-images "$BENCH_IMAGES" --epochs 3 --variants script hpsearch >"$OUT/bench_trial_speed.log" 2>&1
say "trial speed done (rc $?)"

transfer() {  # NAME CONFIG DATASET EPOCHS: one configuration, SEEDS seeds, every epoch trained
    local name=$1 config=$2 dataset=$3 epochs=$4
    timeout "$(left)" "$PYTHON" -m tuner.cli transfer "$config" --no-textbook --dataset "$dataset" \
        --subset "$SUBSET" --seeds "$SEEDS" --epochs "$epochs" --patience "$epochs" \
        --run-dir "$OUT/$name" >"$OUT/$name.log" 2>&1
    say "$name done (rc $?)"
}
mlp_search() {
    timeout "$MLP_SEARCH_SECONDS" "$PYTHON" -m tuner.cli tune mlp --dataset fashion_mnist \
        --subset "$SUBSET" --tuner bohb --max-epochs "$MLP_EPOCHS" --workers "$MLP_WORKERS" \
        --run-dir "$OUT/mlp-search" >"$OUT/mlp-search.log" 2>&1
    say "mlp search stopped (rc $?: 124 is the time limit)"
    hp export "$OUT/mlp-search" --out "$OUT/mlp-search/exported" >>"$OUT/mlp-search.log" 2>&1
    transfer mlp-r1-fmnist "$OUT/mlp-search/exported/rank_1.yaml" fashion_mnist "$MLP_EPOCHS"
}

say "full-data runs, side by side"
transfer cnn-r1-fmnist "$CONFIGS/rank_1.yaml" fashion_mnist "$CNN_EPOCHS" &
transfer cnn-textbook-fmnist "$CONFIGS/textbook-cnn.yaml" fashion_mnist "$CNN_EPOCHS" &
transfer mlp-textbook-fmnist "$CONFIGS/textbook-mlp.yaml" fashion_mnist "$MLP_EPOCHS" &
mlp_search &
for name in r1 r2 r3 textbook; do
    config="$CONFIGS/rank_${name#r}.yaml"
    [ "$name" = textbook ] && config="$CONFIGS/textbook-cnn.yaml"
    transfer "cnn-$name-cifar10" "$config" cifar10 "$CNN_EPOCHS" &
done
wait
say "all stopped"
