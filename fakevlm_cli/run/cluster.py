"""The Ray cluster a --ray run works on: joined or started (`connect`), its address checked and reached within
seconds, Ray's own logs kept off stderr and stdout, and the replicas it can place (`check_replicas`). Ray is
imported only inside these functions."""

from __future__ import annotations

import contextlib
import math
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fakevlm_cli.core.errors import FakevlmError, first_line
from fakevlm_cli.core.options import LOCAL_CLUSTER, ClusterOptions

if TYPE_CHECKING:  # pragma: no cover
    from fakevlm_cli.run.plan import EngineSpec

CONNECT_SECONDS = 5  # --ray HOST:PORT: how long a connection there may take before it is said to fail


@dataclass
class Cluster:
    """A connection to Ray: `started` when this run started a local instance (stopped by `close`)."""

    address: str
    started: bool
    cpus: float
    gpus: float

    def replicas(self, wanted: int | None) -> int:
        return wanted or max(1, int(self.gpus))

    def close(self) -> None:
        if self.started:
            import ray

            with contextlib.suppress(Exception), our_signal_handlers():
                ray.shutdown()


@contextlib.contextmanager
def our_signal_handlers():
    """Keep the handlers fakevlm set (commands/__init__.py: SIGTERM and SIGHUP stop a run as Ctrl-C does, exit
    143/129) across a Ray call that replaces them: `ray.init` installs its own SIGTERM handler, which exited 15
    (or died of SIGABRT) instead of 143. Only the main thread may set handlers; elsewhere nothing is done."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    kept = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, handler in kept.items():
            if handler is not None:
                signal.signal(signum, handler)


def quiet_ray() -> None:
    """Ray's own logs stay off stderr, which carries fakevlm's one-line diagnostics; its errors still raise.

    Ray prints the errors its raylet reports (a replica that died, with its traceback) on the driver's
    *stdout*, where they would break the JSONL or CSV a scan pipes on: they go to stderr with --debug, nowhere
    otherwise (what they mean reaches the user as fakevlm's own error line, or as a retried batch)."""
    import logging

    with contextlib.suppress(ImportError, AttributeError):
        from ray._private import worker

        if not getattr(worker.print_to_stdstream, "fakevlm", False):
            original = worker.print_to_stdstream

            def print_to_stdstream(data, ignore_prefix: bool):
                if data.get("pid") == "raylet" and not data.get("is_err"):
                    if not os.environ.get("FAKEVLM_DEBUG"):
                        return
                    data = {**data, "is_err": True}
                original(data, ignore_prefix)

            print_to_stdstream.fakevlm = True  # type: ignore[attr-defined]
            worker.print_to_stdstream = print_to_stdstream

    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    for name in ("ray", "ray.data", "ray._private", "ray.util"):  # a failed job is our one error line
        logging.getLogger(name).setLevel(logging.CRITICAL)


def check_address(address: str) -> None:
    """A usage error unless `address` can name a cluster (checked before anything starts: `scan --ray ./photos`
    takes ./photos as the address)."""
    if address in (LOCAL_CLUSTER, "auto") or address.startswith("ray://") or ":" in address:
        return
    raise FakevlmError(f"--ray: {address!r} is not a cluster address (auto, HOST:PORT or ray://HOST:PORT); to "
                       "start a local Ray, write --ray=local or put --ray after the paths")


def connect(options: ClusterOptions, *, notify: Callable[[str], None] | None = None) -> Cluster:
    """Join the cluster --ray names, or start a local one; a Ray already initialised in this process is used."""
    address = options.ray or LOCAL_CLUSTER
    check_address(address)
    try:
        import ray
    except ImportError:
        raise FakevlmError("--ray needs Ray: pip install 'fakevlm-cli[ray]'") from None
    check_reachable(address)
    quiet_ray()
    started = not ray.is_initialized()
    if started:
        kwargs: dict[str, Any] = {"logging_level": "ERROR", "log_to_driver": False, "configure_logging": True}
        if address == LOCAL_CLUSTER:
            kwargs["include_dashboard"] = False
        else:
            kwargs["address"] = address
        try:
            with our_signal_handlers():
                ray.init(**kwargs)
        except Exception as exc:  # noqa: BLE001 - ConnectionError, a version mismatch, a bad address: one line
            raise FakevlmError(f"--ray {address}: cannot start or join Ray: {first_line(exc)}") from None
    resources = ray.cluster_resources()
    cluster = Cluster(address=address, started=started, cpus=float(resources.get("CPU", 0)),
                      gpus=float(resources.get("GPU", 0)))
    if notify is not None:
        where = "a local Ray" if address == LOCAL_CLUSTER and started else f"Ray at {address}"
        notify(f"running on {where}: {cluster.cpus:g} CPUs, {cluster.gpus:g} GPUs")
    return cluster


def check_reachable(address: str) -> None:
    """--ray HOST:PORT or ray://HOST:PORT: a connection there within seconds, else one line. Ray itself retries
    an address where nothing listens for minutes (822 s seen), printing a line for each try."""
    if address in (LOCAL_CLUSTER, "auto"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise FakevlmError(f"--ray {address}: {port!r} is not a port number") from None
    try:
        with socket.create_connection((host.strip("[]") or "127.0.0.1", number), timeout=CONNECT_SECONDS):
            pass
    except (OSError, ValueError, OverflowError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise FakevlmError(f"--ray {address}: cannot reach Ray there: {reason}") from None


def check_replicas(cluster: Cluster, count: int, spec: EngineSpec) -> None:
    """Refuse more replicas than the cluster can place (one line, before the job starts): Ray Data would wait
    for them, silently, forever. Without GPUs the replicas share the CPUs, and one CPU must stay free for the
    tasks that read the files (`cpus_per_replica`)."""
    if cluster.gpus:
        if spec.gpus > 0 and count * spec.gpus > cluster.gpus:
            raise FakevlmError(f"--replicas {count}: each replica takes {spec.gpus:g} GPU and Ray has "
                               f"{cluster.gpus:g}; give --replicas {max(1, int(cluster.gpus // spec.gpus))} or fewer")
        return
    if cluster.cpus <= 0:
        return  # nothing known to check against
    most = _most_cpu_replicas(cluster.cpus)
    if count > most:
        fix = f"give --replicas {most} or fewer" if most else "a replica needs more than one CPU"
        raise FakevlmError(f"--replicas {count}: Ray has {cluster.cpus:g} CPUs and no GPU, and the replicas must "
                           f"leave a CPU free to read the files; {fix}")


def cpus_per_replica(cpus: float, replicas: int) -> float:
    """Without GPUs, replicas share the CPUs with the inspecting tasks: a quarter (at least one) is left to
    those, or the pool would hold every CPU and the tasks that feed it could never be scheduled."""
    if cpus <= 0:
        return 1.0
    spare = max(1.0, cpus // 4)
    # rounded down: rounded up, their sum could take a share of the CPU the tasks need
    return max(0.1, math.floor((cpus - spare) / replicas * 100 + 1e-9) / 100) if cpus > spare else 0.1


def _most_cpu_replicas(cpus: float) -> int:
    """How many replicas `cpus_per_replica` can place on `cpus` CPUs with one left for the tasks (0.1 each at
    the least)."""
    spare = max(1.0, cpus // 4)
    return math.floor((cpus - spare) * 10 + 1e-9) if cpus > spare else 0
