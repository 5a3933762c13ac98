"""One way to extend bayesattn: a named registry with a decorator, ``names()`` and ``get()``.

Models, sequence models, attention kernels, encoders, posterior heads, training
objectives and experiments are each kept in a :class:`Registry`::

    from bayesattn.inference import ENCODERS

    @ENCODERS.register("my-encoder")
    class MyEncoder(SetEncoder): ...

    ENCODERS.names()             # [..., "my-encoder", ...]
    ENCODERS.get("my-encodr")    # error: unknown encoder 'my-encodr'; did you mean 'my-encoder'?

The lowest layer: it imports nothing from bayesattn.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")

__all__ = ["Registry"]


class Registry(Generic[T]):
    """Name -> object (usually a class), filled by a decorator.

    Args:
        kind: What it holds, in words (``"encoder"``), for messages.
        error: The exception :meth:`get` raises for an unknown name (a ``KeyError`` or
            ``ValueError`` subclass is usual); its message names close matches and
            every registered name.
        base: When given, only subclasses of ``base`` may be registered (TypeError
            otherwise).
        own_name: Each object is registered under its own ``name`` attribute (ValueError
            otherwise).
        check: Optional ``check(name, obj)`` called before an object is registered; it
            raises ``TypeError`` or ``ValueError`` for what does not belong here.
        hint: A sentence appended to the unknown-name message (e.g. how to register).
    """

    def __init__(self, kind: str, *, error: type[Exception] = KeyError,
                 base: type | None = None, own_name: bool = False,
                 check: Callable[[str, T], None] | None = None, hint: str = "") -> None:
        self.kind, self.error, self.hint, self.base = kind, error, hint, base
        self.own_name = own_name
        self._check = check
        self._items: dict[str, T] = {}

    def register(self, name: str | None = None, obj: T | None = None, *,
                 replace: bool = False) -> Any:
        """Add ``obj`` under ``name``: ``@reg.register("name")`` above a class or function,
        or ``reg.register("name", obj)``. Without a name, ``obj.name`` is used
        (``@reg.register()``).

        Registering the same object again (a reloaded module: same module and qualified
        name) is allowed; another object under a taken name needs ``replace=True``.

        Returns:
            The object (so that it works as a decorator), or the decorator.

        Raises:
            ValueError: the name is empty or taken by another object.
        """
        if obj is None:
            def decorator(target: T) -> T:
                self._add(name, target, replace)
                return target

            return decorator
        self._add(name, obj, replace)
        return obj

    def _add(self, name: str | None, obj: T, replace: bool) -> None:
        if self.base is not None and not (isinstance(obj, type) and issubclass(obj, self.base)):
            raise TypeError(f"a {self.kind} must be a {self.base.__name__} subclass; got "
                            f"{obj!r}")
        own = getattr(obj, "name", None)
        name = own if name is None else name
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} needs a non-empty string name; got {name!r}")
        if self.own_name and own != name:
            what = getattr(obj, "__name__", repr(obj))
            raise ValueError(f"{self.kind} {name!r}: {what}.name is {own!r}; a {self.kind} is "
                             "registered under its own name")
        if self._check is not None:
            self._check(name, obj)
        old = self._items.get(name)
        if old is not None and old is not obj and not replace and _where(old) != _where(obj):
            raise ValueError(
                f"{self.kind} name {name!r} is already registered by {_where(old)}; pick "
                "another name, unregister it first, or pass replace=True")
        self._items[name] = obj

    def unregister(self, name: str) -> T:
        """Remove ``name`` and return what it held (raises like :meth:`get` if absent)."""
        self.get(name)
        return self._items.pop(name)

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._items)

    def get(self, name: str) -> T:
        """What ``name`` holds.

        Raises:
            The registry's ``error``: no such name; the message suggests close names
            and lists the registered ones.
        """
        if isinstance(name, str) and name in self._items:
            return self._items[name]
        raise self.error(self.unknown(name))

    def unknown(self, name: object) -> str:
        """The message for an unknown ``name``."""
        known = self.names()
        close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        listing = ", ".join(known) if known else "none registered"
        extra = f" {self.hint}" if self.hint else ""
        return f"unknown {self.kind} {name!r}{hint} (known: {listing}).{extra}"

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self.names())})"


def _where(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"
