"""Lazy public names of a package (PEP 562): a name is imported from its submodule on first
access, so a process that needs one light function does not pay for the heavy ones."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any


def lazy_attributes(
    package: str,
    where: Mapping[str, str],
    namespace: MutableMapping[str, Any],
    public: Sequence[str],
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Module ``__getattr__`` and ``__dir__`` for ``package``.

    ``where`` maps a public name to the submodule that defines it; ``namespace`` is the
    package's ``globals()``, where a resolved name is stored (later look-ups bypass
    ``__getattr__``); ``public`` is its ``__all__``.
    """

    def getattr_(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def dir_() -> list[str]:
        return sorted({*namespace, *public})

    return getattr_, dir_
