#!/usr/bin/env bash
# What `make install` installs on this node: the CPU or GPU flavour of TensorFlow and
# Horovod, or a Horovod that is already installed (HOROVOD=system). Called by the Makefile.
#
#   tools/install_plan.sh make          one line of key=value words for the Makefile
#   tools/install_plan.sh show          the plan for a reader (make install-plan); exit 1 on an error
#   tools/install_plan.sh reason        the plan's one-line error (empty when it can work)
#   tools/install_plan.sh nccl-home PY DIR      DIR/{include,lib} linking to PY's nvidia-nccl-cu12
#   tools/install_plan.sh check-system PY       Horovod in PY has TensorFlow ops (and NCCL with GPUs)
#   tools/install_plan.sh system-requirements   setup.py's requirements without TensorFlow and Horovod
#
# Settings (environment; the Makefile passes its variables):
#   GPU=auto|1|0        auto: the GPU flavour when `nvidia-smi -L` lists a GPU
#   HOROVOD=build|system
#   CUDA_ARCHS="7.0 8.0 9.0"   compute capabilities of the NCCL build (HOROVOD_BUILD_CUDA_CC_LIST)
#   CUDA_HOME, NCCL_HOME       where nvcc (bin/nvcc) and NCCL (include/nccl.h, lib/) are
#   TF_VERSION, HOROVOD_VERSION, CPU_WHEEL_DIR, VENV
#   TF_CUDA_MAJOR=12    the CUDA major version the TensorFlow wheel is built for (2.18: CUDA 12.5)
#   CUDA_SEARCH         where nvcc is looked for after PATH and CUDA_HOME (default /usr/local/cuda)
#
# Horovod 0.28.1 reads (cmake/build_utils.py, CMakeLists.txt, cmake/Modules/FindNCCL.cmake):
# HOROVOD_BUILD_CUDA_CC_LIST as comma-separated integers (70,80,90), nvcc on PATH or in
# $HOROVOD_CUDA_HOME/bin, HOROVOD_NCCL_HOME/{include,lib}, and links NCCL statically unless
# HOROVOD_NCCL_LINK=SHARED (PyPI's nvidia-nccl-cu12 ships only the shared libnccl.so.2).
set -u
: "${GPU:=auto}" "${HOROVOD:=build}" "${CUDA_ARCHS:=7.0 8.0 9.0}"
: "${TF_VERSION:=2.18.1}" "${HOROVOD_VERSION:=0.28.1}" "${VENV:=.venv}" "${TF_CUDA_MAJOR:=12}"
: "${CUDA_SEARCH:=/usr/local/cuda}"
: "${CPU_WHEEL_DIR:=$HOME/.cache/hvd-pretrain/wheels/horovod-$HOROVOD_VERSION-tf$TF_VERSION}"
NCCL_RPATH='$ORIGIN/../../nvidia/nccl/lib'  # horovod/tensorflow/*.so -> site-packages/nvidia/nccl/lib

gpus_listed() {  # number of GPUs `nvidia-smi -L` lists (0 without nvidia-smi or driver)
  command -v nvidia-smi >/dev/null 2>&1 || { echo 0; return; }
  timeout 20 nvidia-smi -L 2>/dev/null | grep -c '^GPU [0-9]' || true
}

find_nvcc() {
  local c
  if [ -n "${CUDA_HOME:-}" ] && [ -x "$CUDA_HOME/bin/nvcc" ]; then echo "$CUDA_HOME/bin/nvcc"; return 0; fi
  for c in "$(command -v nvcc 2>/dev/null)" "${CUDA_HOME:+$CUDA_HOME/bin/nvcc}" "$CUDA_SEARCH/bin/nvcc"; do
    if [ -n "$c" ] && [ -x "$c" ]; then echo "$c"; return 0; fi
  done
  return 1
}

