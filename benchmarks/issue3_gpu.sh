#!/usr/bin/env bash
# Issue 3's runs that a 2-core CPU cannot finish, on one GPU, side by side:
#   ig24k  configs/ig.py:train (ResNet-18, CIFAR stem, BatchNorm train,
#          4 photos, the paper's 24,000 steps), stopped at the time limit;
#          its progress.jsonl holds the PSNR-per-iteration curve so far;
#   ig4k   the same with 4,000 steps (the schedule's cuts scale with it);
#   study  configs/models_study.py unchanged (LeNet, ResNet-18, DenseNet-121,
#          Inception-v3; 300 L-BFGS iterations each).
#
#   bash benchmarks/issue3_gpu.sh OUT_DIR [SECONDS]
#
# Each run's workdir (files over 5 MB dropped) is packed into OUT_DIR/*.tgz,
# its log and progress.jsonl copied beside it.
set -u
out=${1:?usage: issue3_gpu.sh OUT_DIR [SECONDS]}
limit=${2:-480}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_MEM_FRACTION=0.3
python3 -c 'import jax, flax, optax, chex; print("jax", jax.__version__, "flax", flax.__version__,
"optax", optax.__version__, "chex", chex.__version__, jax.devices())'
work=$(mktemp -d)
run() {  # name, then launch.py's flags
  local name=$1; shift
  local start=$SECONDS
  timeout "$limit" python3 launch.py --workdir="$work/$name" "$@" > "$out/$name.log" 2>&1
  echo "$name: exit $?, ${SECONDS}s - ${start}s wall" >> "$out/$name.log"
}
run ig24k --config=configs/ig.py:train --config.attack.chunk=250 &
run ig4k --config=configs/ig.py:train --config.attack.steps=4000 --config.attack.chunk=100 &
run study --config=configs/models_study.py &
wait
for name in ig24k ig4k study; do
  find "$work/$name" -type f -size +5M -delete 2>/dev/null
  tar czf "$out/$name.tgz" -C "$work" "$name" 2>/dev/null
  tail -n 12 "$out/$name.log"
done
cp "$work/ig24k/progress.jsonl" "$out/ig24k_progress.jsonl" 2>/dev/null
ls -la "$out"
