#!/usr/bin/env bash
# `pip install .` into an empty virtual environment gives a working `seam`: the CLI's --help and a tiny
# `seam score` (two random Llama models built from a config, three instructions), run outside the source
# tree so that only the installed package is used; then `pip check`, and no test tool among the runtime
# dependencies.
#
#   scripts/install_smoke.sh [VENV_DIR]        (default: a new temporary folder, removed afterwards)
#
# TORCH_FIRST: a torch requirement installed before the package, e.g. "torch==2.13.0", so that pip keeps
#   that build (on a machine whose pip finds a CPU build of it) instead of choosing the default index's
#   CUDA build of the newest release (several GB). Empty: plain `pip install .`.
# PIP_INSTALL_ARGS: more arguments for both pip installs (e.g. --extra-index-url ...).
# Needs the package index. Takes minutes.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
if [ $# -ge 1 ]; then
  VENV="$1"
  KEEP=1
else
  VENV="$(mktemp -d)/venv"
  KEEP=0
fi
WORK="$(mktemp -d)"
SRC="$(mktemp -d)/seam-src"
cleanup() {
  rm -rf "$WORK" "$(dirname "$SRC")"
  if [ "$KEEP" = 0 ]; then rm -rf "$(dirname "$VENV")"; fi
}
trap cleanup EXIT

# Build from a copy of the tracked and untracked-but-not-ignored files: pip builds in place, and the
# checkout's .venv, caches and build/ must not leak into the package.
mkdir -p "$SRC"
(cd "$REPO" && git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
   [ -e "$f" ] && printf '%s\0' "$f"
 done | tar --null -T - -cf -) | tar -xf - -C "$SRC"

"$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
# shellcheck disable=SC2086
if [ -n "${TORCH_FIRST:-}" ]; then "${PIP[@]}" install -q ${PIP_INSTALL_ARGS:-} "$TORCH_FIRST"; fi
# shellcheck disable=SC2086
"${PIP[@]}" install -q ${PIP_INSTALL_ARGS:-} "$SRC"
"${PIP[@]}" check

cd "$WORK"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 SEAM_CACHE_DIR="$WORK/cache"
"$VENV/bin/seam" --help >/dev/null
"$VENV/bin/seam" score --help >/dev/null
"$VENV/bin/python" - <<'EOF'
import importlib.util, json
from pathlib import Path

import app
import seam

assert "site-packages" in seam.__file__, seam.__file__  # the installed package, not the checkout
assert (Path(app.__file__).parent.parent / "pages" / "overview.py").is_file(), "dashboard pages not installed"
for tool in ("pytest", "playwright"):
    assert importlib.util.find_spec(tool) is None, f"{tool} is a test tool, not a runtime dependency"
from seam.models.tiny import build_tiny_models

build_tiny_models("models")
inst = [{"id": f"q{i}", "prompt": f"What is {i} plus {i}?", "chosen": f"{i} plus {i} is {2 * i}."} for i in range(3)]
negs = [{"id": r["id"], "variant": "llm", "text": t} for r in inst for t in ("It is five.", "No idea.")]
Path("rl.jsonl").write_text("".join(json.dumps(r) + "\n" for r in inst))
Path("negs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in negs))
EOF
"$VENV/bin/seam" score --pm models/pm --rm models/rm --data rl.jsonl --negatives negs.jsonl --out scores.parquet \
  --device cpu --quiet
"$VENV/bin/python" - <<'EOF'
import pandas as pd

s = pd.read_parquet("scores.parquet")
assert len(s) == 3 and s["id"].tolist() == ["q0", "q1", "q2"], s
print(f"install smoke: ok ({len(s)} instructions scored by the installed seam)")
EOF
