"""The latency agent under bad requests and faults: settings out of range are a 400 naming the limit, a wrong token
on a real upload is reported as a wrong token, a burst of 50 gets only 200/503 (no resets), and the work folder is
removed on SIGTERM and on a failed start."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading

import pytest

from edgeskd.errors import LatencyError
from edgeskd.latency.agent import AgentConfig, LatencyAgent

TOKEN = "reliability-token-0123"


@pytest.fixture()
def make_agent():
    agents = []

    def make(**limits):
        agent = LatencyAgent(AgentConfig(token=TOKEN, **limits), host="127.0.0.1", port=0)
        agent.start()
        agents.append(agent)
        return agent

    yield make
    for agent in agents:
        agent.close()


def _post(agent, body: bytes, settings: dict, token: str = TOKEN) -> tuple[int, dict]:
    host, port = agent.server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=60)
    conn.request("POST", "/v1/measure", body=body, headers={
        "Authorization": f"Bearer {token}", "X-Edgeskd-Settings": json.dumps(settings)})
    response = conn.getresponse()
    answer = response.status, json.loads(response.read())
    conn.close()
    return answer


@pytest.mark.parametrize("settings, words", [
    ({"threads": 100000}, ["threads", "limit"]),
    ({"batch": 100000}, ["batch", "256", "--max-batch"]),
    ({"seconds": float("nan")}, ["seconds", "finite"]),
    ({"runs": 10**12}, ["runs", "limit"]),
    ({"warmup_s": -1}, ["warmup_s", ">= 0"]),
    ({"raw_size": 10**6}, ["raw_size", "4096"]),
    ({"threads": "many"}, ["threads", "integer"]),
])
def test_settings_out_of_range_are_400_naming_the_limit(make_agent, tiny_onnx, settings, words):
    agent = make_agent()
    status, answer = _post(agent, tiny_onnx.read_bytes(), settings)
    assert status == 400 and all(w in answer["error"] for w in words), answer


def test_fingerprint_threads_are_bounded(make_agent):
    agent = make_agent()
    host, port = agent.server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.request("GET", "/v1/fingerprint?threads=100000", headers={"Authorization": f"Bearer {TOKEN}"})
    response = conn.getresponse()
    assert response.status == 400 and "threads" in json.loads(response.read())["error"]


def test_agent_limits_must_be_finite_and_positive():
    for limits in ({"max_measure_s": float("nan")}, {"max_connections": 0}, {"max_batch": -1},
                   {"max_upload_bytes": float("inf")}):
        with pytest.raises(LatencyError):
            AgentConfig(token=TOKEN, **limits)


def test_wrong_token_on_a_real_upload_is_reported_as_wrong_token(make_agent):
    from edgeskd.latency.remote import _call

    agent = make_agent(max_upload_bytes=32 << 20)
    body = os.urandom(8 << 20)  # far more than the socket buffers: the agent must read it before answering
    with pytest.raises(LatencyError, match="answered 401: missing or wrong token"):
        _call(f"{agent.url}/v1/measure", token="not-the-token-at-all", data=body,
              headers={"Content-Type": "application/octet-stream"})


def _get_health(port: int, start: threading.Barrier, results: list) -> None:
    try:
        start.wait(timeout=30)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("GET", "/v1/health")
        response = conn.getresponse()
        response.read()
        results.append(response.status)
        conn.close()
    except Exception as exc:  # a reset or refusal is what this test must never see
        results.append(f"{type(exc).__name__}: {exc}")


def _burst(port: int, n: int = 50) -> list:
    start, results = threading.Barrier(n), []
    threads = [threading.Thread(target=_get_health, args=(port, start, results)) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


def test_a_burst_of_50_gets_only_200_or_503(make_agent):
    agent = make_agent(max_connections=4)
    port = agent.server.server_address[1]
    results = _burst(port)
    assert len(results) == 50 and set(results) <= {200, 503}, results
    # With every slot held by an idle connection, the whole burst is answered 503 at once (nothing is reset),
    # and once the slots are free again it is served.
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
    try:
        for _ in range(100):  # the agent accepts the held connections asynchronously
            if agent._slots._value == 0:
                break
            threading.Event().wait(0.05)
        results = _burst(port)
        assert results == [503] * 50, results
    finally:
        for s in held:
            s.close()
    for _ in range(100):
        if agent._slots._value == 4:
            break
        threading.Event().wait(0.05)
    assert set(_burst(port)) <= {200, 503} and 200 in _burst(port, 5)


def _agent_process(tmp_path, *args):
    env = {**os.environ, "EDGESKD_AGENT_TOKEN": TOKEN, "TMPDIR": str(tmp_path)}
    return subprocess.Popen([sys.executable, "-m", "edgeskd", "agent", "serve", "--port", "0", "--json", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_sigterm_removes_the_work_folder(tmp_path):
    proc = _agent_process(tmp_path)
    try:
        line = proc.stdout.readline()
        while line and "url" not in line:
            line = proc.stdout.readline()
        assert [p.name.startswith("edgeskd-agent-") for p in tmp_path.iterdir()] == [True]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        proc.wait()
    assert list(tmp_path.iterdir()) == []


def test_a_failed_start_leaves_no_work_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError):
            LatencyAgent(AgentConfig(token=TOKEN), host="127.0.0.1", port=port)
        proc = _agent_process(tmp_path, "--port", str(port))  # the later --port wins
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 2 and "cannot listen" in err and len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []


def test_bad_settings_on_a_real_upload_are_reported_not_a_broken_pipe(make_agent):
    from edgeskd.latency.remote import _call

    agent = make_agent(max_upload_bytes=32 << 20)
    with pytest.raises(LatencyError, match="answered 400: bad measurement settings: batch"):
        _call(f"{agent.url}/v1/measure", token=TOKEN, data=os.urandom(8 << 20),
              headers={"X-Edgeskd-Settings": json.dumps({"batch": 100000})})
