"""One small typed registry holding everything bench knows about a rung.

A rung is registered once, with its factory (a :class:`~bench.rungs.protocol.Rung` subclass or a plain factory
function, given as the object or lazily as a ``"module:object"`` string), its family and description, the rungs it
wraps (its bases), its capabilities, its options per profile, its options for the latency suite and its plot
style. The harness, the leaderboards and reports, the latency gate and the MC sweep read these declarations and
never name a rung. ``bench list`` imports no rung module: factories load on first use.

Built-in rungs are declared in ``baselines/__init__.py`` and ``models/__init__.py``; plugins register under the
``bench.rungs`` entry point (a module that calls :func:`register_rung` when imported), or call it directly.
"""

from __future__ import annotations

import fnmatch
import importlib
import inspect
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from importlib.metadata import entry_points
from types import MappingProxyType
from typing import Any, Literal

from bench.errors import BenchError, UnknownNameError
from bench.rungs.protocol import Target, resolve

Factory = Callable[..., Any]
ENTRY_POINT_GROUP = "bench.rungs"
BUILTIN_MODULES = ("baselines", "models")
TASKS = frozenset({"single-label", "multi-label"})
Need = Literal["logits", "torch"]
#: arguments the harness passes itself: the run's seed and device, and a wrapper's fitted base(s)
CONTEXT_ARGS = frozenset({"seed", "device"})
BASE_ARGS = frozenset({"base", "bases"})
DEFAULT_COLOURS = ("#17becf", "#bcbd22", "#e377c2", "#7f7f7f", "#ff7f0e")


@dataclass(frozen=True)
class Capabilities:
    """What a rung handles and offers.

    ``tasks``: label kinds it handles (``single-label``, sentence pairs included, and ``multi-label``); ``pairs``:
    whether it takes sentence pairs; ``needs``: what each of
    its bases must offer (``logits``: :meth:`~bench.rungs.protocol.Rung.predict_logits`; ``torch``: a torch module);
    ``device``: it runs on ``--device``; ``stochastic``: it draws stochastic passes
    (``sample_probs(inputs, passes)``, ``reseed(seed)``), so ``bench sweep-mc`` applies to it; ``informative``:
    its predictions depend on the input (False for chance baselines: their calibration is never called best);
    ``seeded``: the seed changes what it learns or predicts (False: it runs once, for the first seed).
    """

    tasks: frozenset[str] = TASKS
    pairs: bool = True
    needs: frozenset[str] = frozenset()
    device: bool = False
    stochastic: bool = False
    informative: bool = True
    seeded: bool = True

    def unsupported(self, task: str, pair: bool) -> str | None:
        """Why a dataset of this label kind (and pair-ness) is out of scope, or None."""
        if task not in self.tasks:
            return f"does not handle {task} tasks (handles: {', '.join(sorted(self.tasks))})"
        if pair and not self.pairs:
            return "does not take sentence pairs"
        return None


@dataclass(frozen=True)
class PlotStyle:
    """How a rung is drawn in trade-off plots."""

    colour: str
    marker: str = "o"


@dataclass(frozen=True)
class RungInfo:
    """A registered rung and everything declared with it."""

    name: str
    family: str
    description: str
    factory: Target
    order: int
    bases: tuple[str, ...] = ()
    fixed: Mapping[str, Any] = field(default_factory=dict)  # arguments the registration fixes; not user options
    capabilities: Capabilities = Capabilities()
    profiles: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # options per profile name
    perf: Mapping[str, Any] = field(default_factory=dict)  # options for the latency suite's small, quick fit
    style: PlotStyle | None = None
    check: Target | None = None  # called with the rung's options before a run: raises BenchError on a bad one

    @property
    def base(self) -> str | None:
        """The single base of a one-base wrapper, else None."""
        return self.bases[0] if len(self.bases) == 1 else None

    @cached_property
    def _factory(self) -> Factory:
        try:
            return resolve(self.factory)
        except (ImportError, AttributeError) as exc:
            raise BenchError(f"rung {self.name!r}: cannot load its factory {self.factory!r}: {exc}") from exc

    def create(self, **kwargs: Any) -> Any:
        """Build the rung with these keyword arguments (its fixed arguments added)."""
        return self._factory(**self.fixed, **kwargs)

    def accepts(self) -> set[str] | None:
        """Keyword names the factory takes (less the fixed ones), or None if it takes ``**kwargs``."""
        params = inspect.signature(self._factory).parameters.values()
        if any(p.kind is p.VAR_KEYWORD for p in params):
            return None
        return {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)} - set(self.fixed)

    def options(self) -> set[str] | None:
        """The options a user may set (``--option RUNG.KEY=VALUE``): what the factory takes, less context and bases."""
        accepted = self.accepts()
        return None if accepted is None else accepted - CONTEXT_ARGS - BASE_ARGS

    def options_for(self, profile: str) -> dict[str, Any]:
        """This rung's declared options under ``profile``."""
        return dict(self.profiles.get(profile, {}))

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Run the registration's option check (e.g. that a local checkpoint exists)."""
        if self.check is not None:
            resolve(self.check)(dict(options))

    @property
    def colour(self) -> str:
        """The declared plot colour, else one picked from the family name."""
        return self.style.colour if self.style is not None else family_colour(self.family)


