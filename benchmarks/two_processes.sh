#!/bin/bash
# Two local CPU processes through jax.distributed (run.distributed=True) on a
# tiny iDLG case, then one process on the same config; prints whether every
# per-victim number is identical. About 10 minutes on the shared 2-core CPU.
#   bash benchmarks/two_processes.sh [workdir]
set -u
cd "$(dirname "$0")/.."
D=${1:-$(mktemp -d)}
O="--config=configs/idlg.py:smoke --config.data.size=16 --config.data.channels=1
   --config.data.num_victims=4 --config.attack.steps=6 --config.attack.chunk=3
   --config.attack.memory=3 --config.attack.restarts=1 --config.run.chunk_victims=1"
DIST="--config.run.distributed=True --config.run.coordinator_address=localhost:12377
      --config.run.num_processes=2"
start=$(date +%s)
python launch.py $O $DIST --config.run.process_id=0 --workdir="$D/two" > "$D/p0.log" 2>&1 &
P0=$!
python launch.py $O $DIST --config.run.process_id=1 --workdir="$D/two" > "$D/p1.log" 2>&1 &
P1=$!
wait $P0; echo "process 0 exit $?"; wait $P1; echo "process 1 exit $?"
echo "two processes: $(( $(date +%s) - start )) s"
python launch.py $O --workdir="$D/one" > "$D/one.log" 2>&1; echo "one process exit $?"
python - "$D" <<'PY'
import json, sys
keys = ('mse', 'psnr', 'ssim', 'label_correct', 'recovered_labels', 'iterations', 'matching_loss')
runs = [json.load(open(f'{sys.argv[1]}/{name}/metrics.json')) for name in ('two', 'one')]
rows = [[{k: v[k] for k in keys} for v in r['victims']] for r in runs]
print('per-victim numbers identical:', rows[0] == rows[1], '| processes:',
      [r['run']['processes'] for r in runs])
PY
