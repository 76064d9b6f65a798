"""The workers that hold the partitions of a distributed search, and how calls reach them.

`RayWorkers` runs one Ray actor per partition (a local Ray instance, or a cluster); outboxes
travel from the actor that fills them to the actor that inserts them through Ray's object store,
never through the driver. `InProcessWorkers` holds every partition in the calling process, with
the same calls: the tests use it to check the partitioned search itself, without a cluster.

Both raise `WorkerLost` when a worker is gone, and `PartitionError` when a partition's core
stopped (a memory limit, say); the search turns either into a result that decides nothing.
"""
from __future__ import annotations

import os
import time
from typing import Any, Callable

from apcheck.explore.cluster.partition import Partition, PartitionError
from apcheck.explore.native.codegen import E_NOMEM

POLL = 0.5  # seconds between checks of the run's budget while the workers work
START_TIMEOUT = 300.0  # seconds the workers may take to start (a node pulling its environment, a build)


class WorkerLost(Exception):
    """A worker (and the states it held) is gone."""


def _lost_errors() -> tuple[type, ...]:
    import ray
    return (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError, ray.exceptions.ObjectLostError,
            ray.exceptions.NodeDiedError)


class Workers:
    """The partitions' calls. `each` calls a method on every partition; `exchange` calls a producer
    on every partition, each returning one outbox per partition, then on every partition q a
    consumer with the outboxes addressed to q (in partition order) after its own arguments.
    `check` may stop the wait for the results; the calls already made still complete, in order,
    before any later call to the same partition (so a level is never half inserted)."""

    n: int
    check: Callable[[], None] = staticmethod(lambda: None)   # raises to stop the run (its budget)

    def each(self, method: str, args: list[tuple] | None = None) -> list[Any]:
        raise NotImplementedError

    def one(self, p: int, method: str, *args) -> Any:
        raise NotImplementedError

    def exchange(self, produce: str, pargs: list[tuple], consume: str, cargs: list[tuple]) -> list[Any]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class InProcessWorkers(Workers):
    """Every partition in this process (tests; one core does all the work)."""

    def __init__(self, nparts: int, make: Callable[[int], Partition]):
        self.n = nparts
        self.parts = [make(p) for p in range(nparts)]

    def each(self, method, args=None):
        return [getattr(part, method)(*(args[p] if args else ())) for p, part in enumerate(self.parts)]

    def one(self, p, method, *args):
        return getattr(self.parts[p], method)(*args)

    def exchange(self, produce, pargs, consume, cargs):
        boxes = self.each(produce, pargs)   # no check between: a level is inserted whole
        return [getattr(part, consume)(*cargs[q], *(boxes[p][q] for p in range(self.n)))
                for q, part in enumerate(self.parts)]


class RayWorkers(Workers):
    """One Ray actor per partition, spread by Ray over the cluster's nodes. The actors reserve no
    CPU: the partitions are as many as the cluster's CPUs (or --workers), and the actors of an
    earlier search, kept while its result is read, must not keep the next one from starting."""

    def __init__(self, nparts: int, partition_args: Callable[[int], tuple[tuple, dict]]):
        import ray

        self.ray = ray
        self.lost = _lost_errors()
        self.n = nparts
        actor = ray.remote(num_cpus=0, max_restarts=0, max_task_retries=0, scheduling_strategy="SPREAD")(Partition)
        self.actors = []
        for p in range(nparts):
            args, kwargs = partition_args(p)
            self.actors.append(actor.remote(*args, **kwargs))
        started = [a.info.remote() for a in self.actors]
        ready, _ = ray.wait(started, num_returns=len(started), timeout=START_TIMEOUT)
        if len(ready) < len(started):
            self.close()
            raise WorkerLost(f"{len(started) - len(ready)} of {nparts} workers did not start within "
                             f"{START_TIMEOUT:.0f} s")
        try:
            ray.get(started)
        except Exception as err:  # noqa: BLE001 - a worker's build or allocation failed: say which and why
            self.close()
            raise WorkerLost(_lost_text(err))

    def _wait(self, refs: list) -> list[Any]:
        ray = self.ray
        pending = list(refs)
        while pending:
            _, pending = ray.wait(pending, num_returns=len(pending), timeout=POLL)
            self.check()
        try:
            return ray.get(list(refs))
        except ray.exceptions.RayTaskError as err:
            cause = getattr(err, "cause", None)
            if isinstance(cause, PartitionError):
                raise cause
            if isinstance(cause, MemoryError):
                raise PartitionError(E_NOMEM, f"a worker: {cause}")
            if isinstance(cause, self.lost):   # a task whose input a dead worker was to make
                raise WorkerLost(_lost_text(cause))
            raise
        except self.lost as err:
            raise WorkerLost(_lost_text(err))

    def each(self, method, args=None):
        return self._wait([getattr(a, method).remote(*(args[p] if args else ())) for p, a in enumerate(self.actors)])

    def one(self, p, method, *args):
        return self._wait([getattr(self.actors[p], method).remote(*args)])[0]

    def exchange(self, produce, pargs, consume, cargs):
        boxes = []
        for p, a in enumerate(self.actors):
            refs = getattr(a, produce).options(num_returns=self.n).remote(*pargs[p])
            boxes.append(refs if self.n > 1 else [refs])
        return self._wait([getattr(a, consume).remote(*cargs[q], *(boxes[p][q] for p in range(self.n)))
                           for q, a in enumerate(self.actors)])

    def close(self) -> None:
        if not self.ray.is_initialized():   # Ray shut down (its actors with it): a call would start it again
            self.actors = []
            return
        for a in self.actors:
            try:
                self.ray.kill(a)
            except Exception:  # noqa: BLE001 - an actor already gone
                pass
        self.actors = []


