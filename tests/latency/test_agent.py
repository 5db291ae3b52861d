"""A real agent on 127.0.0.1: success through the remote:// target, and every failure answered with the right
HTTP status and a JSON error while the agent stays up."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import urllib.request

import pytest

from edgeskd.errors import LatencyError
from edgeskd.latency import get_target, measure, target_fingerprint
from edgeskd.latency.agent import AgentConfig, LatencyAgent
from tests.latency.conftest import FAST

TOKEN = "test-token-0123456789"


@pytest.fixture()
def agent():
    server = LatencyAgent(AgentConfig(token=TOKEN, max_upload_bytes=64 * 1024, max_measure_s=20, max_queue=4),
                          host="127.0.0.1", port=0)
    server.start()
    yield server
    server.close()


def _remote(agent, inner="ort-cpu"):
    return get_target(f"remote://127.0.0.1:{agent.server.server_address[1]}/{inner}")


def _post(agent, body: bytes, token: str | None = TOKEN, settings: dict | None = None, length: int | None = None):
    host, port = agent.server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=60)
    conn.putrequest("POST", "/v1/measure")
    conn.putheader("Content-Length", str(len(body) if length is None else length))
    if token is not None:
        conn.putheader("Authorization", f"Bearer {token}")
    conn.putheader("X-Edgeskd-Settings", json.dumps(settings or {"runs": 5, "seconds": 0, "warmup_s": 0.02}))
    conn.endheaders()
    if length is None:
        conn.send(body)
    response = conn.getresponse()
    answer = response.status, json.loads(response.read())
    conn.close()
    return answer


def _healthy(agent) -> bool:
    with urllib.request.urlopen(f"{agent.url}/v1/health", timeout=10) as r:
        return json.loads(r.read())["status_text"] == "ok"


def test_remote_target_measures_through_the_agent(agent, tiny_onnx, monkeypatch):
    monkeypatch.setenv("EDGESKD_AGENT_TOKEN", TOKEN)
    target = _remote(agent, "openvino-cpu")
    m = measure(tiny_onnx, target, **FAST)
    assert m.fingerprint["runtime"] == "openvino" and m.fingerprint["precision"] == "fp32"
    assert m.stats["n"] >= 5 and m.info["remote"] == agent.url
    assert target_fingerprint(target) == m.fingerprint  # cache look-ups can ask before measuring


def test_the_agent_settles_a_clear_budget_verdict_after_the_pilot_and_refuses_bad_settle_settings(agent, tiny_onnx,
                                                                                                    monkeypatch):
    monkeypatch.setenv("EDGESKD_AGENT_TOKEN", TOKEN)
    settle = {"budget_ms": 1e6, "statistic": "p95", "margin": 1.25, "pilot_s": 0.05}
    m = measure(tiny_onnx, _remote(agent), runs=1, seconds=1.0, warmup_s=0.0, settle=settle)
    assert m.info["settled_early"]["verdict"] == "under" and sum(m.samples_ms[:-1]) < 50
    status, answer = _post(agent, tiny_onnx.read_bytes(), settings={"runs": 5, "seconds": 1.0, "warmup_s": 0.0,
                                                                     "settle": {**settle, "margin": 0.5}})
    assert status == 400 and "margin must be a number > 1" in answer["error"]


def test_wrong_or_missing_token_is_401(agent, tiny_onnx, monkeypatch):
    body = tiny_onnx.read_bytes()
    for token in ("wrong-token-0123456789", None, TOKEN[:-1]):
        status, answer = _post(agent, body, token=token)
        assert status == 401 and "token" in answer["error"]
    monkeypatch.setenv("EDGESKD_AGENT_TOKEN", "not-the-token")
    with pytest.raises(LatencyError, match="401"):
        measure(tiny_onnx, _remote(agent), **FAST)
    monkeypatch.delenv("EDGESKD_AGENT_TOKEN")
    with pytest.raises(LatencyError, match="EDGESKD_AGENT_TOKEN"):
        measure(tiny_onnx, _remote(agent), **FAST)
    assert _healthy(agent)


def test_oversize_upload_is_413_before_reading_it(agent):
    status, answer = _post(agent, b"", length=10**9)
    assert status == 413 and "exceeds" in answer["error"]
    assert _healthy(agent)


def test_malformed_model_is_422(agent, tmp_path):
    for body in (b"\x00not an onnx model", b""):
        status, answer = _post(agent, body)
        assert status == 422 and "ONNX" in answer["error"]
    assert _healthy(agent)


def test_bad_settings_400_unknown_path_404(agent, tiny_onnx):
    status, answer = _post(agent, tiny_onnx.read_bytes(), settings={"target": "no-such-target"})
    assert status == 400 and "unknown target" in answer["error"]
    status, answer = _post(agent, tiny_onnx.read_bytes(), settings={"rm -rf": 1})
    assert status == 400
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"{agent.url}/v1/nothing", timeout=10)
    assert info.value.code == 404 and "no endpoint" in json.loads(info.value.read())["error"]


def test_measurement_timeout_is_504_and_agent_stays_up(tiny_onnx):
    agent = LatencyAgent(AgentConfig(token=TOKEN, max_measure_s=2), host="127.0.0.1", port=0)
    agent.start()
    try:
        status, answer = _post(agent, tiny_onnx.read_bytes(), settings={"runs": 5, "seconds": 60})
        assert status == 504 and "longer than" in answer["error"]
        assert _healthy(agent)
    finally:
        agent.close()


def test_measures_one_model_at_a_time(agent, tiny_onnx):
    body, answers = tiny_onnx.read_bytes(), []
    settings = {"runs": 5, "seconds": 0.3, "warmup_s": 0.0}
    threads = [threading.Thread(target=lambda: answers.append(_post(agent, body, settings=settings)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [status for status, _ in answers] == [200, 200]
    spans = sorted((a["measurement"]["info"]["agent"]["started"], a["measurement"]["info"]["agent"]["finished"])
                   for _, a in answers)
    assert spans[0][1] <= spans[1][0]  # the second started after the first finished


def test_cli_agent_serve_starts_with_env_token_and_refuses_without(tiny_onnx):
    env = {**os.environ, "EDGESKD_AGENT_TOKEN": TOKEN}
    proc = subprocess.Popen([sys.executable, "-m", "edgeskd", "agent", "serve", "--port", "0"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "listening on http://127.0.0.1:" in line
        port = int(line.split("http://127.0.0.1:")[1].split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/health", timeout=10) as r:
            assert r.status == 200
        assert TOKEN not in " ".join(proc.args)  # the secret is not on the command line
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    env.pop("EDGESKD_AGENT_TOKEN")
    result = subprocess.run([sys.executable, "-m", "edgeskd", "agent", "serve", "--port", "0"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "EDGESKD_AGENT_TOKEN" in result.stderr
