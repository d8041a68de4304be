#!/usr/bin/env bash
# Installs the PyTorch wheel that tch 0.24 links against (torch==2.11.0) into a
# versioned virtual environment in the user's cache directory, once per machine.
# Every clone and CI run on the machine shares it: the wheel with its CUDA
# libraries takes several GB. Prints the environment's python on the last line.
set -euo pipefail

TORCH_VERSION=2.11.0
cache_root="${PIXELCNN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pixelcnn}"
env_dir="$cache_root/torch-$TORCH_VERSION"
python_bin="$env_dir/bin/python"

have_torch() {
  [ -f "$env_dir/.complete" ] && [ -x "$python_bin" ] &&
    [ "$("$python_bin" -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null)" = "$TORCH_VERSION" ]
}

if ! have_torch; then
  mkdir -p "$cache_root"
  # A lock so that two clones setting up at once do not install into one env twice.
  exec 9>"$cache_root/.torch-$TORCH_VERSION.lock"
  flock 9
  if ! have_torch; then
    echo "pixelcnn: installing torch==$TORCH_VERSION into $env_dir (several GB, once per machine)" >&2
    # Installed in place; the marker is written only when pip succeeded, so an
    # interrupted install is wiped and redone instead of being half used.
    rm -rf "$env_dir"
    python3 -m venv "$env_dir"
    "$python_bin" -m pip install --quiet --disable-pip-version-check \
      "torch==$TORCH_VERSION" numpy >&2
    touch "$env_dir/.complete"
  fi
fi
have_torch || { echo "pixelcnn: torch==$TORCH_VERSION is not importable from $python_bin" >&2; exit 1; }

# The CUDA release the wheel was built with ("13.0"), empty for a CPU-only wheel.
cuda_version() {
  "$python_bin" -c 'import torch; print(torch.version.cuda or "")' 2>/dev/null
}
headers_wanted="${PIXELCNN_CUDA_HEADERS:-}"
if [ -z "$headers_wanted" ]; then
  # The npm package ships this script without the crates: users never compile.
  if [ -f "$(dirname "${BASH_SOURCE[0]}")/../crates/pixelcnn-core/build.rs" ]; then headers_wanted=1; else headers_wanted=0; fi
fi
headers_marker="$env_dir/.complete-cuda-headers"
if [ "$headers_wanted" = 1 ] && [ ! -f "$headers_marker" ] && [ "$(uname -s)" = Linux ]; then
  exec 9>"$cache_root/.torch-$TORCH_VERSION.lock"
  flock 9
  cuda="$(cuda_version)"
  if [ ! -f "$headers_marker" ] && [ -n "$cuda" ]; then
    echo "pixelcnn: installing the CUDA $cuda headers for the NCCL shim (nvidia-cuda-crt, nvidia-cuda-cccl; about 19 MB, once)" >&2
    # --no-deps: these are header packages; nothing else may be upgraded in the
    # environment (torch pins its own CUDA libraries). A failure (no network)
    # is not fatal: the build then leaves NCCL out and says so.
    if "$python_bin" -m pip install --quiet --disable-pip-version-check --no-deps --retries 1 --timeout 30 \
      "nvidia-cuda-crt==$cuda.*" "nvidia-cuda-cccl==$cuda.*" >&2; then
      touch "$headers_marker"
    else
      echo "pixelcnn: could not install the CUDA headers; the build will leave the NCCL backend out" >&2
    fi
  fi
  exec 9>&-
fi

# TensorBoard's own reader, which the tests use to read back the event files
# that `logDir` writes (issue 23). Added beside torch, also to environments
# installed before it was needed; users who never run the tests can skip it
# with PIXELCNN_SKIP_TENSORBOARD=1.
tensorboard_marker="$env_dir/.complete-tensorboard"
if [ "${PIXELCNN_SKIP_TENSORBOARD:-0}" != 1 ] && [ ! -f "$tensorboard_marker" ] && [ -f "$(dirname "${BASH_SOURCE[0]}")/../crates/pixelcnn-core/build.rs" ]; then
  exec 9>"$cache_root/.torch-$TORCH_VERSION.lock"
  flock 9
  if [ ! -f "$tensorboard_marker" ]; then
    echo "pixelcnn: installing tensorboard into $env_dir (its event reader checks the logDir files in the tests; once)" >&2
    "$python_bin" -m pip install --quiet --disable-pip-version-check tensorboard >&2 ||
      { echo "pixelcnn: could not install tensorboard into $env_dir (the tests of logDir read their event files with it); retry with network access, or set PIXELCNN_SKIP_TENSORBOARD=1 to go without" >&2; exit 1; }
    touch "$tensorboard_marker"
  fi
  exec 9>&-
fi
echo "$python_bin"
