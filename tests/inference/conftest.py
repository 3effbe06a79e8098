"""Fixtures for the inference tests: a real mcpd (the built binary, on a SQLite file, logging
at trace level to a file the tests scan), a real OpenBao dev server with TLS, and stub
providers. Run by scripts/test.sh after the cargo suites."""

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import json
import ssl
import urllib.error
import urllib.request

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from stub import Stub  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
BIN = os.path.join(TARGET, "debug")

# Every secret value a test stores: none may appear in mcpd's output or in an answer.
KEYS = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Reply:
    def __init__(self, status, body, headers):
        self.status_code, self.content, self.headers = status, body, headers

    @property
    def text(self):
        return self.content.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.content)


def request(method, url, body=None, headers=None, ca=None, timeout=30):
    """One HTTP call with the standard library (the SDKs bring their own clients)."""
    data = None if body is None else json.dumps(body).encode()
    headers = dict(headers or {})
    if data is not None:
        headers["content-type"] = "application/json"
    context = ssl.create_default_context(cafile=ca) if ca else None
    call = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(call, timeout=timeout, context=context) as r:
            return Reply(r.status, r.read(), r.headers)
    except urllib.error.HTTPError as e:
        return Reply(e.code, e.read(), e.headers)


def wait_for(url, timeout=60, ca=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if request("GET", url, timeout=1, ca=ca).status_code < 500:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


def new_key(prefix="sk"):
    key = f"{prefix}-{secrets.token_hex(12)}"
    KEYS.append(key)
    return key


class Mcpd:
    def __init__(self, tmp, args=(), token=None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = token or "mcpd-admin-" + secrets.token_hex(16)
        self.log_path = os.path.join(tmp, "mcpd.log")
        self.config = os.path.join(tmp, "mcpctl.json")
        self.log = open(self.log_path, "ab")
        env = dict(os.environ, MCPD_LOG="trace", MCPCTL_CONFIG=self.config)
        self.process = subprocess.Popen(
            [os.path.join(BIN, "mcpd"), "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", os.path.join(tmp, "data"),
             "--bootstrap-token", self.token, *args],
            stdout=self.log, stderr=subprocess.STDOUT, env=env)
        wait_for(self.url + "/readyz")

    def call(self, method, path, body=None, token=None, headers=None):
        headers = dict(headers or {})
        token = self.token if token is None else token
        if token:
            headers["authorization"] = f"Bearer {token}"
        return request(method, self.url + path, body, headers)

    def ok(self, method, path, body=None):
        r = self.call(method, path, body)
        assert r.status_code < 300, f"{method} {path}: {r.status_code} {r.text}"
        return r.json() if r.content else None

    def secret(self, name, value, backend=None):
        body = {"name": name, "data": {"API_KEY": value}}
        if backend:
            body["backend"] = backend
        self.ok("POST", "/api/v1/secrets", body)

    def llm(self, name, provider, url, secret=None, tier="fast", model="upstream-model", extra=None):
        body = {"name": name, "type": provider, "model": model, "tier": tier, "url": url, "extra": extra or {}}
        if secret:
            body["apiKeyRef"] = {"name": secret, "key": "API_KEY"}
        self.ok("POST", "/api/v1/llms", body)

    def user(self, name, rules=None, role=None):
        """A user bound to `role`, or to a new role of `rules`; answers its token."""
        self.ok("POST", "/api/v1/users", {"name": name})
        if rules is not None:
            role = f"role-{name}"
            self.ok("POST", "/api/v1/roles", {"name": role, "rules": rules})
        if role:
            self.ok("POST", "/api/v1/rolebindings", {"name": f"rb-{name}", "role": role, "users": [name]})
        return self.ok("POST", "/api/v1/tokens", {"user": name})["token"]

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()

    def output(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")


class OpenBao:
    def __init__(self, tmp):
        self.bao = os.environ.get("BAO_BIN") or shutil.which("bao") or "bao"
        self.port = free_port()
        self.root = "root-" + uuid.uuid4().hex
        self.dir = os.path.join(tmp, "bao")
        os.makedirs(self.dir)
        self.process = subprocess.Popen(
            [self.bao, "server", "-dev", "-dev-tls", f"-dev-tls-cert-dir={self.dir}", f"-dev-root-token-id={self.root}",
             f"-dev-listen-address=127.0.0.1:{self.port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addr = f"https://127.0.0.1:{self.port}"
        ca = os.path.join(self.dir, "vault-ca.pem")
        deadline = time.time() + 60
        while not os.path.exists(ca) and time.time() < deadline:
            time.sleep(0.1)
        self.ca_path = ca
        wait_for(self.addr + "/v1/sys/health", ca=ca)
        with open(ca) as f:
            self.ca_pem = f.read()

    def write(self, path, data):
        r = request("POST", f"{self.addr}/v1/secret/data/{path}", {"data": data}, {"x-vault-token": self.root}, ca=self.ca_path)
        assert r.status_code == 200, r.text

    def delete(self, path):
        r = request("DELETE", f"{self.addr}/v1/secret/data/{path}", None, {"x-vault-token": self.root}, ca=self.ca_path)
        assert r.status_code == 204, r.text

    def undelete(self, path):
        headers = {"x-vault-token": self.root}
        version = request("GET", f"{self.addr}/v1/secret/metadata/{path}", None, headers, ca=self.ca_path).json()["data"]["current_version"]
        r = request("POST", f"{self.addr}/v1/secret/undelete/{path}", {"versions": [version]}, headers, ca=self.ca_path)
        assert r.status_code == 204, r.text

    def read(self, path):
        r = request("GET", f"{self.addr}/v1/secret/data/{path}", None, {"x-vault-token": self.root}, ca=self.ca_path)
        return r.json()["data"]["data"] if r.status_code == 200 else None

    def stop(self):
        self.process.terminate()
        self.process.wait(15)


@pytest.fixture(scope="session")
def tmp():
    with tempfile.TemporaryDirectory(prefix="mcpd-inference-") as d:
        yield d


@pytest.fixture(scope="session")
def mcpd(tmp):
    server = Mcpd(tmp)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def bao(tmp, mcpd):
    server = OpenBao(tmp)
    # The backend authenticates with the root token, kept as a secret like any other.
    KEYS.append(server.root)
    mcpd.ok("POST", "/api/v1/secrets", {"name": "bao-token", "data": {"token": server.root}})
    mcpd.ok("POST", "/api/v1/secretbackends", {"name": "bao", "type": "openbao", "config": {
        "url": server.addr, "tokenSecretRef": {"name": "bao-token", "key": "token"}, "caCert": server.ca_pem}})
    yield server
    server.stop()


@pytest.fixture
def stub():
    s = Stub("stub")
    yield s
    s.close()


@pytest.fixture
def stub2():
    s = Stub("second")
    yield s
    s.close()
