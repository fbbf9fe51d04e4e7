"""Check a composed config before anything is built: a bad value is one line naming the key, the value and what is
allowed, before a data file is opened or a minute of setup is spent.

Each block with a `_target_` (data, model and its optimizer and scheduler, trainer, each callback) is checked
against its target's own signature: every key must be an argument (unless the target takes **kwargs), and every
value must fit the argument's annotation. What an annotation cannot say (ranges, choices) comes from a small table
per target in seqlab/config_rules.py. Reading the signatures, rather than declaring ConfigStore dataclasses,
keeps one description of each argument where it already is: a dataclass would repeat every signature a third
time (code, YAML, schema) and drift from them. The constructors keep their own checks for Python callers.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import os
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from seqlab.config_rules import RULES, SET_ELSEWHERE, Allowed, is_int, is_number, qualified_name, shown
from seqlab.errors import ConfigError

GROUPS = ("data", "model", "trainer", "callbacks")  # the groups of train.yaml whose blocks build objects
HYDRA_KEYS = {"_target_", "_partial_", "_convert_", "_recursive_", "_args_"}
UNCHECKED = object()  # a value that cannot be read yet (`???`, an interpolation resolved only under @hydra.main)


def check_config(cfg: DictConfig, groups: Iterable[str] = GROUPS) -> None:
    """Raise ConfigError for the first key of `groups` that its target would refuse, or that it does not take."""
    for group in groups:
        node = cfg.get(group)
        if isinstance(node, DictConfig):
            _check_tree(node, group)


def check_settings(settings: Mapping[str, Any], target: Callable, where: str) -> None:
    """Check plain values (no `_target_` of their own) as arguments of `target`: changes to a checkpoint's data, say."""
    spec = Spec.of(target)
    for key, value in settings.items():
        spec.check(key, value, where, qualified_name(target))


def _check_tree(node: DictConfig, where: str) -> None:
    if "_target_" in node:
        _check_target(node, where)
        return
    for key in node:  # a group of named blocks: callbacks.model_checkpoint, callbacks.early_stopping...
        child = _value(node, key)
        if isinstance(child, DictConfig):
            _check_tree(child, f"{where}.{key}")


def _check_target(node: DictConfig, where: str) -> None:
    name = _value(node, "_target_")
    if name is UNCHECKED:
        return
    target = import_target(name)
    if target is None:
        raise ConfigError(f"{where}._target_={name} cannot be imported: check its spelling")
    spec = Spec.of(target)
    for key in node:
        if key in HYDRA_KEYS:
            continue
        value = _value(node, key)
        if isinstance(value, DictConfig) and "_target_" in value:
            spec.check_key(key, value, where, name)
            _check_target(value, f"{where}.{key}")
        elif value is not UNCHECKED:
            spec.check(key, _plain(value), where, name)


def import_target(path: str) -> Any:
    """The object a dotted path names, or None; quietly, unlike Hydra's get_object, which logs the failure."""
    parts = str(path).split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        try:
            return functools.reduce(getattr, parts[split:], found)
        except AttributeError:
            return None
    return None


def _value(node: DictConfig, key: str) -> Any:
    try:
        return node[key]
    except OmegaConfBaseException:
        return UNCHECKED


def _plain(value: Any) -> Any:
    if isinstance(value, (DictConfig, ListConfig)):
        try:
            return OmegaConf.to_container(value, resolve=True)
        except OmegaConfBaseException:
            return UNCHECKED
    return value


@dataclass(frozen=True)
class Spec:
    """What a target takes: its arguments' annotations, the rules of config_rules.py, the keys set elsewhere."""

    parameters: dict[str, Any]  # name -> annotation (inspect.Parameter.empty where there is none)
    takes_any: bool  # **kwargs: keys beyond the named arguments are the target's business
    rules: dict[str, Allowed]
    set_elsewhere: dict[str, str]

    @staticmethod
    @functools.cache
    def of(target: Callable) -> Spec:
        named, takes_any = _parameters(target)
        rules, elsewhere = {}, {}
        for owner in reversed(inspect.getmro(target)) if inspect.isclass(target) else (target,):
            name = qualified_name(owner)
            rules.update(RULES[name]() if name in RULES else {})
            elsewhere.update(SET_ELSEWHERE.get(name, {}))
        return Spec(named, takes_any, rules, elsewhere)

    def check_key(self, key: str, value: Any, where: str, target: str) -> None:
        if key in self.set_elsewhere:
            raise ConfigError(f"{where}.{key}={_shown(value)} is not a config key here: {self.set_elsewhere[key]}")
        if key not in self.parameters and not self.takes_any:
            allowed = [k for k in self.parameters if k not in self.set_elsewhere]
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"did you mean {where}.{close[0]}? " if close else ""
            raise ConfigError(
                f"{where}.{key}={_shown(value)} is not an argument of {target}: {hint}allowed: {', '.join(allowed)}"
            )

    def check(self, key: str, value: Any, where: str, target: str) -> None:
        self.check_key(key, value, where, target)
        if value is UNCHECKED:
            return
        annotation = self.parameters.get(key, inspect.Parameter.empty)
        rule = self.rules.get(key)
        if rule is not None and rule.own_type:
            fits = (value is None and accepts_none(annotation)) or _passes(rule, value)
        else:
            fits = conforms(value, annotation) and (rule is None or value is None or _passes(rule, value))
        if not fits:
            raise ConfigError(f"{where}.{key}={shown(value)} must be {allowed_text(annotation, rule)}")


