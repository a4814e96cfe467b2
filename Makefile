# hvd-pretrain: `make demo` and `make test` install whatever is missing, then run.
# Both are idempotent: a second run reuses the venv and the cached Horovod wheel.
#
# Flavours (tools/install_plan.sh decides; `make install-plan` prints the plan, runs nothing):
#   CPU   TensorFlow and Horovod with Gloo + MPI (no GPU listed by nvidia-smi, or GPU=0).
#   GPU   tensorflow[and-cuda] and Horovod with NCCL, built with the node's CUDA 12 nvcc
#         (GPU=1, or nvidia-smi lists a GPU); CUDA_ARCHS="7.0 8.0 9.0", NCCL_HOME, CUDA_HOME.
#   HOROVOD=system  the TensorFlow and Horovod already installed (NVIDIA's TensorFlow container).

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
TF_VERSION := 2.18.1
TF_KERAS_VERSION := 2.18.0
HOROVOD_VERSION := 0.28.1
CACHE_DIR ?= $(HOME)/.cache/hvd-pretrain
CPU_WHEEL_DIR := $(CACHE_DIR)/wheels/horovod-$(HOROVOD_VERSION)-tf$(TF_VERSION)-$(notdir $(PYTHON))
GPU ?= auto
HOROVOD ?= build
CUDA_ARCHS ?= 7.0 8.0 9.0
PLAN_ENV = GPU='$(GPU)' HOROVOD='$(HOROVOD)' CUDA_ARCHS='$(CUDA_ARCHS)' TF_VERSION=$(TF_VERSION) \
  HOROVOD_VERSION=$(HOROVOD_VERSION) CPU_WHEEL_DIR='$(CPU_WHEEL_DIR)' VENV='$(VENV)'
INSTALL_PLAN := $(shell $(PLAN_ENV) tools/install_plan.sh make)
plan = $(patsubst $(1)=%,%,$(filter $(1)=%,$(INSTALL_PLAN)))
FLAVOUR := $(call plan,flavour)
WHEEL_DIR := $(call plan,wheel_dir)
TF_STAMP := $(VENV)/.tensorflow$(if $(filter gpu,$(FLAVOUR)),-cuda)
# The GPU build's extra environment; with PyPI's NCCL the library is found next to TensorFlow's.
# (Recursive variables: $$ORIGIN reaches the shell as $ORIGIN, in single quotes.)
NCCL_RPATH_LDFLAGS = LDFLAGS='-Wl,-rpath,$$ORIGIN/../../nvidia/nccl/lib'
HOROVOD_GPU_ENV = $(call plan,env)$(if $(filter pip,$(call plan,nccl)), $(NCCL_RPATH_LDFLAGS))
APT_PACKAGES := openmpi-bin libopenmpi-dev cmake g++ make
# Tests: headless Chromium drives the dashboard; tmux hosts `hvd-job start --tmux` jobs.
TEST_APT_PACKAGES := chromium chromium-driver tmux
PIP := $(BIN)/python -m pip --disable-pip-version-check
PYTEST_ARGS ?=

# Keras 2 API (tf-keras): Horovod's TensorFlow helpers need tf.Variable-backed models.
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL ?= 2
# mpirun refuses root without these; our tests and the demo run as root in CI.
export OMPI_ALLOW_RUN_AS_ROOT := 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM := 1
export HVD_PRETRAIN_CACHE := $(CACHE_DIR)
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install install-plan demo test test-fast system-deps clean-venv

# A plan that cannot work (e.g. GPU=1 without nvcc) stops these targets with its one line.
ifeq ($(FLAVOUR),error)
ifneq ($(filter install install-plan test demo,$(or $(MAKECMDGOALS),install)),)
$(error $(shell $(PLAN_ENV) tools/install_plan.sh reason))
endif
endif

ifeq ($(filter system-%,$(FLAVOUR)),)
install: system-deps $(VENV)/.installed
else
install: system-deps $(VENV)/.installed-system
endif

install-plan:
	@$(PLAN_ENV) tools/install_plan.sh show

system-deps:
	@missing=""; for p in $(APT_PACKAGES) $(EXTRA_APT); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then echo "==> system packages present: $(APT_PACKAGES) $(EXTRA_APT)"; \
	elif [ "$$(id -u)" = 0 ]; then \
	  echo "==> installing Debian packages:$$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	else \
	  echo "error: missing Debian packages:$$missing; run 'sudo apt-get install -y$$missing' and retry" >&2; exit 1; \
	fi

$(BIN)/python:
	@echo "==> creating virtualenv $(VENV) with $(PYTHON)"
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version.split()[0]' \
	  || { echo "error: set PYTHON=/path/to/python3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(if $(filter system-%,$(FLAVOUR)),--system-site-packages )$(VENV)
	$(PIP) install -q --upgrade "pip>=24" "setuptools>=69,<80" wheel

$(VENV)/.tensorflow: | $(BIN)/python
	@echo "==> installing TensorFlow $(TF_VERSION) and tf-keras $(TF_KERAS_VERSION) (about 600 MB)"
	$(PIP) install --progress-bar on "tensorflow==$(TF_VERSION)" "tf-keras==$(TF_KERAS_VERSION)" "numpy<2.1"
	@touch $@

$(VENV)/.tensorflow-cuda: | $(BIN)/python
	@echo "==> installing TensorFlow $(TF_VERSION) with CUDA 12 and cuDNN 9 from PyPI, and tf-keras (about 3 GB)"
	$(PIP) install --progress-bar on "tensorflow[and-cuda]==$(TF_VERSION)" "tf-keras==$(TF_KERAS_VERSION)" "numpy<2.1"
	@touch $@