def family_colour(family: str) -> str:
    """A colour for a family that declares none (stable across runs)."""
    return DEFAULT_COLOURS[sum(map(ord, family)) % len(DEFAULT_COLOURS)]


_REGISTRY: dict[str, RungInfo] = {}
_ORDER = itertools.count()
_loaded = False


def register_rung(
    name: str,
    factory: Target | None = None,
    *,
    family: str,
    description: str,
    bases: Sequence[str] = (),
    fixed: Mapping[str, Any] | None = None,
    capabilities: Capabilities | None = None,
    profiles: Mapping[str, Mapping[str, Any]] | None = None,
    perf: Mapping[str, Any] | None = None,
    style: PlotStyle | None = None,
    check: Target | None = None,
) -> Any:
    """Register rung ``name``. With ``factory`` (an object or ``"module:object"``) it registers at once; without,
    it returns a decorator for a factory function or class (timm's ``@register_model``).

    A wrapper names the rungs it wraps as ``bases``; its factory then takes the fitted base as ``base=`` (one
    base) or the fitted bases, in order, as ``bases=`` (several). ``seed`` and ``device`` are passed where the
    factory takes them.
    """

    def add(target: Target) -> Target:
        if name in _REGISTRY and _REGISTRY[name].factory is not target and _REGISTRY[name].factory != target:
            raise ValueError(f"rung {name!r} is already registered")
        order = _REGISTRY[name].order if name in _REGISTRY else next(_ORDER)
        _REGISTRY[name] = RungInfo(
            name,
            family,
            description,
            target,
            order,
            tuple(bases),
            MappingProxyType(dict(fixed or {})),
            capabilities or Capabilities(),
            MappingProxyType({k: dict(v) for k, v in (profiles or {}).items()}),
            MappingProxyType(dict(perf or {})),
            style,
            check,
        )
        return target

    return add if factory is None else add(factory)


def unregister_rung(name: str) -> None:
    """Remove ``name`` (for tests and plugins that replace a rung)."""
    _REGISTRY.pop(name, None)


def _load_rungs() -> None:
    """Import the built-in declarations and any plugin registered under the ``bench.rungs`` entry point."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        ep.load()


def list_rungs(pattern: str = "*") -> list[str]:
    """Registered rung names matching a shell-style wildcard, in ladder order (a base before its wrappers)."""
    _load_rungs()

    def position(info: RungInfo) -> tuple[int, int]:  # a wrapper declared before its base still sorts after it
        bases = [position(_REGISTRY[b]) for b in info.bases if b in _REGISTRY]
        return max([(info.order, 0), *((order, depth + 1) for order, depth in bases)])

    infos = sorted(_REGISTRY.values(), key=lambda i: (*position(i), i.order))
    return [i.name for i in infos if fnmatch.fnmatchcase(i.name, pattern)]


def get_rung(name: str) -> RungInfo:
    """The registry entry for ``name``; raises :class:`UnknownNameError` with suggestions."""
    _load_rungs()
    if name not in _REGISTRY:
        raise UnknownNameError("rung", name, _REGISTRY)
    return _REGISTRY[name]


def with_bases(names: Sequence[str]) -> list[str]:
    """``names`` and every rung they wrap, directly or not, in ladder order."""
    needed: list[str] = []

    def add(name: str) -> None:
        for base in get_rung(name).bases:
            add(base)
        if name not in needed:
            needed.append(name)

    for name in names:
        add(name)
    order = list_rungs()
    return sorted(needed, key=order.index)


def root_of(name: str) -> str:
    """The rung a chain of one-base wrappers ends at (a rung with several bases is its own root)."""
    base = get_rung(name).base
    return name if base is None else root_of(base)


def colour_for(name: str, family: str) -> str:
    """The plot colour of rung ``name`` (from its family when it is no longer registered)."""
    _load_rungs()
    return _REGISTRY[name].colour if name in _REGISTRY else family_colour(family)


def base_arguments(bases: Sequence[Any]) -> dict[str, Any]:
    """How a wrapper's factory receives its fitted bases: ``base=`` for one, ``bases=`` for several, none for none."""
    if not bases:
        return {}
    return {"base": bases[0]} if len(bases) == 1 else {"bases": list(bases)}


def create_rung(name: str, *, context: Mapping[str, Any] | None = None, **options: Any) -> Any:
    """Build rung ``name`` with ``options``; ``context`` (seed, device, ...) is passed where accepted."""
    info = get_rung(name)
    accepted = info.accepts()
    ctx = {k: v for k, v in (context or {}).items() if accepted is None or k in accepted}
    return info.create(**ctx, **options)
