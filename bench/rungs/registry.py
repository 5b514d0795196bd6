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
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from importlib.metadata import entry_points
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from bench.errors import BenchError, UnknownNameError
from bench.rungs.protocol import CLASS_FILE, Rung, Target, UnsafeArtifactError, resolve

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
class Resources:
    """What fitting one cell of the rung (one dataset, one seed) holds: ``cpus`` threads for torch, BLAS and
    OpenMP (None: all the machine's) on every executor — so its results never depend on the core count of the
    machine or on the executor — and, when the run is on a GPU and the rung runs on ``--device``, ``gpus``."""

    cpus: int | None = 1
    gpus: float = 1.0

    def threads(self) -> int:
        """The threads a fit runs with on this machine."""
        from bench.environment import cpu_count

        return self.cpus or cpu_count()


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
    declared_resources: Resources | None = None  # what fitting one cell holds (None: as its bases, else 1 CPU)
    members: str | None = None  # the factory option counting the seeds of its bases it is built on (an ensemble)

    @property
    def resources(self) -> Resources:
        """What fitting one cell holds: as declared; a wrapper that declares nothing, as its largest base (it may
        fit it); else one CPU."""
        if self.declared_resources is not None:
            return self.declared_resources
        bases = [get_rung(b).resources for b in self.bases]
        if not bases:
            return Resources()
        return max(bases, key=lambda r: (r.cpus is None, r.cpus or 0, r.gpus))

    @property
    def base(self) -> str | None:
        """The single base of a one-base wrapper, else None."""
        return self.bases[0] if len(self.bases) == 1 else None

    def base_seeds(self, seed: int, options: Mapping[str, Any]) -> list[tuple[str, int]]:
        """The (base, seed) cells the rung at ``seed`` with ``options`` is built on: each base at the same seed, or,
        for a rung over several seeds of its bases (``members``: K, from ``options`` or the factory's default),
        each base at seeds ``seed`` … ``seed + K - 1``. Ensembles at neighbouring seeds so share K - 1 members:
        K fits per extra seed would buy independent ensembles at K times the cost."""
        if self.members is None:
            return [(base, seed) for base in self.bases]
        count = options.get(self.members, inspect.signature(self._factory).parameters[self.members].default)
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise BenchError(f"--option {self.name}.{self.members}: expects a positive integer, not {count!r}")
        return [(base, seed + k) for k in range(count) for base in self.bases]

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
        """Check option values against the factory's defaults (:func:`check_against_default`), then run the
        registration's own check (e.g. that a local checkpoint exists)."""
        params = inspect.signature(self._factory).parameters
        for key, value in options.items():
            param = params.get(key)
            if param is not None:
                check_against_default(f"{self.name}.{key}", value, param.default, str(param.annotation))
        if self.check is not None:
            resolve(self.check)(dict(options))

    @property
    def colour(self) -> str:
        """The declared plot colour, else one picked from the family name."""
        return self.style.colour if self.style is not None else family_colour(self.family)