def _lost_text(err: BaseException) -> str:
    """What a lost worker's error says: its first line, and the process and why where Ray says."""
    text = str(err)
    pid = next((line.strip() for line in text.splitlines() if line.strip().startswith("pid:")), "")
    why = next((line.strip().split("Worker exit detail:")[-1].split(".")[0].strip()
                for line in text.splitlines() if "Worker exit detail:" in line), "")
    return "; ".join(x for x in (_first_line(err), pid, why) if x)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def connect(cluster: str) -> int:
    """Join the cluster `cluster` names ("auto": start a local Ray instance with a worker per
    core; "ray://HOST:PORT" or "HOST:PORT": an existing cluster), once per process; the CPUs it
    offers. Raises ClusterUnavailable with the reason."""
    if cluster != "auto" and "RAY_AUTH_MODE" not in os.environ and (
            os.environ.get("RAY_AUTH_TOKEN") or os.path.exists(os.path.expanduser("~/.ray/auth_token"))):
        os.environ["RAY_AUTH_MODE"] = "token"   # present the cluster's token (read when Ray is imported)
    try:
        import ray
    except ImportError:
        raise ClusterUnavailable("--cluster needs Ray: pip install 'apcheck[distributed]'")
    if not ray.is_initialized():
        quiet = dict(include_dashboard=False, log_to_driver=False, logging_level="ERROR", configure_logging=True)
        try:
            if cluster == "auto":
                ray.init(num_cpus=os.cpu_count() or 1, **quiet)
            else:
                ray.init(address=cluster, **({} if cluster.startswith("ray://") else quiet))
        except Exception as err:  # noqa: BLE001 - Ray raises many kinds; the user needs the reason
            raise ClusterUnavailable(f"cannot join the Ray cluster {cluster!r}: {_first_line(err)}")
    _errors_to_stderr(ray)
    deadline = time.monotonic() + 30
    cpus = int(ray.cluster_resources().get("CPU", 0))
    while cpus < 1 and time.monotonic() < deadline:
        time.sleep(0.5)
        cpus = int(ray.cluster_resources().get("CPU", 0))
    if cpus < 1:
        raise ClusterUnavailable(f"the Ray cluster {cluster!r} offers no CPU")
    return cpus


def _errors_to_stderr(ray) -> None:
    """Ray's driver prints the cluster's error messages (a worker died, say) on stdout, where the
    report goes: send them to stderr. (Ray looks the printer up by name on every message.)"""
    module = getattr(getattr(ray, "_private", None), "worker", None)
    printer = getattr(module, "print_to_stdstream", None)
    if printer is None or getattr(printer, "apcheck", False):
        return

    def to_stderr(data, ignore_prefix):
        return printer({**data, "is_err": True}, ignore_prefix)

    to_stderr.apcheck = True
    module.print_to_stdstream = to_stderr


class ClusterUnavailable(Exception):
    """No cluster to run on: Ray missing, or the cluster cannot be reached."""