cc_list() {  # "7.0 8.0 9.0" or "70,80,90" -> 70,80,90; empty when malformed
  local out="" a
  for a in ${CUDA_ARCHS//,/ }; do
    a="${a//./}"
    [[ "$a" =~ ^[0-9]{2,3}$ ]] || return 1
    out="${out:+$out,}$a"
  done
  echo "$out"
}

plan() {  # sets FLAVOUR WHEEL_DIR TF_PIP NCCL_SOURCE ENV_WORDS REASON ERROR
  FLAVOUR=cpu WHEEL_DIR="$CPU_WHEEL_DIR" TF_PIP="tensorflow==$TF_VERSION" NCCL_SOURCE=none
  ENV_WORDS="" REASON="" ERROR=""
  local n; n=$(gpus_listed)
  case "$GPU" in
    0) REASON="GPU=0" ;;
    1) FLAVOUR=gpu REASON="GPU=1 ($n GPUs listed by nvidia-smi)" ;;
    auto|"") if [ "$n" -gt 0 ]; then FLAVOUR=gpu REASON="nvidia-smi lists $n GPUs"
             else REASON="no GPU listed by nvidia-smi"; fi ;;
    *) ERROR="GPU=$GPU is not one of 1, 0 (or unset: detect with nvidia-smi)"; return ;;
  esac
  case "$HOROVOD" in
    system) WHEEL_DIR=none TF_PIP=none
            REASON="$REASON; HOROVOD=system: the installed TensorFlow and Horovod are used, nothing is built"
            FLAVOUR="system-$FLAVOUR"; return ;;
    build|"") ;;
    *) ERROR="HOROVOD=$HOROVOD is not one of build, system"; return ;;
  esac
  [ "$FLAVOUR" = gpu ] || return
  local nvcc ccs cuda_home release here
  if ! ccs=$(cc_list) || [ -z "$ccs" ]; then
    ERROR="CUDA_ARCHS='$CUDA_ARCHS' is not a list of compute capabilities such as '7.0 8.0 9.0'"; return
  fi
  if ! nvcc=$(find_nvcc); then
    ERROR="the GPU build of Horovod needs nvcc (none on PATH, in \$CUDA_HOME/bin or $CUDA_SEARCH/bin): load the CUDA 12 toolkit (module load cuda, or set CUDA_HOME), or use the Horovod already installed with 'make install HOROVOD=system', or GPU=0 for the CPU flavour"
    return
  fi
  # The toolkit's bin directory as nvcc itself reports it (nvcc may be a wrapper script).
  here=$("$nvcc" --dryrun -c -x cu /dev/null -o /dev/null 2>&1 | sed -n 's/^#\$ _HERE_=//p' | head -1)
  cuda_home=$(dirname "${here:-$(dirname "$nvcc")}")
  release=$("$nvcc" --version 2>/dev/null | sed -n 's/.*release \([0-9][0-9.]*\).*/\1/p' | head -1)
  if [ "${release%%.*}" != "$TF_CUDA_MAJOR" ]; then
    ERROR="nvcc $nvcc is CUDA ${release:-of unknown version} but tensorflow $TF_VERSION is built for CUDA $TF_CUDA_MAJOR: load a CUDA $TF_CUDA_MAJOR toolkit (set CUDA_HOME), or use 'make install HOROVOD=system', or GPU=0 for the CPU flavour"
    return
  fi
  if [ -n "${NCCL_HOME:-}" ]; then
    if [ ! -f "$NCCL_HOME/include/nccl.h" ]; then
      ERROR="NCCL_HOME=$NCCL_HOME has no include/nccl.h: point it at an NCCL 2 install, or unset it to use PyPI's nvidia-nccl-cu12"
      return
    fi
    NCCL_SOURCE="$NCCL_HOME"
  else
    NCCL_SOURCE=pip
  fi
  TF_PIP="tensorflow[and-cuda]==$TF_VERSION"
  WHEEL_DIR="$CPU_WHEEL_DIR-cuda${release:-unknown}-nccl-cc${ccs//,/_}"
  local nccl_home="$NCCL_SOURCE"; [ "$NCCL_SOURCE" = pip ] && nccl_home="$WHEEL_DIR/nccl"
  ENV_WORDS="HOROVOD_GPU=CUDA HOROVOD_GPU_OPERATIONS=NCCL HOROVOD_CUDA_HOME=$cuda_home"
  ENV_WORDS="$ENV_WORDS HOROVOD_NCCL_HOME=$nccl_home HOROVOD_NCCL_LINK=SHARED HOROVOD_BUILD_CUDA_CC_LIST=$ccs"
  REASON="$REASON; nvcc $nvcc (CUDA ${release:-version unknown})"
}

