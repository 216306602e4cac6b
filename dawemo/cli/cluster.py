"""``dawemo analyze --cluster ADDRESS``: the batch on the workers of a running Dask cluster.

Needs the ``cluster`` extra (``pip install 'dawemo[cluster]'``) here and on every worker. The
client (this process) expands the inputs, writes the outputs and draws the progress bar, as for
local workers; the workers open the files at their absolute paths (a file system they share
with the client) and write the figures there. The model travels with the batch: its bytes go
to each worker once (a worker plugin), which loads one ONNX Runtime session.

See docs/batch.md for starting a cluster on several machines.
"""

from __future__ import annotations

import hashlib
import json
import queue
import time
import uuid
from dataclasses import asdict
from pathlib import Path

from distributed import Client, WorkerPlugin, as_completed, get_worker

from dawemo.cli.batch import AnalysisSettings, FileTask, Sink, Throttle, failed_entry, one_line, run_task

CONNECT_TIMEOUT_S = 10.0
POLL_S = 0.1


class ClusterError(Exception):
    """The cluster cannot be reached or used; the message is one line for the user."""


class ModelPlugin(WorkerPlugin):
    """Loads the batch's model once per worker, from bytes sent by the client.

    Args:
        model_bytes: the ONNX file's contents.
        settings: the batch's analysis settings (``model_path`` is the client's, unused here).
    """

    def __init__(self, model_bytes: bytes, settings: AnalysisSettings) -> None:
        self.model_bytes = model_bytes
        self.settings = settings
        self.model = None
        self.document = None

    def setup(self, worker) -> None:
        from dawemo.emotion import report
        from dawemo.emotion.model import EmotionModel

        digest = hashlib.sha256(self.model_bytes).hexdigest()[:16]
        path = Path(worker.local_directory) / f"dawemo-model-{digest}.onnx"
        if not path.is_file():
            partial = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
            partial.write_bytes(self.model_bytes)
            partial.replace(path)
        self.model = EmotionModel(path, threads=self.settings.threads)
        self.document = report.new_document(self.model, self.settings.window_s, self.settings.hop_s, self.settings.steady_s)

    def teardown(self, worker) -> None:
        self.model = self.document = None


def analyze_on_worker(task: FileTask, plugin_name: str, topic: str) -> tuple[dict, str | None]:
    """A cluster task: one file with the worker's model -> (its entry, why its figure failed or None)."""
    worker = get_worker()
    plugin = worker.plugins[plugin_name]
    progress = Throttle(lambda done_s: worker.log_event(topic, [task.index, done_s]))
    return run_task(task, plugin.model, plugin.settings, plugin.document, progress)


class ClusterWorkers:
    """Runs a batch's tasks on a Dask cluster; use it in a ``with`` statement (connects on entering).

    Args:
        address: the scheduler, e.g. ``tcp://10.0.0.5:8786``.
        settings: the batch's analysis settings; its model file is read and sent to the workers.
    Raises:
        ClusterError: on entering, when the scheduler cannot be reached or has no workers.
    """

    def __init__(self, address: str, settings: AnalysisSettings, connect_timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        self.address = address
        self.settings = settings
        self.connect_timeout_s = connect_timeout_s
        self.client: Client | None = None

    def __enter__(self) -> ClusterWorkers:
        from distributed.comm import parse_address
        from distributed.comm.addressing import parse_host_port

        try:  # a malformed address would leave a half-made Client that hangs on garbage collection
            scheme, location = parse_address(self.address)
            if scheme in ("tcp", "tls"):
                parse_host_port(location)
        except ValueError as error:
            raise ClusterError(f"--cluster {self.address}: {error} (expected e.g. tcp://10.0.0.5:8786)") from None
        try:
            self.client = Client(self.address, timeout=self.connect_timeout_s, set_as_default=False)
        except Exception as error:  # OSError, TimeoutError, ValueError for a malformed address
            raise ClusterError(f"cannot connect to the cluster at {self.address}: {one_line(error)}") from None
        try:
            self.client.wait_for_workers(1, timeout=self.connect_timeout_s)
        except Exception:
            self.__exit__(None, None, None)
            raise ClusterError(f"the cluster at {self.address} has no workers "
                               f"(none joined within {self.connect_timeout_s:g} s)") from None
        return self

    def __exit__(self, *exc_info) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def run(self, tasks: list[FileTask], sink: Sink) -> None:
        client = self.client
        if client is None:
            raise ClusterError("not connected; use ClusterWorkers in a 'with' statement")
        model_bytes = Path(self.settings.model_path).read_bytes()
        identity = hashlib.sha256(model_bytes + json.dumps(asdict(self.settings), sort_keys=True).encode())
        plugin_name = f"dawemo-model-{identity.hexdigest()[:16]}"
        try:
            replies = client.register_plugin(ModelPlugin(model_bytes, self.settings), name=plugin_name)
        except Exception as error:  # a worker could not load the model, or lacks dawemo
            raise ClusterError(f"the cluster's workers cannot load the model: {one_line(error)}") from None
        for worker, reply in (replies or {}).items():
            if isinstance(reply, dict) and reply.get("status", "OK") != "OK":
                raise ClusterError(f"worker {worker} cannot load the model: "
                                   f"{one_line(reply.get('exception') or Exception(reply))}")
        run_id = uuid.uuid4().hex[:12]
        topic = f"dawemo-progress-{run_id}"
        progress: queue.SimpleQueue = queue.SimpleQueue()
        client.subscribe_topic(topic, lambda event: progress.put(event[1]))
        futures = {}
        for task in tasks:
            future = client.submit(analyze_on_worker, task, plugin_name, topic, key=f"dawemo-analyze-{run_id}-{task.index}",
                                   pure=False)
            futures[future.key] = (future, task)
        finished = as_completed([future for future, _ in futures.values()], loop=client.loop)
        try:
            while futures:
                while True:
                    try:
                        index, done_s = progress.get_nowait()
                    except queue.Empty:
                        break
                    sink.progress(index, done_s)
                ready = finished.next_batch(block=False) if finished.has_ready() else []
                if not ready:
                    time.sleep(POLL_S)
                for future in ready:
                    _, task = futures.pop(future.key)
                    if future.status == "finished":
                        entry, plot_error = future.result()
                    else:  # e.g. KilledWorker: the file crashed workers more than the cluster allows
                        entry, plot_error = failed_entry(task, f"the cluster could not analyse it "
                                                               f"({one_line(future.exception())})"), None
                    future.release()
                    sink.done(task.index, entry, plot_error)
        finally:
            client.unsubscribe_topic(topic)
            if futures:  # interrupted: stop what is still queued or running
                client.cancel([future for future, _ in futures.values()])
