"""Run the grid on Ray: an embedded local cluster by default, or the one ``--address`` / ``RAY_ADDRESS`` names.

The grid runs in two phases, so that no figure is timed while other work shares its machine:

1. **Fit** — every cell that needs fitting is a Ray task holding the CPUs (and, on ``--device cuda``, the GPU)
   its rung's registration declares (:class:`~bench.rungs.registry.Resources`); its torch/BLAS/OpenMP threads are
   those CPUs, as on the local executor, so both give the same results. A wrapper's task depends on its base's
   (a DAG: the base is fitted once, then its wrappers run in parallel). A task fits, predicts, scores and saves
   into a scratch folder on its worker and returns the cell as a bundle (result.json, predictions, artifact); the
   driver stores it — so the output folder need not be shared with the workers, and a worker killed mid-cell
   leaves nothing behind (Ray runs the task again). Its result is stored with its timing *pending*.
2. **Time** — once every fit is done, each fitted cell is timed from its bundle by a task that holds a whole node
   (all its CPUs, pinned to it), so nothing else of the run executes there meanwhile; threads = the node's CPUs.
   A run interrupted before this phase leaves results whose timing is pending: the next run, with either
   executor, times them without refitting.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from bench.data import Dataset
from bench.environment import thread_budget, timing_machine
from bench.errors import BenchError
from bench.evaluate.harness import RunSettings, base_cells, evaluate, next_step, retime, store_failure
from bench.execute import Cell, Report
from bench.rungs.protocol import UnsafeArtifactError
from bench.rungs.registry import RungInfo, adopt_rungs, get_rung, list_rungs, with_bases
from bench.store.results import ResultStore

log = logging.getLogger("bench")

INSTALL_HINT = "--executor ray needs Ray: pip install 'bench[ray]' (or pip install ray)"
#: environment variables the workers of a remote cluster get from the driver (an embedded one inherits them all)
FORWARDED_ENV = ("HF_HUB_OFFLINE", "HF_HOME", "HF_ENDPOINT", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM")


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise BenchError(INSTALL_HINT) from None
    return ray


@dataclass(frozen=True)
class Node:
    """A cluster node that can run cells."""

    id: str
    cpus: int
    gpus: float


@dataclass
class RayExecutor:
    """Runs the grid on Ray. ``address``: a running cluster (default: ``RAY_ADDRESS``, else an embedded local
    cluster started for the run and stopped after it, with ``num_cpus`` CPUs — default this machine's);
    ``retries``: how often a cell whose worker died is run again."""

    address: str | None = None
    num_cpus: int | None = None
    retries: int = 2

    def run(
        self,
        cells: Sequence[Cell],
        data: Mapping[str, Dataset],
        settings: RunSettings,
        store: ResultStore,
        report: Report,
    ) -> list[dict[str, Any]]:
        ray = _ray()
        started = not ray.is_initialized()
        if started:
            self._init(ray)
        try:
            return _Grid(ray, cells, data, settings, store, report, self.retries).run()
        finally:
            if started:
                ray.shutdown()

    def _init(self, ray: Any) -> None:
        start_cluster(self.address, self.num_cpus)


def start_cluster(address: str | None = None, num_cpus: int | None = None) -> None:
    """Connect to the Ray cluster at ``address`` (default ``RAY_ADDRESS``), or start an embedded one on this machine
    with ``num_cpus`` CPUs whose workers import what this process imports (rungs registered in code included)."""
    ray = _ray()
    address = address or os.environ.get("RAY_ADDRESS") or None
    env = {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}
    if address is None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    try:
        ray.init(
            address=address,
            num_cpus=num_cpus if address is None else None,
            include_dashboard=False,
            log_to_driver=False,  # the workers' logs stay in Ray's session folder; results carry the errors
            logging_level=logging.ERROR,
            runtime_env={"env_vars": env},
        )
    except ConnectionError as exc:
        raise BenchError(f"cannot reach the Ray cluster at {address}: {exc}") from None


# ---- on the workers -------------------------------------------------------------------------------------------

SCRATCH = "bench-ray"


@contextmanager
def _scratch() -> Iterator[ResultStore]:
    """A store in a fresh scratch folder of this worker, removed after; folders of workers that died are swept."""
    root = Path(tempfile.gettempdir()) / SCRATCH
    root.mkdir(exist_ok=True)
    for old in root.iterdir():
        pid = old.name.partition("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    folder = Path(tempfile.mkdtemp(dir=root, prefix=f"{os.getpid()}-"))
    try:
        yield ResultStore(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _task_cpus() -> int:
    ray = _ray()
    return max(1, round(ray.get_runtime_context().get_assigned_resources().get("CPU", 1)))


def fit_cell(
    infos: list[RungInfo], dataset: Dataset, settings: RunSettings, rung: str, *bases: bytes | None
) -> tuple[dict[str, Any], bytes | None]:
    """Fit, predict, score and save one cell (timing pending; threads as its registration declares) in a scratch
    store seeded with its bases' bundles; the result and the cell's bundle."""
    adopt_rungs(infos)
    with _scratch() as scratch:
        for bundle in bases:
            if bundle is not None:
                scratch.import_bundle(bundle)
        result = evaluate(rung, dataset, settings, scratch, time_it=False)
        return result, scratch.export_bundle(dataset.name, rung, settings.seed)


def time_cell(infos: list[RungInfo], dataset: Dataset, settings: RunSettings, bundle: bytes) -> dict[str, Any]:
    """Time a stored cell from its bundle, holding the node at normal CPU priority; its result with the timing
    filled in."""
    adopt_rungs(infos)
    with _scratch() as scratch, thread_budget(_task_cpus()), _normal_priority() as nice:
        stored = scratch.import_bundle(bundle)
        result = retime(stored, dataset, settings, scratch, method="exclusive")
    result["timing"]["nice"] = nice
    return result


@contextmanager
def _normal_priority() -> Iterator[int]:
    """Ray starts its workers at a low CPU priority (nice 15), so whatever else runs on the machine (Ray's own
    processes, other tenants) comes first; a timing runs at the priority of a plain process (nice 0) where the
    operating system allows it, and yields the nice value it runs at."""
    before = os.getpriority(os.PRIO_PROCESS, 0)
    try:
        os.setpriority(os.PRIO_PROCESS, 0, min(before, 0))
    except OSError:  # lowering niceness needs privileges: time at the worker's priority (recorded)
        pass
    try:
        yield os.getpriority(os.PRIO_PROCESS, 0)
    finally:
        os.setpriority(os.PRIO_PROCESS, 0, before)


def machine_key(device: str) -> str:
    """The timing-machine key of this node as a timing task sees it (threads = the CPUs it holds)."""
    cpus = _task_cpus()
    if device.startswith("cuda"):
        import torch  # noqa: F401  (the key names the GPU torch sees)
    with thread_budget(cpus):
        return timing_machine(cpus, device)["key"]


# ---- on the driver --------------------------------------------------------------------------------------------


class _Grid:
    """One run of the grid on the cluster (see the module's docstring)."""

    def __init__(
        self,
        ray: Any,
        cells: Sequence[Cell],
        data: Mapping[str, Dataset],
        settings: RunSettings,
        store: ResultStore,
        report: Report,
        retries: int,
    ) -> None:
        self.ray, self.cells, self.data, self.store, self.report = ray, cells, data, store, report
        self.settings, self.retries = settings, retries
        self.nodes = self._nodes()
        self.data_refs = {name: ray.put(d) for name, d in data.items()}
        rungs = dict.fromkeys(cell.rung for cell in cells)  # each rung's registrations (with its bases') once
        self.infos = {rung: [get_rung(name) for name in with_bases([rung])] for rung in rungs}
        self.bundles: dict[Cell, Any] = {}  # a fitted cell's bundle, in the object store
        self.pending: dict[Any, Cell] = {}  # what the cluster is working on
        self.results: dict[Cell, dict[str, Any]] = {}

    def _nodes(self) -> list[Node]:
        nodes = [
            Node(n["NodeID"], int(n["Resources"].get("CPU", 0)), float(n["Resources"].get("GPU", 0)))
            for n in self.ray.nodes()
            if n.get("Alive") and n["Resources"].get("CPU", 0) >= 1
        ]
        if not nodes:
            raise BenchError("the Ray cluster has no node with a CPU")
        return nodes

    def for_seed(self, cell: Cell) -> RunSettings:
        return replace(self.settings, seed=cell.seed)

    def uses_device(self, rung: str) -> bool:
        info = get_rung(rung)
        return info.capabilities.device or any(self.uses_device(b) for b in info.bases)

    def _eligible(self, rung: str) -> list[Node]:
        if self.uses_device(rung) and self.settings.device.startswith("cuda"):
            nodes = [n for n in self.nodes if n.gpus >= 1]
            if not nodes:
                raise BenchError("--device cuda: no node of the Ray cluster has a GPU")
            return nodes
        return self.nodes

    def _pinned(self, node: Node) -> dict[str, Any]:
        """Task options that hold all of ``node`` (its GPUs too, on a GPU run)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        return {
            "num_cpus": node.cpus,
            "num_gpus": node.gpus if self.settings.device.startswith("cuda") else 0,
            "scheduling_strategy": NodeAffinitySchedulingStrategy(node.id, soft=False),
            "max_retries": self.retries,
        }

    def machine_keys(self) -> set[str]:
        """The timing-machine keys of the nodes that would time a cell (what counts as "timed here")."""
        probe = self.ray.remote(machine_key)
        refs = [probe.options(**self._pinned(n)).remote(self.settings.device) for n in self.nodes]
        return set(self.ray.get(refs))

    def run(self) -> list[dict[str, Any]]:
        here = self.machine_keys()
        order = {name: i for i, name in enumerate(list_rungs())}
        steps = {}
        for cell in sorted(self.cells, key=lambda c: order.get(c.rung, -1)):  # bases first
            settings = self.for_seed(cell)
            refit_base = any(
                steps.get(Cell(cell.dataset, base, seed), ("",))[0] == "fit"
                for base, seed in base_cells(cell.rung, settings)
            )  # a wrapper is built on its base's new artifact (run one by one, its stored result would be stale)
            steps[cell] = (
                ("fit", None)
                if refit_base
                else next_step(cell.rung, self.data[cell.dataset], settings, self.store, here)
            )
        for cell in self.cells:
            if steps[cell][0] == "done":
                self.results[cell] = steps[cell][1]
                self.report(steps[cell][1])
        fits = [c for c in steps if steps[c][0] == "fit"]  # in ladder order
        timings = [c for c in self.cells if steps[c][0] == "time"]
        self.bar = tqdm(total=2 * len(fits) + len(timings), desc="bench (ray)", unit="step", disable=None)
        try:
            fitted = self.fit(fits)
            self.time([*fitted, *timings])
        except KeyboardInterrupt:
            for ref in self.pending:
                self.ray.cancel(ref, force=True)
            raise
        finally:
            self.bar.close()
        return [self.results[c] for c in self.cells if c in self.results]

    def _wait(self) -> tuple[Cell, Any]:
        """The next finished task's cell and object reference."""
        ready, _ = self.ray.wait(list(self.pending), num_returns=1)
        return self.pending.pop(ready[0]), ready[0]

    def _bundle(self, cell: Cell) -> Any:
        if cell not in self.bundles:
            bundle = self.store.export_bundle(cell.dataset, cell.rung, cell.seed)
            self.bundles[cell] = None if bundle is None else self.ray.put(bundle)
        return self.bundles[cell]

    def fit(self, cells: Sequence[Cell]) -> list[Cell]:
        """Phase 1: fit every cell (``cells`` has bases before their wrappers); the cells fitted ok, stored with
        their timing pending."""
        task = self.ray.remote(fit_cell)
        bundle_refs: dict[Cell, Any] = {}
        for cell in cells:
            info = get_rung(cell.rung)
            bases = [
                bundle_refs.get(base) if base in bundle_refs else self._bundle(base)
                for base in (Cell(cell.dataset, b, s) for b, s in base_cells(cell.rung, self.for_seed(cell)))
            ]
            largest = max(n.cpus for n in self._eligible(cell.rung))  # cpus=None: a whole node
            on_gpu = self.uses_device(cell.rung) and self.settings.device.startswith("cuda")
            result_ref, bundle_refs[cell] = task.options(
                num_cpus=min(info.resources.cpus or largest, largest),
                num_gpus=info.resources.gpus if on_gpu else 0,
                num_returns=2,
                max_retries=self.retries,
                name=f"fit {cell}",
            ).remote(self.infos[cell.rung], self.data_refs[cell.dataset], self.for_seed(cell), cell.rung, *bases)
            self.pending[result_ref] = cell
        fitted = []
        while self.pending:
            cell, ref = self._wait()
            self.bar.update(1)
            try:
                result = self.ray.get(ref)
                bundle = self.ray.get(bundle_refs[cell])
                self.store.import_bundle(bundle)
            except UnsafeArtifactError:
                raise
            except Exception as exc:  # the worker died on every try, or the cell could not be shipped
                result = store_failure(cell.rung, self.data[cell.dataset], self.for_seed(cell), self.store, _cause(exc))
            self.bundles[cell] = bundle_refs[cell]
            if result["status"] == "ok":
                fitted.append(cell)
                self.bar.set_postfix_str(f"fitted {cell}")
            else:
                self.results[cell] = result
                self.bar.total -= 1  # nothing to time
                self.bar.refresh()
                self.report(result)
        return fitted

    def time(self, cells: Sequence[Cell]) -> None:
        """Phase 2: time every fitted cell with a node to itself, spreading cells over the nodes."""
        task = self.ray.remote(time_cell)
        for i, cell in enumerate(cells):
            nodes = self._eligible(cell.rung)
            node = nodes[i % len(nodes)]
            ref = task.options(**self._pinned(node), name=f"time {cell}").remote(
                self.infos[cell.rung], self.data_refs[cell.dataset], self.for_seed(cell), self._bundle(cell)
            )
            self.pending[ref] = cell
        while self.pending:
            cell, ref = self._wait()
            self.bar.update(1)
            try:
                result = self.ray.get(ref)
            except Exception as exc:
                log.warning("%s: could not be timed (%s); the next run times it", cell, _cause(exc))
                result = self.store.read(cell.dataset, cell.rung, cell.seed) or {}
            else:
                self.store.rewrite(result)
            self.bar.set_postfix_str(f"timed {cell}")
            self.results[cell] = result
            self.report(result)


def _cause(exc: BaseException) -> str:
    """One line for why a task failed."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        return f"{type(cause).__name__}: {cause}"
    first = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {first[0] if first else ''}"
