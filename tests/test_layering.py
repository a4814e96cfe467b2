"""Imports go down, never up: the package rules of the design notes, read from the source.

    bottom (rundir, textio, inputs, errors, cache, ...)  <- vocab <- data <- train -> models -> kernels;  finetune -> train, export
    models and plan use neither data nor vocab; supervisor and telemetry use only the bottom
    and never TensorFlow; Horovod only in train and cli; cli is on top.

Every `import` in hvd_pretrain counts, also those inside functions (a lazy import is
still a dependency).
"""

import ast
import os

import pytest

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "hvd_pretrain")

# Modules at the top of hvd_pretrain/ that everyone may use. tfcompat is TensorFlow itself.
BOTTOM = {"rundir", "textio", "inputs", "errors", "configs", "numbered", "ragged", "checkpoint_files", "tfcompat",
          "nvidia", "cache"}
ALLOWED = {
    "bottom": BOTTOM,
    "vocab": BOTTOM,
    "data": BOTTOM | {"vocab"},
    "corpus": BOTTOM | {"data"},
    "models": BOTTOM | {"kernels"},
    "kernels": BOTTOM,
    "plan": BOTTOM | {"models"},
    "export": BOTTOM | {"models", "vocab"},
    "train": BOTTOM | {"vocab", "data", "corpus", "models", "plan", "export", "kernels"},
    "finetune": BOTTOM | {"vocab", "models", "export", "train"},
    "supervisor": BOTTOM - {"tfcompat"},
    "telemetry": BOTTOM - {"tfcompat"},
    "cli": None,  # anything
}
NO_TENSORFLOW = {"supervisor", "telemetry", "rundir", "textio", "inputs", "errors", "configs", "numbered", "ragged",
                 "nvidia", "cache"}
HOROVOD_ALLOWED = {"train", "cli"}


def _layer(module):
    """hvd_pretrain.train.session -> 'train'; hvd_pretrain.rundir -> 'rundir' (or 'bottom' for its own rules)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "package"


def _imports():
    """(importing module, imported module, line) for every import in hvd_pretrain."""
    found = []
    for base, _, files in os.walk(ROOT):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(base, name)
            module = os.path.relpath(path[:-3], os.path.dirname(ROOT)).replace(os.sep, ".")
            module = module[: -len(".__init__")] if module.endswith(".__init__") else module
            with open(path, encoding="utf-8") as f:
                tree = ast.parse(f.read(), path)
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    found += [(module, alias.name, node.lineno) for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    found += [(module, node.module, node.lineno)]
    return found


IMPORTS = _imports()


def _violations(rule):
    return ["%s:%d imports %s" % (src, line, dst) for src, dst, line in IMPORTS if rule(src, dst)]


def test_the_rules_see_the_code():
    # A test that found no import at all would pass for the wrong reason.
    assert len(IMPORTS) > 300
    assert any(src == "hvd_pretrain.train.session" and dst == "hvd_pretrain.models.features"
               for src, dst, _ in IMPORTS)


def test_packages_import_only_downwards():
    def wrong(src, dst):
        if not dst.startswith("hvd_pretrain.") or _layer(src) == _layer(dst):
            return False
        layer = "bottom" if _layer(src) in BOTTOM else _layer(src)
        allowed = ALLOWED.get(layer, ())
        return allowed is not None and _layer(dst) not in allowed
    assert _violations(wrong) == []


@pytest.mark.parametrize("package", sorted(NO_TENSORFLOW))
def test_tensorflow_stays_out_of(package):
    def wrong(src, dst):
        return _layer(src) == package and (dst.split(".")[0] == "tensorflow" or dst == "hvd_pretrain.tfcompat")
    assert _violations(wrong) == []


def test_horovod_only_in_train_and_cli():
    def wrong(src, dst):
        return dst.split(".")[0] == "horovod" and _layer(src) not in HOROVOD_ALLOWED
    assert _violations(wrong) == []


def test_the_layering_check_catches_an_upward_import():
    def wrong(src, dst):
        layer = "bottom" if _layer(src) in BOTTOM else _layer(src)
        allowed = ALLOWED.get(layer, ())
        return allowed is not None and _layer(dst) not in allowed
    assert wrong("hvd_pretrain.models.bert", "hvd_pretrain.data.pipeline")
    assert wrong("hvd_pretrain.rundir", "hvd_pretrain.train.session")
    assert not wrong("hvd_pretrain.train.session", "hvd_pretrain.models.features")
