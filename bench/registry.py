"""One small registry of rungs: ``@register_rung`` on plain factory functions, ``list_rungs`` with wildcards."""

from __future__ import annotations

import fnmatch
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from bench.errors import UnknownNameError
from bench.protocol import Rung

Factory = Callable[..., Rung]
ENTRY_POINT_GROUP = "bench.rungs"
BUILTIN_MODULES = ("baselines", "models")


@dataclass(frozen=True)
class RungInfo:
    """A registered rung: its factory and the metadata ``bench list`` prints."""

    name: str
    family: str
    description: str
    factory: Factory
    order: int
    base: str | None = None  # a wrapper's base rung, whose fitted weights the harness reuses

    def create(self, **kwargs: Any) -> Rung:
        """Build the rung with these keyword arguments."""
        return self.factory(**kwargs)

    def accepts(self) -> set[str] | None:
        """Keyword names the factory takes, or None if it takes ``**kwargs``."""
        params = inspect.signature(self.factory).parameters.values()
        if any(p.kind is p.VAR_KEYWORD for p in params):
            return None
        return {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


_REGISTRY: dict[str, RungInfo] = {}
_loaded = False


def register_rung(name: str, *, family: str, description: str, base: str | None = None) -> Callable[[Factory], Factory]:
    """Register a factory returning a :class:`~bench.protocol.Rung` under ``name``.

    A wrapper (calibration on top of another rung) names that rung as ``base``; its factory then takes
    the base instance as ``base=`` — fitted already when the harness could reuse stored weights.
    """

    def decorator(factory: Factory) -> Factory:
        if name in _REGISTRY and _REGISTRY[name].factory is not factory:
            raise ValueError(f"rung {name!r} is already registered")
        _REGISTRY[name] = RungInfo(name, family, description, factory, len(_REGISTRY), base)
        return factory

    return decorator


def _load_rungs() -> None:
    """Import the built-in rung packages and any plugin registered under the ``bench.rungs`` entry point."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        ep.load()


def list_rungs(pattern: str = "*") -> list[str]:
    """Registered rung names matching a shell-style wildcard, in ladder order."""
    _load_rungs()
    infos = sorted(_REGISTRY.values(), key=lambda i: i.order)
    return [i.name for i in infos if fnmatch.fnmatchcase(i.name, pattern)]


def get_rung(name: str) -> RungInfo:
    """The registry entry for ``name``; raises :class:`UnknownNameError` with suggestions."""
    _load_rungs()
    if name not in _REGISTRY:
        raise UnknownNameError("rung", name, _REGISTRY)
    return _REGISTRY[name]


def create_rung(name: str, *, context: dict[str, Any] | None = None, **options: Any) -> Rung:
    """Build rung ``name`` with ``options``; ``context`` (seed, device, ...) is passed where accepted."""
    info = get_rung(name)
    accepted = info.accepts()
    ctx = {k: v for k, v in (context or {}).items() if accepted is None or k in accepted}
    return info.create(**ctx, **options)
