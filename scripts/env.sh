# Sourced by the build and test scripts: points tch's build at the project's
# PyTorch environment (installed once per machine by setup-libtorch.sh) unless
# the user already chose a libtorch with LIBTORCH.
if [ -z "${LIBTORCH:-}" ]; then
  PIXELCNN_PYTHON="$(bash "$(dirname "${BASH_SOURCE[0]}")/setup-libtorch.sh" | tail -n 1)"
  export PIXELCNN_PYTHON
  export LIBTORCH_USE_PYTORCH=1
  export VIRTUAL_ENV="$(dirname "$(dirname "$PIXELCNN_PYTHON")")"
  export PATH="$VIRTUAL_ENV/bin:$PATH"
fi
export LIBTORCH_BYPASS_VERSION_CHECK="${LIBTORCH_BYPASS_VERSION_CHECK:-0}"
