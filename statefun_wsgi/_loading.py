"""The one loader of ``"pkg.module:attr"`` references, for the CLI and the Django settings.

Usage::

    functions = load_object("myproject.functions:functions")
    functions = load_object("myproject.functions.functions", require_attribute=True)
    app = load_object("myproject.app:create_app('prod', debug=False)")

What it reads:

* ``"pkg.module:attr"``; ``attr`` may be dotted (``"pkg.module:obj.attr"``), and may end
  in a call with literal arguments, an app factory as gunicorn reads it
  (``"pkg.module:create_app()"``): the loader returns what the call returns;
* ``"pkg.module.attr"`` (no colon): the last dotted part is the attribute, unless the whole
  reference is a module and ``require_attribute`` is false (the CLI takes a bare module);
* never a relative module (``".module:attr"``): there is no package to resolve it against.

Every mistake raises :class:`LoadError` (an ``ImportError``) with a one-line message, an
``ImportError`` raised inside the module too; any other exception raised while importing
the module propagates as it is.
"""

from __future__ import annotations

import ast
import importlib
from typing import Any, Dict, List, Optional, Tuple

__all__ = ["LoadError", "load_object"]


class LoadError(ImportError):
    """A reference that names nothing importable; the message is one line."""


def load_object(reference: str, *, require_attribute: bool = False) -> Any:
    """What ``reference`` names (see the module docstring); ``require_attribute``: a bare
    module is refused (``"pkg.module:"`` or ``"pkg"``), for a setting that names an object."""
    if ":" in reference:
        module_name, _, attribute = reference.partition(":")
    elif require_attribute:
        module_name, _, attribute = reference.rpartition(".")
    else:
        module_name, attribute = reference, ""
    if not module_name or module_name.startswith(".") or (require_attribute and not attribute):
        raise LoadError(f"{reference!r} is not a dotted path like 'pkg.module:attr' or 'pkg.module.attr'")
    call: Optional[Tuple[List[Any], Dict[str, Any]]] = None
    if "(" in attribute or ")" in attribute:
        attribute, call = _parse_factory_call(reference, attribute)
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if attribute or exc.name != module_name or "." not in module_name:
            raise LoadError(f"cannot import {module_name!r}: {exc}") from None
        # "pkg.module.attr" with no colon: not a module, so an attribute of pkg.module.
        module_name, _, attribute = module_name.rpartition(".")
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as again:
            raise LoadError(f"cannot import {reference!r}: {again}") from None
    except ImportError as exc:
        raise LoadError(f"cannot import {module_name!r}: {exc}") from None
    for part in filter(None, attribute.split(".")):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise LoadError(f"module {module_name!r} has no attribute {attribute!r}") from None
    if call is not None:
        args, kwargs = call
        try:
            obj = obj(*args, **kwargs)
        except Exception as exc:
            raise LoadError(f"{reference}: the factory raised {type(exc).__name__}: {exc}") from None
    return obj


def _parse_factory_call(reference: str, text: str) -> Tuple[str, Tuple[List[Any], Dict[str, Any]]]:
    """``"create_app('x', debug=True)"`` -> ``("create_app", (['x'], {'debug': True}))``."""
    try:
        expression = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        raise LoadError(f"{reference!r}: {text!r} is not an attribute name or a call like create_app()") from None
    if not isinstance(expression, ast.Call) or not isinstance(expression.func, ast.Name):
        raise LoadError(f"{reference!r}: an app factory is called by its plain name, like create_app()")
    try:
        args = [ast.literal_eval(argument) for argument in expression.args]
        kwargs = {keyword.arg: ast.literal_eval(keyword.value) for keyword in expression.keywords if keyword.arg}
    except ValueError:
        raise LoadError(f"{reference!r}: a factory's arguments must be literals (strings, numbers, ...)") from None
    if any(keyword.arg is None for keyword in expression.keywords):
        raise LoadError(f"{reference!r}: a factory's arguments must be literals (no **kwargs)")
    return expression.func.id, (args, kwargs)