def _shown(value: Any) -> str:
    value = _plain(value)
    return "..." if value is UNCHECKED else shown(value)


def _parameters(target: Callable) -> tuple[dict[str, Any], bool]:
    """Named arguments and their annotations, and whether any other key is welcome. A class whose __init__ passes
    **kwargs on to its base (seqlab's ModelCheckpoint to Lightning's) takes the base's arguments too."""
    named, takes_any = {}, False
    for owner in inspect.getmro(target) if inspect.isclass(target) else (target,):
        if owner is object:
            break
        if inspect.isclass(owner) and "__init__" not in vars(owner):
            continue
        parameters = _signature(owner).parameters.values()
        for p in parameters:
            if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
                named.setdefault(p.name, p.annotation)
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
        if not takes_any:
            break
    return named, takes_any


def _signature(target: Callable) -> inspect.Signature:
    try:
        return inspect.signature(target, eval_str=True)
    except Exception:  # noqa: BLE001 (an annotation naming what only type checkers import: keep it unread)
        return inspect.signature(target)


def _passes(rule: Allowed, value: Any) -> bool:
    try:
        return bool(rule.test(value))
    except (TypeError, ValueError):
        return False


def allowed_text(annotation: Any, rule: Allowed | None) -> str:
    """What the error message offers: the rule's words, else the annotation's, with null where it is allowed."""
    if rule is None:
        return describe(annotation)
    return f"{rule.text} or null" if accepts_none(annotation) and "null" not in rule.text else rule.text


def accepts_none(annotation: Any) -> bool:
    return annotation is None or annotation is type(None) or (
        _is_union(annotation) and any(accepts_none(a) for a in typing.get_args(annotation))
    )


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def conforms(value: Any, annotation: Any) -> bool:
    """Whether a config value (plain Python, lists and dicts included) fits an annotation; True where it cannot tell."""
    if annotation is inspect.Parameter.empty or annotation is Any or isinstance(annotation, (str, typing.TypeVar)):
        return True
    if annotation is None or annotation is type(None):
        return value is None
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if _is_union(annotation):
        return any(conforms(value, a) for a in args)
    if origin is typing.Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return is_int(value)
    if annotation is float:
        return is_number(value)
    if annotation is str:
        return isinstance(value, str)
    if annotation in (Path, os.PathLike):
        return isinstance(value, str)
    if origin is tuple or annotation is tuple:
        if not isinstance(value, (list, tuple)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(conforms(v, args[0]) for v in value)
        return not args or (len(args) == len(value) and all(conforms(v, a) for v, a in zip(value, args)))
    if origin in (list, Sequence, Iterable) or annotation in (list, Sequence):
        return isinstance(value, (list, tuple)) and (not args or all(conforms(v, args[0]) for v in value))
    if origin in (dict, Mapping) or annotation in (dict, Mapping):
        if not isinstance(value, dict):
            return False
        return not args or all(conforms(k, args[0]) and conforms(v, args[1]) for k, v in value.items())
    if inspect.isclass(annotation):  # an object (Tensor, Accelerator, timedelta): no config value is one
        return isinstance(value, annotation)
    return True  # Callable and other typing forms: built by a `_target_` block, checked as such


NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
PLURALS = {bool: "booleans", int: "integers", float: "numbers", str: "strings"}


def describe(annotation: Any) -> str:
    """An annotation in words: `int | None` -> "an integer or null"."""
    literals, words = [], []
    for part in typing.get_args(annotation) if _is_union(annotation) else (annotation,):
        if typing.get_origin(part) is typing.Literal:
            literals += [shown(a) for a in typing.get_args(part) if shown(a) not in literals]
        elif part is not None and part is not type(None):
            words.append(_word(part))
    if literals:
        words.insert(0, "one of " + ", ".join(literals))
    if accepts_none(annotation):
        words.append("null")
    return " or ".join(dict.fromkeys(words)) or "null"


def _word(annotation: Any) -> str:
    if annotation in NAMES:
        return NAMES[annotation]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is tuple and args and args[-1] is not Ellipsis:
        return f"a list of {len(args)} values"
    if origin in (list, tuple, Sequence, Iterable):
        return f"a list of {PLURALS.get(args[0], 'values')}" if args else "a list"
    if origin in (dict, Mapping):
        return "a mapping"
    return f"a {getattr(annotation, '__name__', str(annotation))}"
