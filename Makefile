# hvd-pretrain: `make demo` and `make test` install whatever is missing, then run.
# Both are idempotent: a second run reuses the venv and the cached Horovod wheel.

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
TF_VERSION := 2.18.1
TF_KERAS_VERSION := 2.18.0
HOROVOD_VERSION := 0.28.1
CACHE_DIR ?= $(HOME)/.cache/hvd-pretrain
WHEEL_DIR := $(CACHE_DIR)/wheels/horovod-$(HOROVOD_VERSION)-tf$(TF_VERSION)-$(notdir $(PYTHON))
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

.PHONY: install demo test system-deps clean-venv

install: system-deps $(VENV)/.installed

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
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade "pip>=24" "setuptools>=69,<80" wheel

$(VENV)/.tensorflow: | $(BIN)/python
	@echo "==> installing TensorFlow $(TF_VERSION) and tf-keras $(TF_KERAS_VERSION) (about 600 MB)"
	$(PIP) install --progress-bar on "tensorflow==$(TF_VERSION)" "tf-keras==$(TF_KERAS_VERSION)" "numpy<2.1"
	@touch $@

$(WHEEL_DIR)/.built: | $(VENV)/.tensorflow
	@echo "==> building Horovod $(HOROVOD_VERSION) against TensorFlow $(TF_VERSION) (TensorFlow + Gloo + MPI; 3-6 minutes)"
	@echo "    the wheel is cached in $(WHEEL_DIR)"
	mkdir -p $(WHEEL_DIR)
	$(PIP) install -q packaging cloudpickle psutil pyyaml
	HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITH_MPI=1 \
	HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1 \
	CMAKE_POLICY_VERSION_MINIMUM=3.5 MAKEFLAGS=-j$$(nproc) \
	  $(PIP) wheel -v --no-build-isolation --no-deps --no-cache-dir -w $(WHEEL_DIR) "horovod==$(HOROVOD_VERSION)" \
	  2>&1 | grep --line-buffered -E '^\s*(\[ *[0-9]+%\]|Building|Created wheel|Successfully|ERROR|error)' ; \
	  test $${PIPESTATUS[0]} = 0
	@ls $(WHEEL_DIR)/horovod-$(HOROVOD_VERSION)-*.whl >/dev/null && touch $@

$(VENV)/.installed: setup.py $(WHEEL_DIR)/.built | $(VENV)/.tensorflow
	@echo "==> installing hvd-pretrain and its dependencies (Horovod from $(WHEEL_DIR))"
	$(PIP) install --progress-bar on --find-links $(WHEEL_DIR) -e '.[test]'
	@$(BIN)/horovodrun --check-build | sed -n '/Available Frameworks/,$$p'
	@touch $@

demo: install
	@echo "==> running: horovodrun -np 2 hvd-pretrain"
	horovodrun -np 2 hvd-pretrain

test: EXTRA_APT = $(TEST_APT_PACKAGES)
test: install
	@echo "==> running the test suite"
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc = 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$rc

clean-venv:
	rm -rf $(VENV)