$(WHEEL_DIR)/.built: | $(TF_STAMP)
	@echo "==> building Horovod $(HOROVOD_VERSION) against TensorFlow $(TF_VERSION) (TensorFlow + Gloo + MPI$(if $(HOROVOD_GPU_ENV), + NCCL); 3-6 minutes)"
	@echo "    the wheel is cached in $(WHEEL_DIR)"
	mkdir -p $(WHEEL_DIR)
	$(PIP) install -q packaging cloudpickle psutil pyyaml
	$(if $(filter pip,$(call plan,nccl)),tools/install_plan.sh nccl-home $(BIN)/python $(WHEEL_DIR)/nccl)
	$(HOROVOD_GPU_ENV) HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITH_MPI=1 \
	HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1 \
	CMAKE_POLICY_VERSION_MINIMUM=3.5 MAKEFLAGS=-j$$(nproc) \
	  $(PIP) wheel -v --no-build-isolation --no-deps --no-cache-dir -w $(WHEEL_DIR) "horovod==$(HOROVOD_VERSION)" \
	  2>&1 | grep --line-buffered -E '^\s*(\[ *[0-9]+%\]|Building|Created wheel|Successfully|ERROR|error)' ; \
	  test $${PIPESTATUS[0]} = 0
	@ls $(WHEEL_DIR)/horovod-$(HOROVOD_VERSION)-*.whl >/dev/null && touch $@

# Our CPU kernels (hvd_pretrain/kernels: AdamW, cross-entropy), compiled once into $(CACHE_DIR)/kernels;
# without them training runs TensorFlow's stock ops (the same results, slower), so a failed build only warns.
BUILD_KERNELS = @echo "==> compiling our CPU kernels (about 25 s)"; \
	$(BIN)/python -m hvd_pretrain.kernels || echo "warning: our CPU kernels were not built; training uses TensorFlow's stock ops" >&2

# GPU flavour: a CPU Horovod may be in the venv already; the NCCL wheel replaces it.
$(VENV)/.installed: setup.py $(WHEEL_DIR)/.built | $(TF_STAMP)
	@echo "==> installing hvd-pretrain and its dependencies (Horovod from $(WHEEL_DIR))"
	$(if $(HOROVOD_GPU_ENV),$(PIP) install --no-deps --force-reinstall $(WHEEL_DIR)/horovod-$(HOROVOD_VERSION)-*.whl)
	$(PIP) install --progress-bar on --find-links $(WHEEL_DIR) -e '.[test]'
	@$(BIN)/horovodrun --check-build | sed -n '/Available Frameworks/,$$p'
	$(BUILD_KERNELS)
	@touch $@

# HOROVOD=system: keep the installed TensorFlow and Horovod; add tf-keras of TensorFlow's version.
$(VENV)/.installed-system: setup.py | $(BIN)/python
	@$(PLAN_ENV) tools/install_plan.sh check-system $(BIN)/python
	@tf=$$($(BIN)/python -c 'import tensorflow as tf; print(".".join(tf.__version__.split(".")[:2]))') && \
	  echo "==> installing hvd-pretrain without rebuilding: TensorFlow $$tf, tf-keras~=$$tf.0" && \
	  tools/install_plan.sh system-requirements | xargs -d '\n' $(PIP) install --progress-bar on "tf-keras~=$$tf.0" && \
	  $(PIP) install --no-deps -e .
	@$(BIN)/horovodrun --check-build | sed -n '/Available Frameworks/,$$p'
	$(BUILD_KERNELS)
	@touch $@

demo: install
	@echo "==> running: horovodrun -np 2 hvd-pretrain"
	horovodrun -np 2 hvd-pretrain

# The tests not marked slow or horovod (most start no process; a few run one short single-process
# hvd-pretrain or hvd-export under a timeout) run in TEST_WORKERS pytest-xdist workers; the ones
# marked slow or horovod (training runs, Horovod ranks, supervised jobs, the fault tests) run one at
# a time after them, so their ranks and timeouts get the machine to themselves.
TEST_WORKERS ?= 2
FAST_TESTS := -m "not horovod and not slow"
# PYTEST_STATUS: the exit status of the pytest runs whose codes are in $$rcs. A failure wins;
# pytest's 5 ("no tests collected") is an error only when no run collected anything.
PYTEST = $(BIN)/python -m pytest
PYTEST_STATUS = for rc in $$rcs; do case $$rc in 0|5) ;; *) exit $$rc;; esac; done; \
	case " $$rcs " in *" 0 "*) ;; *) echo "error: pytest collected no tests" >&2; exit 1;; esac

test: EXTRA_APT = $(TEST_APT_PACKAGES)
test: install
	@echo "==> running the test suite: the tests not marked slow or horovod in $(TEST_WORKERS) workers, then those one at a time"
	@$(PYTEST) -n $(TEST_WORKERS) $(FAST_TESTS) $(PYTEST_ARGS); rcs=$$?; \
	$(PYTEST) -m "horovod or slow" $(PYTEST_ARGS); rcs="$$rcs $$?"; $(PYTEST_STATUS)

# The quick loop while developing (about 5 minutes on 2 cores): no multi-process Horovod runs, no long
# training or supervised jobs.
test-fast: EXTRA_APT = $(TEST_APT_PACKAGES)
test-fast: install
	@echo "==> running the fast tests (-m 'not horovod and not slow', $(TEST_WORKERS) workers; make test runs them all)"
	@$(PYTEST) -n $(TEST_WORKERS) $(FAST_TESTS) $(PYTEST_ARGS); rcs=$$?; $(PYTEST_STATUS)

clean-venv:
	rm -rf $(VENV)
