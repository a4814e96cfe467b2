"""absl flags generated from the configuration sections' `option` fields (hvd_pretrain/configs.py).

Every tool that exposes a section's option declares it through `define`, so the
flag's name, type, help and default come from one place. A deprecated flag name
is still accepted for one release: `read` takes its value with a warning on
stderr, and refuses it when the new name is given too with another value.
"""

import sys
import typing

from absl import flags

from hvd_pretrain.errors import ConfigError


def _kind(field):
    hint = field.type if isinstance(field.type, type) else {"int": int, "float": float, "bool": bool,
                                                             "str": str}.get(str(field.type), str)
    if typing.get_origin(hint) is typing.Union:  # Optional[int]
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


def _define_one(name, field, meta, default, fv, module, help_suffix=""):
    helptext = meta["help"] + help_suffix
    where = dict(flag_values=fv, module_name=module)
    if meta.get("choices"):
        flags.DEFINE_enum(name, default, list(meta["choices"]), helptext, **where)
        return
    kind = _kind(field)
    if kind is bool:
        flags.DEFINE_bool(name, default, helptext, **where)
    elif kind is int:
        flags.DEFINE_integer(name, default, helptext, **where)
    elif kind is float:
        flags.DEFINE_float(name, default, helptext, **where)
    else:
        flags.DEFINE_string(name, default, helptext, **where)


def define(section, fv, only=None, skip=(), defaults=None, override=False):
    """Declare one flag per `option` field of `section` (a Config class) in FlagValues `fv`.

    only/skip: field names to include/exclude. defaults: {field: default} replacing the
    section's. override=True declares every flag with default None (meaning "keep the
    value from elsewhere", e.g. a model preset). Flags already declared in `fv` (the same
    option in two sections, e.g. --seed) are declared once. Returns the field names declared.
    """
    module = sys._getframe(1).f_globals.get("__name__", __name__)  # help lists the flags under the tool
    declared = []
    for field, name, meta in section.options():
        if (only is not None and field.name not in only) or field.name in skip:
            continue
        if name in fv:
            declared.append(field.name)
            continue
        default = None if override else (defaults or {}).get(field.name, field.default)
        _define_one(name, field, meta, default, fv, module)
        for old in meta.get("deprecated", ()):
            _define_one(old, field, meta, None, fv, module, help_suffix=" Deprecated name of --%s." % name)
        declared.append(field.name)
    return declared


def read(section, fv, names, warn=None):
    """{field: value} of the flags `define` declared for `names`, with deprecated names resolved.

    Values are only those given or defaulted on the command line; with override=True a flag
    left at None is left out. A deprecated name prints one warning line through `warn`
    (default: stderr); given together with its new name and another value it is a ConfigError.
    """
    warn = warn or (lambda line: print(line, file=sys.stderr, flush=True))
    values = {}
    for field, name, meta in section.options():
        if field.name not in names:
            continue
        value = fv[name].value
        for old in meta.get("deprecated", ()):
            if fv[old].present:
                if fv[name].present and fv[old].value != value:
                    raise ConfigError("--%s=%s and --%s=%s both given; --%s is the old name of --%s: keep one"
                                      % (old, fv[old].value, name, value, old, name))
                warn("warning: --%s is deprecated; use --%s (it still works in this release)" % (old, name))
                value = fv[old].value
        if value is not None:
            values[field.name] = value
    return values


def present(section, fv, names):
    """Field names among `names` whose flag (or a deprecated name of it) was given explicitly."""
    given = set()
    for field, name, meta in section.options():
        if field.name in names and (fv[name].present or any(fv[o].present for o in meta.get("deprecated", ()))):
            given.add(field.name)
    return given


def define_deprecated(fv, renamed, module=None):
    """Declare each old name of {old: new} (new already declared) as a deprecated flag of the same type."""
    for old, new in renamed.items():
        flags.DEFINE(fv[new].parser, old, None, "Deprecated name of --%s." % new, flag_values=fv,
                     module_name=module or sys._getframe(1).f_globals.get("__name__", __name__))


def resolve_deprecated(fv, renamed, warn=None):
    """Move the values given under old names of {old: new} to the new names, with one warning each."""
    warn = warn or (lambda line: print(line, file=sys.stderr, flush=True))
    for old, new in renamed.items():
        if not fv[old].present:
            continue
        if fv[new].present and fv[new].value != fv[old].value:
            raise ConfigError("--%s=%s and --%s=%s both given; --%s is the old name of --%s: keep one"
                              % (old, fv[old].value, new, fv[new].value, old, new))
        warn("warning: --%s is deprecated; use --%s (it still works in this release)" % (old, new))
        fv[new].value = fv[old].value
