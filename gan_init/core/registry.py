"""Small name -> object registries that refuse duplicates and answer typos with the nearest names."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """A dict behind a decorator.

    >>> BACKBONES = Registry("backbone")
    >>> @BACKBONES.register("resnet")
    ... def build_resnet(...): ...
    >>> BACKBONES.get("resnte")  # KeyError: unknown backbone 'resnte'; did you mean 'resnet'?
    """

    def __init__(self, kind: str, **defaults: Any) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._defaults = defaults
        self._meta: dict[str, dict[str, Any]] = {}

    def register(self, name: str, **meta: Any) -> Callable[[T], T]:
        """Register under ``name``, with what other code needs to know about the entry as
        keyword metadata (keys declared as the registry's defaults; ``meta(name)`` reads them)."""
        unknown = set(meta) - set(self._defaults)
        if unknown:
            raise ValueError(
                f"{self.kind} {name!r}: unknown metadata {sorted(unknown)}; "
                f"known: {sorted(self._defaults)}"
            )

        def decorator(obj: T) -> T:
            if name in self._items:
                raise ValueError(
                    f"{self.kind} {name!r} is already registered (by {self._items[name]!r}); "
                    "pick another name"
                )
            self._items[name] = obj
            self._meta[name] = {**self._defaults, **meta}
            return obj

        return decorator

    def meta(self, name: str) -> dict[str, Any]:
        """The metadata of entry ``name`` (a did-you-mean KeyError for an unknown name)."""
        self.get(name)
        return dict(self._meta[name])

    def describe(self) -> str:
        """``name: first docstring line`` of every entry, for help texts."""
        lines = []
        for name in self:
            doc = (getattr(self._items[name], "__doc__", None) or "").strip().splitlines()
            lines.append(f"{name}: {doc[0].rstrip('.')}" if doc else name)
        return "; ".join(lines)

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        near = difflib.get_close_matches(str(name), list(self._items), n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(n) for n in near)}?" if near else ""
        return f"unknown {self.kind} {name!r}{hint} (known: {', '.join(sorted(self._items))})"

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def __len__(self) -> int:
        return len(self._items)


def check_choice(option: str, value: str, choices: list[str] | tuple[str, ...]) -> str:
    """Validate a string option against its choices, with a did-you-mean on a typo."""
    if value in choices:
        return value
    near = difflib.get_close_matches(str(value), list(choices), n=1, cutoff=0.5)
    hint = f"; did you mean {near[0]!r}?" if near else ""
    raise ValueError(f"{option}={value!r} is not one of {', '.join(map(repr, choices))}{hint}")
