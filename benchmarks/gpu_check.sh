#!/usr/bin/env bash
# The GPU check: run on one H100/H200-class GPU the first time one is at hand (under 9 minutes).
# Each part prints as it finishes, so a run cut short still reports what it measured; a part that
# fails or runs past its limit says so and the next one starts.
#
#   bash benchmarks/gpu_check.sh            (from the source tree: PYTHONPATH=. is set here)
#
# Needs torch, torchvision, timm, pandas and pyarrow; the smoke search also needs Ray, Optuna and
# plotly and is skipped with a line saying so without them. The data parts read Fashion-MNIST from
# Debian's /usr/share/datasets/fashion-mnist; on a machine without it, copy that folder into the
# tree (e.g. .gpu-data/fashion-mnist, 30 MB) and set FASHION_MNIST_DIR to it.
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH=.
PYTHON=${PYTHON:-python}
OUT=${OUT:-$(mktemp -d)}

part() {  # part NAME LIMIT_SECONDS COMMAND...
    local name=$1 limit=$2
    shift 2
    echo "=== $name (limit ${limit}s) $(date +%T), load $(cut -d' ' -f1 /proc/loadavg)"
    timeout "$limit" "$@"
    local code=$?
    if [ "$code" -eq 124 ]; then echo "=== $name: cut off after ${limit}s"
    elif [ "$code" -ne 0 ]; then echo "=== $name: failed (exit $code)"
    fi
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "nvidia-smi: not available"
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
if [ -n "${FASHION_MNIST_DIR:-}" ] && [ ! -d /usr/share/datasets/fashion-mnist ]; then
    mkdir -p /usr/share/datasets && ln -sfn "$(realpath "$FASHION_MNIST_DIR")" /usr/share/datasets/fashion-mnist
fi

# 1. layer ratios: push-pull placements and the direct vs separable pull, in both memory layouts
part "layers (NCHW)" 45 "$PYTHON" benchmarks/bench_layers.py --device cuda --rounds 10
part "layers (channels_last, the trainer's layout)" 45 "$PYTHON" benchmarks/bench_layers.py --device cuda --rounds 10 --channels-last
# 2. trainer images/s beside a torchvision DataLoader loop, the paper schedule's projected time, one demo trial
part "trainer" 120 "$PYTHON" benchmarks/bench_train.py --device cuda --images 20000 --rounds 3
# 3. -C and -P generation for 10,000 CIFAR-sized images, and evaluation images/s
part "corruptions, perturbations, evaluation" 100 "$PYTHON" benchmarks/bench_corruptions.py --device cuda --images 10000 --repeats 1
# 4. four smoke trials sharing the GPU
if "$PYTHON" -c "import ray, optuna, plotly" 2>/dev/null; then
    part "smoke search, 4 trials at --gpus-per-trial 0.25" 110 "$PYTHON" -m ppsearch run --space resnet-cifar \
        --dataset fashion-mnist --budget smoke --trials 4 --gpus-per-trial 0.25 --cpus-per-trial 2 --out "$OUT/gpu-smoke"
else
    echo "=== smoke search: skipped (Ray, Optuna or plotly is not installed here)"
fi
# 5. latency ratios of placements and pull sizes to the plain model: eager torch on the GPU, ONNX Runtime on the CPU
part "cost" 60 "$PYTHON" benchmarks/bench_cost.py --device cuda --rounds 10
# 6. streamed ImageNet-size JPEGs beside an ImageFolder loop, one worker per core (CPU decoding)
part "streaming data" 40 "$PYTHON" benchmarks/bench_data.py --images 2048 --repeats 2
echo "=== done $(date +%T)"
