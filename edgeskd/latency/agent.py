"""The latency agent: an HTTP service on a device (a Jetson, a bedside PC) that measures uploaded ONNX models with
the same engine as local targets, one at a time, and answers JSON. The client side is the `remote://` target.

Endpoints (JSON answers; errors are {"error": "...", "status": N}):
  GET  /v1/health                          no token; version, limits and queue length
  GET  /v1/fingerprint?target=T&threads=N&precision=P
                                           the fingerprint a measurement of T here would carry (cache look-ups)
  POST /v1/measure                         body: the ONNX file; header X-Edgeskd-Settings: JSON
                                           {"target", "threads", "precision", "runs", "seconds", "warmup_s",
                                            "batch", "preprocess", "raw_size", "timeout_s", "settle"}
Every endpoint but health needs `Authorization: Bearer TOKEN` (compared in constant time). Before any error
answer to an upload (wrong token, bad settings) its body is read and discarded, up to the upload limit, so the
client sees the error and not a broken pipe. Uploads are bounded in size, measurements in time, settings in range
(edgeskd._limits: threads at most this device's cores, batch, runs, seconds); at most `max_connections` requests are
served at once and the rest get 503 at once (with a listen backlog of 128, so a burst is answered rather than
reset). Nothing is ever unpickled: the body is parsed as ONNX protobuf and checked before any runtime sees it, and
models that point at external data files are refused (they could read the agent's disk).
"""

from __future__ import annotations

import hmac
import json
import queue
import shutil
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from edgeskd._json import JSONLimitError, loads_bounded
from edgeskd._limits import MAX_BATCH, check_measure_settings, check_range
from edgeskd.errors import EdgeskdError, LatencyError, MissingDependency

SETTINGS_HEADER = "X-Edgeskd-Settings"
_SETTING_KEYS = {"target", "threads", "precision", "runs", "seconds", "warmup_s", "batch", "preprocess", "raw_size",
                 "timeout_s", "settle"}


class HTTPError(Exception):
    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class AgentConfig:
    token: str
    max_upload_bytes: int = 256 << 20
    max_measure_s: float = 300.0   # one measurement, worker start and model load included
    max_queue: int = 8             # waiting measurements beyond this are refused with 503
    max_batch: int = MAX_BATCH     # largest batch a request may ask for
    max_connections: int = 32      # requests served at once; more are answered 503 straight away

    def __post_init__(self) -> None:
        if not self.token or len(self.token) < 8:
            raise LatencyError("the agent needs a token of at least 8 characters (--token or EDGESKD_AGENT_TOKEN)")
        check_range(self.max_upload_bytes, "--max-upload-mb", low=0, high=1 << 40, error=LatencyError, low_open=True)
        check_range(self.max_measure_s, "--max-seconds", low=0, high=86400, error=LatencyError, low_open=True)
        check_range(self.max_queue, "--max-queue", low=1, high=10_000, integer=True, error=LatencyError)
        check_range(self.max_batch, "--max-batch", low=1, high=1 << 20, integer=True, error=LatencyError)
        check_range(self.max_connections, "--max-connections", low=1, high=10_000, integer=True, error=LatencyError)

    def check_settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        """A request's numeric settings, finite and within this agent's limits (HTTP 400 naming the limit)."""
        try:
            # seconds over max_measure_s stay a 504 from the time limit; the range here keeps them finite and sane
            return check_measure_settings(settings, error=LatencyError, max_batch=self.max_batch,
                                          hints={"threads": "the cores of the agent's device",
                                                 "batch": "agent serve --max-batch",
                                                 "raw_size": ""})
        except LatencyError as exc:
            raise HTTPError(HTTPStatus.BAD_REQUEST, f"bad measurement settings: {exc}") from None


@dataclass
class _Job:
    path: Path
    settings: dict[str, Any]
    done: threading.Event = field(default_factory=threading.Event)
    result: dict[str, Any] | None = None
    error: HTTPError | None = None


