#!/bin/bash
# Runs one config as two local processes, each pinned to one CPU core
# (run.distributed + run.cpu_cores; each process takes every other chunk of
# victims, process 0 writes the report). On the 2-core test machine: 1.6×
# the evaluations per second of one unpinned process (throughput.py), DLG's
# 16 photos in 2 min 45 s instead of 3 min 32 s, iDLG's in 1 min 45 s instead
# of 1 min 59 s (BUILD_NOTES.md, "Throughput"). Give run.chunk_victims so
# that there are at least two chunks.
#   bash benchmarks/two_cores.sh WORKDIR --config=configs/dlg.py --config.run.chunk_victims=8
set -u
cd "$(dirname "$0")/.."
W=$1; shift
PORT=${PORT:-12378}
DIST="--config.run.distributed=True --config.run.coordinator_address=localhost:$PORT
      --config.run.num_processes=2"
mkdir -p "$W"
start=$(date +%s)
python launch.py "$@" $DIST --config.run.process_id=1 --config.run.cpu_cores=1 \
  --workdir="$W" > "$W/process1.log" 2>&1 &
P1=$!
python launch.py "$@" $DIST --config.run.process_id=0 --config.run.cpu_cores=0 --workdir="$W"
rc0=$?
wait $P1; rc1=$?
echo "two pinned processes: exit $rc0/$rc1, $(( $(date +%s) - start )) s wall (process 1's log: $W/process1.log)"
exit $(( rc0 | rc1 ))
