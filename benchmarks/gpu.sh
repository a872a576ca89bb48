#!/usr/bin/env bash
# The GPU measurement in one call, on a machine with a GPU and a torch of its own that reaches no package
# index (the device machine: torch 2.11, Python 3.12). From the repository root, after `make gpu-data`
# here (MNIST gzipped into .gpu/, carried along):
#
#     benchmarks/gpu.sh OUTDIR                  # GPU tests, per-epoch times, Algorithm 2's 1000 epochs
#     benchmarks/gpu.sh OUTDIR --ten-thousand   # and the 10,000-epoch run, its checkpoint into OUTDIR
#
# It writes OUTDIR/RESULTS_gpu.md (the table for benchmarks/RESULTS_gpu.md) and OUTDIR/gpu.log.
set -euo pipefail
out=${1:?usage: benchmarks/gpu.sh OUTDIR [--ten-thousand]}
mkdir -p "$out"
data=$(mktemp -d)
mkdir -p "$data/MNIST/raw"
for f in .gpu/*-ubyte.gz; do
    gunzip -c "$f" > "$data/MNIST/raw/$(basename "$f" .gz)"
done
export THESIS_DATA_DIR=$data THESIS_NO_RESTART=1 PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
{
    python3 -c "import sys, torch; print(sys.version.split()[0], torch.__version__, torch.cuda.get_device_name(0))"
    python3 -m pytest -q -p no:cacheprovider tests/test_cuda_graphs.py
    python3 benchmarks/gpu.py --output "$out/RESULTS_gpu.md" ${2:+--ten-thousand "$out"}
} 2>&1 | tee "$out/gpu.log"