class LatencyAgent:
    """The HTTP front (a thread per connection) and one measuring thread fed by a bounded queue."""

    def __init__(self, config: AgentConfig, host: str = "127.0.0.1", port: int = 8765):
        self.config = config
        self._jobs: queue.Queue[_Job | None] = queue.Queue(maxsize=config.max_queue)
        self._slots = threading.BoundedSemaphore(config.max_connections)
        self._open = 0   # connections with a thread, busy ones included (guarded by _open_lock)
        self._open_lock = threading.Lock()
        self._serving = False
        handler = type("Handler", (_Handler,), {"agent": self})
        self.server = _Server((host, port), handler)  # binds first: a failed start leaves no work folder behind
        try:
            self._workdir = Path(tempfile.mkdtemp(prefix="edgeskd-agent-"))
        except OSError:
            self.server.server_close()
            raise
        self._worker = threading.Thread(target=self._work, name="edgeskd-agent-worker", daemon=True)
        self._worker.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def serve_forever(self) -> None:
        self._serving = True
        try:
            self.server.serve_forever()
        finally:
            self.close()

    def start(self) -> threading.Thread:
        """Serve in a background thread (tests, embedding)."""
        self._serving = True
        thread = threading.Thread(target=self.server.serve_forever, name="edgeskd-agent-http", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        """Stop serving and remove the work folder; safe to call twice and before serving started."""
        if self._serving:  # shutdown() waits for serve_forever, so it would hang if that never ran
            self.server.shutdown()
            self._serving = False
        self.server.server_close()
        try:
            self._jobs.put_nowait(None)
        except queue.Full:  # the worker is daemonic; it dies with the process
            pass
        shutil.rmtree(self._workdir, ignore_errors=True)

    # --- the measuring thread -------------------------------------------------------------------------------
    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                job.result = self._measure(job)
            except HTTPError as exc:
                job.error = exc
            except Exception as exc:  # the agent stays up whatever one model does
                job.error = HTTPError(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(exc).__name__}: {exc}")
            finally:
                job.path.unlink(missing_ok=True)
                job.done.set()

    def _measure(self, job: _Job) -> dict[str, Any]:
        from edgeskd.data.preprocess import PreprocessSpec
        from edgeskd.latency.measure import MeasurementTimeout, measure
        from edgeskd.latency.measurement import check_settle
        from edgeskd.latency.targets import get_target

        s = job.settings
        try:
            target = get_target(str(s.get("target", "ort-cpu")), threads=s.get("threads"), precision=s.get("precision"))
            if target.runtime == "remote":
                raise LatencyError("an agent measures on its own device; it does not forward to remote targets")
            preprocess = PreprocessSpec.from_dict(s["preprocess"]) if s.get("preprocess") else None
            settle = check_settle(s["settle"], seconds=float(s.get("seconds", 1.0))) if s.get("settle") else None
        except (EdgeskdError, TypeError, ValueError) as exc:
            raise HTTPError(HTTPStatus.BAD_REQUEST, f"bad measurement settings: {exc}") from exc
        timeout = min(float(s.get("timeout_s") or self.config.max_measure_s), self.config.max_measure_s)
        started = time.time()
        try:
            m = measure(job.path, target, runs=int(s.get("runs", 50)), seconds=float(s.get("seconds", 1.0)),
                        warmup_s=float(s.get("warmup_s", 0.2)), batch=int(s.get("batch", 1)),
                        end_to_end=preprocess is not None, preprocess=preprocess, raw_size=s.get("raw_size"),
                        timeout_s=timeout, settle=settle)
        except MeasurementTimeout as exc:
            raise HTTPError(HTTPStatus.GATEWAY_TIMEOUT, f"{exc} (agent limit {self.config.max_measure_s:g} s)") from exc
        except MissingDependency as exc:
            raise HTTPError(HTTPStatus.NOT_IMPLEMENTED, str(exc)) from exc
        except (EdgeskdError, TypeError, ValueError) as exc:
            raise HTTPError(HTTPStatus.UNPROCESSABLE_ENTITY, f"the model could not be measured: {exc}") from exc
        m.info["agent"] = {"started": started, "finished": time.time()}
        return {"measurement": m.to_dict()}

    # --- called from HTTP threads ----------------------------------------------------------------------------
    def submit(self, path: Path, settings: dict[str, Any]) -> dict[str, Any]:
        job = _Job(path, settings)
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            path.unlink(missing_ok=True)
            raise HTTPError(HTTPStatus.SERVICE_UNAVAILABLE,
                            f"{self.config.max_queue} measurements are already waiting; retry later") from None
        # Waiting covers the jobs ahead of this one; each is bounded by max_measure_s plus worker start-up.
        if not job.done.wait(timeout=(self.config.max_queue + 1) * (self.config.max_measure_s + 30)):
            raise HTTPError(HTTPStatus.GATEWAY_TIMEOUT, "the measurement queue did not reach this model in time")
        if job.error is not None:
            raise job.error
        assert job.result is not None
        return job.result

    def new_upload_path(self) -> Path:
        handle = tempfile.NamedTemporaryFile(dir=self._workdir, suffix=".onnx", delete=False)
        handle.close()
        return Path(handle.name)


def validate_onnx(path: Path) -> None:
    """Parse and check an uploaded model before any runtime sees it; never unpickles (ONNX is protobuf)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise HTTPError(HTTPStatus.UNPROCESSABLE_ENTITY, f"the upload is not an ONNX model: {exc}") from exc
    tensors = list(model.graph.initializer) + [a.t for n in model.graph.node for a in n.attribute if a.HasField("t")]
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in tensors):
        raise HTTPError(HTTPStatus.UNPROCESSABLE_ENTITY, "models with external data files are refused; "
                        "upload a self-contained .onnx")
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise HTTPError(HTTPStatus.UNPROCESSABLE_ENTITY, f"the ONNX model is invalid: {exc}") from exc
    if len(model.graph.node) == 0:
        raise HTTPError(HTTPStatus.UNPROCESSABLE_ENTITY, "the ONNX model has no nodes")


class _Server(ThreadingHTTPServer):
    request_queue_size = 128   # listen backlog: a burst waits to be accepted instead of being reset (default 5)
    daemon_threads = True


BUSY_DRAIN_BYTES = 1 << 20  # a busy answer reads at most this much of a body, so the client can read the 503


class _Handler(BaseHTTPRequestHandler):
    agent: LatencyAgent
    timeout = 120  # seconds a client may stall while sending
    server_version = "edgeskd-agent"
    busy = False   # True when every connection slot was taken: this request gets 503
    _unread: int | None = None  # body bytes not yet read (None: nothing read, Content-Length says)

    def handle(self) -> None:
        agent = self.agent
        with agent._open_lock:
            agent._open += 1
            overloaded = agent._open > agent.config.max_connections + _Server.request_queue_size
        try:
            if overloaded:  # far past the limit: do no work at all for this one
                return
            if agent._slots.acquire(blocking=False):
                try:
                    super().handle()
                finally:
                    agent._slots.release()
            else:
                self.busy = True
                self.connection.settimeout(5)  # a busy answer waits only briefly for the request to arrive
                super().handle()
        finally:
            with agent._open_lock:
                agent._open -= 1

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._handle(self._get)

    def do_POST(self) -> None:  # noqa: N802
        self._handle(self._post)

    def _handle(self, route: Any) -> None:
        self._unread = None  # per request: a kept-alive connection carries several
        try:
            if self.busy:
                self.close_connection = True
                self._discard(min(self._length_or_zero(), BUSY_DRAIN_BYTES))
                self._unread = 0  # a busy answer reads no more than that
                raise HTTPError(HTTPStatus.SERVICE_UNAVAILABLE, f"the agent is serving its limit of "
                                f"{self.agent.config.max_connections} connections; retry later")
            status, body = route()
        except HTTPError as exc:
            status, body = exc.status, {"error": str(exc)}
            self._drain_before_error(status)
        except Exception as exc:
            status, body = HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(exc).__name__}: {exc}"}
        body.setdefault("status", int(status))
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status == HTTPStatus.UNAUTHORIZED:
            self.send_header("WWW-Authenticate", "Bearer")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def _authorise(self) -> None:
        given = self.headers.get("Authorization", "")
        scheme, _, token = given.partition(" ")
        expected = self.agent.config.token.encode()
        # compare_digest's time does not depend on where the tokens first differ (no timing oracle)
        if scheme != "Bearer" or not hmac.compare_digest(token.strip().encode(), expected):
            raise HTTPError(HTTPStatus.UNAUTHORIZED, "missing or wrong token (send 'Authorization: Bearer TOKEN')")

    def _get(self) -> tuple[HTTPStatus, dict[str, Any]]:
        from edgeskd import __version__

        url = urllib.parse.urlsplit(self.path)
        if url.path == "/v1/health":
            return HTTPStatus.OK, {"status_text": "ok", "edgeskd_version": __version__,
                                   "max_upload_bytes": self.agent.config.max_upload_bytes,
                                   "max_measure_s": self.agent.config.max_measure_s,
                                   "queued": self.agent._jobs.qsize()}
        if url.path == "/v1/fingerprint":
            self._authorise()
            from edgeskd.latency.fingerprint import machine_fingerprint
            from edgeskd.latency.targets import get_target

            query = dict(urllib.parse.parse_qsl(url.query))
            threads = self.agent.config.check_settings({"threads": query.get("threads") or None})["threads"]
            try:
                target = get_target(query.get("target", "ort-cpu"), threads=threads, precision=query.get("precision"))
                if target.runtime == "remote":
                    raise LatencyError("an agent does not forward to remote targets")
            except (EdgeskdError, ValueError) as exc:
                raise HTTPError(HTTPStatus.BAD_REQUEST, str(exc)) from exc
            return HTTPStatus.OK, {"fingerprint": machine_fingerprint(target), "target": target.to_dict()}
        raise HTTPError(HTTPStatus.NOT_FOUND, f"no endpoint {url.path}; see /v1/health, /v1/fingerprint, /v1/measure")

    def _post(self) -> tuple[HTTPStatus, dict[str, Any]]:
        if urllib.parse.urlsplit(self.path).path != "/v1/measure":
            raise HTTPError(HTTPStatus.NOT_FOUND, f"no endpoint {self.path}; POST /v1/measure")
        self._authorise()
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            raise HTTPError(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required")
        try:
            length = int(length_header)
        except ValueError:
            raise HTTPError(HTTPStatus.BAD_REQUEST, f"bad Content-Length {length_header!r}") from None
        limit = self.agent.config.max_upload_bytes
        if length > limit:
            raise HTTPError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"upload of {length} bytes exceeds the agent's "
                            f"limit of {limit} bytes")
        try:
            settings = loads_bounded(self.headers.get(SETTINGS_HEADER) or "{}", max_bytes=64 << 10, max_depth=8)
        except (json.JSONDecodeError, JSONLimitError) as exc:
            raise HTTPError(HTTPStatus.BAD_REQUEST, f"{SETTINGS_HEADER} is not JSON: {exc}") from exc
        if not isinstance(settings, dict) or set(settings) - _SETTING_KEYS:
            raise HTTPError(HTTPStatus.BAD_REQUEST, f"{SETTINGS_HEADER} must be an object with keys from "
                            f"{sorted(_SETTING_KEYS)}")
        settings = self.agent.config.check_settings(settings)  # before the upload is read
        path = self.agent.new_upload_path()
        try:
            self._receive(path, length)
            validate_onnx(path)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return HTTPStatus.OK, self.agent.submit(path, settings)

    def _drain_before_error(self, status: HTTPStatus) -> None:
        """Before an error answer to a POST, read the body the client is still sending (up to the upload limit; a
        413 reads none): a client answered before it finished sending sees a broken pipe, not the error (a wrong
        token was reported as "cannot reach the agent"). The connection is closed after any error with a body."""
        if self.command != "POST":
            return
        unread = self._unread if self._unread is not None else self._length_or_zero()
        if unread <= 0 and self.headers.get("Content-Length") is not None:
            return
        self.close_connection = True  # whatever is left must not be parsed as the next request
        if status not in (HTTPStatus.REQUEST_ENTITY_TOO_LARGE, HTTPStatus.LENGTH_REQUIRED):
            self._discard(min(unread, self.agent.config.max_upload_bytes))

    def _length_or_zero(self) -> int:
        try:
            return max(0, int(self.headers.get("Content-Length") or 0))
        except ValueError:
            return 0

    def _discard(self, length: int) -> None:
        """Read and drop `length` bytes of body (bounded by the caller); a client that stops sending ends it."""
        remaining = length
        try:
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 1 << 16))
                if not chunk:
                    break
                remaining -= len(chunk)
        except OSError:  # timeout or reset while draining: the answer is still sent if the socket allows
            pass

    def _receive(self, path: Path, length: int) -> None:
        remaining = self._unread = length
        with open(path, "wb") as fh:
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 1 << 20))
                if not chunk:
                    self._unread = 0  # the client stopped sending
                    raise HTTPError(HTTPStatus.BAD_REQUEST, f"upload ended after {length - remaining} of {length} bytes")
                remaining -= len(chunk)
                self._unread = remaining
                fh.write(chunk)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's signature)
        sys.stderr.write(f"edgeskd agent {self.address_string()} {format % args}\n")
