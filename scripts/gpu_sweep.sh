#!/usr/bin/env bash
# Run scripts/train_sweep.py on a lent GPU machine, many runs sharing the GPU through CUDA MPS.
# PYTHON names the interpreter with PyTorch (default python3).
#
#   bash scripts/gpu_sweep.sh OUT DEADLINE_S RECIPES [more train_sweep.py options]
#
# The machine needs PyTorch and numpy only. Copy there (ignored paths): cache/*.u8.npz,
# cache/midlevel_corpus/manifest.csv, and a folder .gpu/soundtracks with ratings.csv and
# tracklist.csv (the audio stays here). Without MPS the runs still share the GPU, time-sliced and slower.
set -uo pipefail
out=${1:?output folder}; deadline_s=${2:?deadline in seconds}; recipes=${3:?comma-separated recipes}
shift 3
export PYTHONUNBUFFERED=1 PYTHONPATH=.
python=${PYTHON:-python3}  # the interpreter with PyTorch
mps_dir=/tmp/dawemo-mps
mkdir -p "$mps_dir" "$out"
export CUDA_MPS_PIPE_DIRECTORY=$mps_dir CUDA_MPS_LOG_DIRECTORY=$mps_dir
if command -v nvidia-cuda-mps-control >/dev/null && nvidia-cuda-mps-control -d \
        && timeout 40 "$python" -c "import torch; torch.zeros(1).cuda()"; then
    workers=15
    echo "CUDA MPS on: $workers workers"
else
    echo quit | nvidia-cuda-mps-control 2>/dev/null
    unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
    workers=14
    echo "CUDA MPS not available: $workers workers time-slice the GPU"
fi
timeout $((deadline_s + 45)) "$python" scripts/train_sweep.py --soundtracks .gpu/soundtracks --out "$out" \
    --deadline-s "$deadline_s" --workers "$workers" --recipes "$recipes" "$@" 2>&1 | tee "$out/sweep.log"
status=${PIPESTATUS[0]}
echo quit | nvidia-cuda-mps-control 2>/dev/null
exit "$status"
