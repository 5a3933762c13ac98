"""The one extension idiom: Registry (decorator, names(), get() with a close-match error)."""

from __future__ import annotations

import pytest

from bayesattn._registry import Registry


class UnknownThing(KeyError):
    pass


def test_register_names_get_and_unregister():
    reg = Registry("widget", error=UnknownThing)

    @reg.register("round-widget")
    class Round:
        pass

    class Square:
        name = "square-widget"

    assert reg.register(None, Square) is Square  # the object's own name
    assert reg.names() == ["round-widget", "square-widget"] == list(reg)
    assert reg.get("round-widget") is Round and "square-widget" in reg and len(reg) == 2
    assert reg.unregister("square-widget") is Square and reg.names() == ["round-widget"]


def test_unknown_names_suggest_close_ones_and_list_all():
    reg = Registry("widget", error=UnknownThing, hint="Add one with @register.")
    reg.register("round-widget", object())
    with pytest.raises(UnknownThing) as info:
        reg.get("rond-widget")
    text = str(info.value)
    assert "did you mean 'round-widget'" in text and "known: round-widget" in text
    assert "Add one with @register." in text
    with pytest.raises(UnknownThing, match="known: round-widget"):
        reg.unregister("nothing-like-it")


def test_taken_names_are_refused_unless_replaced_or_reloaded():
    reg = Registry("widget")
    first, second = type("A", (), {}), type("B", (), {})
    reg.register("w", first)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("w", second)
    reg.register("w", second, replace=True)
    assert reg.get("w") is second
    # a reloaded module registers a new class object with the same qualified name
    again = type("B", (), {})
    reg.register("w", again)
    assert reg.get("w") is again
    with pytest.raises(ValueError, match="non-empty string name"):
        reg.register("", first)


def test_check_refuses_what_does_not_belong():
    def only_types(name, obj):
        if not isinstance(obj, type):
            raise TypeError(f"{name}: expected a class, got {obj!r}")

    reg = Registry("kind", check=only_types)
    with pytest.raises(TypeError, match="expected a class"):
        reg.register("x", 3)
    assert "x" not in reg