case "${1:-show}" in
  make)
    plan
    if [ -n "$ERROR" ]; then echo "flavour=error"; exit 0; fi
    printf 'flavour=%s wheel_dir=%s nccl=%s' "$FLAVOUR" "$WHEEL_DIR" "${NCCL_SOURCE%%/*}"
    [ "$TF_PIP" != none ] && printf ' pip=%s' "$TF_PIP"
    for w in $ENV_WORDS; do printf ' env=%s' "$w"; done
    echo ;;
  reason)
    plan
    echo "$ERROR" ;;
  show)
    plan
    if [ -n "$ERROR" ]; then echo "error: $ERROR" >&2; exit 1; fi
    echo "flavour:     $FLAVOUR ($REASON)"
    case "$FLAVOUR" in
      system-*)
        echo "tensorflow:  the installed one (tf-keras of the same minor version is added)"
        echo "horovod:     the installed one, checked for TensorFlow ops$([ "$FLAVOUR" = system-gpu ] && echo ' and NCCL'); nothing is built"
        echo "venv:        $VENV with --system-site-packages" ;;
      *)
        echo "packages:    $TF_PIP tf-keras~=${TF_VERSION%.*}.0 'numpy<2.1', then horovod==$HOROVOD_VERSION from the wheel"
        echo "wheel dir:   $WHEEL_DIR"
        echo "horovod env: HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITH_MPI=1 HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1${ENV_WORDS:+ $ENV_WORDS}"
        if [ "$NCCL_SOURCE" = pip ]; then
          echo "nccl:        nvidia-nccl-cu12 from PyPI (a dependency of tensorflow[and-cuda]), linked as $WHEEL_DIR/nccl; RUNPATH $NCCL_RPATH"
        elif [ "$NCCL_SOURCE" != none ]; then
          echo "nccl:        NCCL_HOME=$NCCL_SOURCE"
        fi ;;
    esac ;;
  nccl-home)
    py=$2 dir=$3
    root=$("$py" -c 'import nvidia.nccl as n; print(list(n.__path__)[0])' 2>/dev/null) \
      || { echo "error: nvidia-nccl-cu12 is not installed in $py; run 'make install GPU=1' again, or set NCCL_HOME" >&2; exit 1; }
    lib=$(ls "$root"/lib/libnccl.so* 2>/dev/null | head -1)
    [ -n "$lib" ] && [ -f "$root/include/nccl.h" ] \
      || { echo "error: $root has no include/nccl.h or lib/libnccl.so*; reinstall nvidia-nccl-cu12, or set NCCL_HOME" >&2; exit 1; }
    mkdir -p "$dir/lib" && ln -sfn "$root/include" "$dir/include" \
      && ln -sf "$lib" "$dir/lib/libnccl.so" && ln -sf "$lib" "$dir/lib/libnccl.so.2" ;;
  check-system)
    py=$2
    out=$("$py" -c 'import horovod.tensorflow as h; print(int(h.nccl_built()))' 2>&1) \
      || { out=$(printf '%s\n' "$out" | grep . | tail -1)
           echo "error: HOROVOD=system but 'import horovod.tensorflow' fails in $py ($out): install Horovod with HOROVOD_WITH_TENSORFLOW=1 (and a venv made with --system-site-packages: make clean-venv), or leave out HOROVOD=system to build it" >&2; exit 1; }
    out=$(printf '%s\n' "$out" | tail -1)
    if [ "$(gpus_listed)" -gt 0 ] && [ "$GPU" != 0 ] && [ "${out:-0}" = 0 ]; then
      echo "error: HOROVOD=system but the installed Horovod has no NCCL operations and this node has GPUs: rebuild it with HOROVOD_GPU_OPERATIONS=NCCL, or leave out HOROVOD=system to build it" >&2; exit 1
    fi
    echo "==> using the installed Horovod: TensorFlow ops present, NCCL $([ "${out:-0}" = 0 ] && echo 'not built' || echo "version code $out")" ;;
  system-requirements)
    python3 - "$(dirname "$0")/../setup.py" <<'PY'
import ast, re, sys
tree = ast.parse(open(sys.argv[1]).read())
skip = re.compile(r"^(tensorflow|tf-keras|horovod)\b")
for node in ast.walk(tree):
    if isinstance(node, ast.keyword) and node.arg in ("install_requires", "extras_require"):
        values = node.value.elts if node.arg == "install_requires" else [
            e for k, v in zip(node.value.keys, node.value.values) if k.value == "test" for e in v.elts]
        for e in values:
            if isinstance(e, ast.Constant) and not skip.match(e.value):
                print(e.value)
PY
    ;;
  *) echo "usage: $0 make|show|check|nccl-home PY DIR|check-system PY|system-requirements" >&2; exit 2 ;;
esac
