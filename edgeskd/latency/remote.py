"""The client side of `edgeskd agent`: the `remote://host:port[/target]` target, over urllib.

The token comes from the environment (EDGESKD_AGENT_TOKEN, or the variable a profile names in options.token_env),
so it never appears on a command line.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from edgeskd._json import loads_bounded
from edgeskd.errors import LatencyError, MissingDependency
from edgeskd.latency.measurement import Measurement
from edgeskd.latency.targets import Target

TOKEN_ENV = "EDGESKD_AGENT_TOKEN"


def _token(target: Target, token: str | None) -> str:
    env = str(target.options.get("token_env", TOKEN_ENV))
    value = token or os.environ.get(env)
    if not value:
        raise LatencyError(f"no token for the agent at {target.options['url']}: set {env}")
    return value


def _call(url: str, *, token: str | None, data: bytes | None = None, headers: dict[str, str] | None = None,
          timeout: float = 30) -> dict[str, Any]:
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return loads_bounded(response.read())
    except urllib.error.HTTPError as exc:
        try:
            message = loads_bounded(exc.read()).get("error", exc.reason)
        except (ValueError, AttributeError, OSError):  # not JSON, too big or too deep
            message = exc.reason
        error = MissingDependency if exc.code == 501 else LatencyError
        raise error(f"agent {url} answered {exc.code}: {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise LatencyError(f"cannot reach the agent at {url}: {reason}") from None
    except ValueError as exc:  # JSONDecodeError or JSONLimitError
        raise LatencyError(f"agent {url} answered something that is not JSON: {exc}") from None


def remote_fingerprint(target: Target, *, token: str | None = None) -> dict[str, Any]:
    query = urllib.parse.urlencode({"target": target.options["device_target"], "threads": target.threads,
                                    "precision": target.precision})
    answer = _call(f"{target.options['url']}/v1/fingerprint?{query}", token=_token(target, token))
    return dict(answer["fingerprint"])


def measure_remote(path: Path, target: Target, settings: dict[str, Any], *, timeout_s: float,
                   token: str | None = None) -> Measurement:
    base = target.options["url"]
    secret = _token(target, token)
    health = _call(f"{base}/v1/health", token=None)
    size = path.stat().st_size
    if size > int(health.get("max_upload_bytes", size)):
        raise LatencyError(f"{path} is {size} bytes; the agent at {base} accepts at most {health['max_upload_bytes']}")
    body = {"target": target.options["device_target"], "threads": target.threads, "precision": target.precision,
            "timeout_s": timeout_s, **settings}
    # The request may wait behind other measurements in the agent's queue: allow for it in the socket timeout.
    wait = float(target.options.get("request_timeout_s", 0)) or timeout_s + 60
    answer = _call(f"{base}/v1/measure", token=secret, data=path.read_bytes(), timeout=wait,
                   headers={"Content-Type": "application/octet-stream", "X-Edgeskd-Settings": json.dumps(body)})
    m = Measurement.from_dict(answer["measurement"])
    m.info["target"] = target.to_dict()
    m.info["remote"] = base
    return m