def _numbers(values: Any) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def check_against_default(name: str, value: Any, default: Any, annotation: str = "") -> None:
    """A generic check of an option value against its parameter's default, before anything runs: no NaN or
    infinity; ``None`` only where the annotation allows it; a boolean, integer, number, string or list where the
    default is one; a list non-empty where the default is (a grid), its items numbers where the default's are,
    positive where the default's are; a number not negative where the default is not."""
    if value is None:
        if default is not None and default is not inspect.Parameter.empty and "None" not in annotation:
            raise BenchError(f"--option {name}: cannot be null")
        return
    flat = value if isinstance(value, list) else [value]
    if any(isinstance(v, float) and not math.isfinite(v) for v in flat):
        raise BenchError(f"--option {name}: {value!r} is not a finite number")
    if default is None or default is inspect.Parameter.empty:
        return
    if isinstance(default, bool):
        expected = "true or false" if not isinstance(value, bool) else None
    elif isinstance(default, int) and "float" not in annotation:
        expected = "an integer" if not isinstance(value, int) or isinstance(value, bool) else None
    elif isinstance(default, (int, float)):
        expected = "a number" if not _numbers([value]) else None
    elif isinstance(default, str):
        expected = "a string" if not isinstance(value, str) else None
    elif isinstance(default, (tuple, list)):
        expected = "a JSON list, e.g. [1, 2]" if not isinstance(value, list) else None
    else:
        return
    if expected:
        raise BenchError(f"--option {name}: expects {expected}, not {value!r}")
    if isinstance(default, (tuple, list)) and default:
        if not value:
            raise BenchError(f"--option {name}: the list is empty")
        if _numbers(default) and not _numbers(value):
            raise BenchError(f"--option {name}: expects a list of numbers, not {value!r}")
        if _numbers(default) and min(default) > 0 and min(value) <= 0:
            raise BenchError(f"--option {name}: values must be positive, not {value!r}")
    elif _numbers([default]) and not isinstance(default, bool) and default >= 0 and value < 0:
        raise BenchError(f"--option {name}: must not be negative, not {value!r}")


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
    resources: Resources | None = None,
    members: str | None = None,
) -> Any:
    """Register rung ``name``. With ``factory`` (an object or ``"module:object"``) it registers at once; without,
    it returns a decorator for a factory function or class (timm's ``@register_model``).

    A wrapper names the rungs it wraps as ``bases``; its factory then takes the fitted base as ``base=`` (one
    base) or the fitted bases, in order, as ``bases=`` (several). ``seed`` and ``device`` are passed where the
    factory takes them. ``members`` names the factory option K of a rung built on K seeds of its bases (a deep
    ensemble): its factory receives the bases fitted at seeds s … s + K - 1 as ``bases=`` (see
    :meth:`RungInfo.base_seeds`).
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
            resources,
            members,
        )
        return target

    return add if factory is None else add(factory)


def adopt_rungs(infos: Sequence[RungInfo]) -> None:
    """Register the entries another process sent (an executor's worker learning rungs its driver registered in
    code); names already registered here keep their own entry."""
    _load_rungs()
    for info in infos:
        _REGISTRY.setdefault(info.name, info)


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


def base_arguments(bases: Sequence[Any], several: bool = False) -> dict[str, Any]:
    """How a wrapper's factory receives its fitted bases: ``base=`` for one, ``bases=`` for several (or for one of a
    rung that takes ``several``: an ensemble of one member), none for none."""
    if not bases:
        return {}
    return {"base": bases[0]} if len(bases) == 1 and not several else {"bases": list(bases)}


def create_rung(name: str, *, context: Mapping[str, Any] | None = None, **options: Any) -> Any:
    """Build rung ``name`` with ``options``; ``context`` (seed, device, ...) is passed where accepted."""
    info = get_rung(name)
    accepted = info.accepts()
    ctx = {k: v for k, v in (context or {}).items() if accepted is None or k in accepted}
    return info.create(**ctx, **options)


def rung_modules() -> set[str]:
    """The modules registered rungs' factories live in (the only ones a stored artifact may name)."""
    _load_rungs()
    return {
        info.factory.partition(":")[0] if isinstance(info.factory, str) else info.factory.__module__
        for info in _REGISTRY.values()
    }


def save_rung(rung: Rung, folder: Path) -> None:
    """Save ``rung`` under ``folder`` with a note of its class, so :func:`load_rung` can restore it."""
    rung.save(folder)
    cls = type(rung)
    (folder / CLASS_FILE).write_text(json.dumps({"class": f"{cls.__module__}:{cls.__qualname__}"}))


def load_rung(folder: Path) -> Rung:
    """Restore a rung written by :func:`save_rung`. Its class is imported only from a registered rung's module, so
    a stored file cannot make bench import anything else."""
    try:
        spec = json.loads((Path(folder) / CLASS_FILE).read_text(encoding="utf-8"))["class"]
        module = spec.partition(":")[0]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UnsafeArtifactError(
            f"{folder}: unreadable {CLASS_FILE} ({type(exc).__name__}); refit with --force"
        ) from None
    if module not in rung_modules():
        raise UnsafeArtifactError(f"{folder}: {CLASS_FILE} names {spec!r}, which is no registered rung's class")
    cls = resolve(spec)
    if not (isinstance(cls, type) and issubclass(cls, Rung)):
        raise UnsafeArtifactError(f"{folder}: {spec} is not a Rung")
    return cls.load(Path(folder))
