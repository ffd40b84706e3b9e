"""Shared fixtures of the binding tests.

`test_smoke.py` needs only the generated Python module. The other tests start REAL
processes on loopback (`sign-gateway` and `sign-service`, the GMP cosigner) with their
own temporary directories (each binds port 0 and reports the port it got through
`--port-file`), create one wallet through the bindings for the whole session,
and stop every process in finalizers. When a test fails, the logs of the running
processes are attached to its report.

Environment:

- `WALLET_MPC_FFI_PY`: directory holding `wallet_mpc_ffi.py` and the shared library
  (default `bindings/generated/python`, what `bindings/generate.sh` writes).
- `SIGN_GATEWAY_BIN`, `SIGN_SERVICE_BIN`: the server binaries (default: the debug build
  in `$CARGO_TARGET_DIR`, else `$HOME/.cache/wallet-mpc/target`, what `bindings/test.sh`
  builds).
- `WALLET_MPC_KOTLIN_CMD`: command (shell words) running the compiled Kotlin test; the
  Kotlin test is skipped without it unless `WALLET_MPC_REQUIRE_KOTLIN=1`, which makes it
  fail instead (`bindings/test.sh` sets both).
- `ANVIL_BIN`: Foundry's anvil, the Ethereum node of `test_evm.py` (default: the
  binary of the npm package in `testing/evm-tools`, which `bash scripts/setup.sh evm`
  installs; missing, the test fails with that command).
- `WALLET_MPC_KEEP=1`: keep the temporary directories (logs, key files) after the run.
"""

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
GENERATED = os.environ.get(
    "WALLET_MPC_FFI_PY", os.path.join(HERE, "..", "generated", "python")
)
sys.path.insert(0, os.path.abspath(GENERATED))

import wallet_mpc_ffi as w  # noqa: E402
import wallet_types as wt  # noqa: E402  (the shared vocabulary: ErrorCode, kinds, roles)

# Public test values (tests only).
DEVICE_PASS = "bindings device passphrase"
RECOVERY_PASS = "bindings recovery passphrase"
STORE_KEY = "5e" * 32
# Non-hardened BIP-44-like path (the wallet derives non-hardened children only).
ETH_PATH = "m/44/60/0/0/0"
# The only destination the test cosigner's policy allows (allowed_destinations).
ALLOWED_TO = "0x3535353535353535353535353535353535353535"

_DEFAULT_TARGET = os.path.join(
    os.environ.get("CARGO_TARGET_DIR")
    or os.path.join(os.path.expanduser("~"), ".cache", "wallet-mpc", "target"),
    "debug",
)

# Every process started by a fixture and still known, for the failure report.
_PROCS = []


def run(coro):
    """Runs one coroutine of the bindings to completion."""
    return asyncio.run(coro)


def _binary(env, name):
    path = os.environ.get(env) or os.path.join(_DEFAULT_TARGET, name)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(
            f"{name} not found at {path}: build it (bindings/test.sh does) or set {env}",
            pytrace=False,
        )
    return path


def _tail(path, lines=60):
    try:
        with open(path, "r", errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError as e:
        return f"(no log: {e})"


class Proc:
    """A server process with its output in a log file; `stop()` is idempotent.

    The server writes the address it listens on to `port_file` (`--port-file`: HOST:PORT
    and a newline, atomically, once listening); `start()` reads its port from there."""

    def __init__(self, name, argv, log, port_file, env=None):
        self.name = name
        self.argv = argv
        self.log = log
        self.env = env
        self.port_file = port_file
        self.port = None
        self.popen = None

    def _listening(self):
        try:
            with open(self.port_file) as f:
                addr = f.read().strip()
        except FileNotFoundError:
            return False
        self.port = int(addr.rsplit(":", 1)[1])
        return True

    def start(self, timeout=60.0):
        # A restart must not read the previous run's address.
        try:
            os.remove(self.port_file)
        except FileNotFoundError:
            pass
        out = open(self.log, "ab")
        try:
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        finally:
            out.close()
        if self not in _PROCS:
            _PROCS.append(self)
        deadline = time.monotonic() + timeout
        while True:
            if self.popen.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited early ({self.popen.returncode}); "
                    f"log:\n{_tail(self.log)}"
                )
            if self._listening():
                return self
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.name} not listening after {timeout}s; "
                    f"log:\n{_tail(self.log)}"
                )
            time.sleep(0.05)

    def alive(self):
        return self.popen is not None and self.popen.poll() is None

    def stop(self):
        """SIGTERM, up to 10 s, then SIGKILL; waits for the port to close."""
        p = self.popen
        if p is None:
            return
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            except ProcessLookupError:
                pass
        self.popen = None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attaches the tails of the servers' logs to a failing test's report."""
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for p in _PROCS:
            state = "running" if p.alive() else "stopped"
            rep.sections.append(
                (f"log of {p.name} ({state}, {p.log})", _tail(p.log, 80))
            )


@pytest.fixture(scope="session")
def workdir():
    d = tempfile.mkdtemp(prefix="wallet-mpc-bindings-")
    yield d
    if os.environ.get("WALLET_MPC_KEEP") == "1":
        print(f"\n[bindings] kept {d}", file=sys.stderr)
    else:
        shutil.rmtree(d, ignore_errors=True)


def _clean_env(prefixes):
    """The environment without the servers' own variables (the test's config files
    decide), and without colours in the logs."""
    env = dict(os.environ)
    for k in list(env):
        if any(k.startswith(p) for p in prefixes):
            del env[k]
    env["NO_COLOR"] = "1"
    return env


class Servers:
    """The gateway and the cosigner of the session."""

    def __init__(self, workdir):
        self.workdir = workdir
        gw_cfg = os.path.join(workdir, "sign-gateway.yaml")
        with open(gw_cfg, "w") as f:
            f.write(
                "host: 127.0.0.1\nport: 0\n"
                "logging:\n  level: warn\n  format: pretty\n"
            )
        gw_port_file = os.path.join(workdir, "sign-gateway.port")
        self.gateway = Proc(
            "sign-gateway",
            [
                _binary("SIGN_GATEWAY_BIN", "sign-gateway"),
                "--config",
                gw_cfg,
                "--port-file",
                gw_port_file,
            ],
            os.path.join(workdir, "sign-gateway.log"),
            gw_port_file,
            env=_clean_env(["SIGN_GATEWAY_"]),
        )
        self.cosigner_dir = os.path.join(workdir, "cosigner")
        os.makedirs(self.cosigner_dir, exist_ok=True)
        self.cosigner_config = os.path.join(self.cosigner_dir, "sign-service.yaml")
        cs_port_file = os.path.join(self.cosigner_dir, "sign-service.port")
        self.cosigner = Proc(
            "sign-service",
            [
                _binary("SIGN_SERVICE_BIN", "sign-service"),
                "--config",
                self.cosigner_config,
                "--insecure-dev-store-key",
                "--port-file",
                cs_port_file,
            ],
            os.path.join(self.cosigner_dir, "sign-service.log"),
            cs_port_file,
            env=_clean_env(["SIGN_SERVICE_", "SIGN_GATEWAY_"]),
        )

    @property
    def gateway_url(self):
        return f"http://127.0.0.1:{self.gateway.port}"

    @property
    def cosigner_url(self):
        return f"http://127.0.0.1:{self.cosigner.port}"

    def _write_cosigner_config(self):
        # Port 0 on the first start; a restart (`cosigner.start()`) binds the port the
        # first start got, where the clients of the session expect the cosigner.
        data = self.cosigner_dir
        with open(self.cosigner_config, "w") as f:
            f.write(
                f"host: 127.0.0.1\nport: {self.cosigner.port or 0}\n"
                f"gateway_url: {self.gateway_url}\n"
                f"key_store: {os.path.join(data, 'store.redb')}\n"
                f"audit_log: {os.path.join(data, 'audit.jsonl')}\n"
                "insecure_dev_primes: true\n"
                "dev_open_registration: true\n"
                "session_timeout_secs: 120\n"
                "wallet_creation_timeout_secs: 600\n"
                "prime_pool_size: 0\n"
                "logging:\n  level: info\n  format: pretty\n"
                "policy:\n  ethereum:\n"
                f"    allowed_destinations: [\"{ALLOWED_TO}\"]\n"
            )

    def start(self):
        self.gateway.start(timeout=30)
        self._write_cosigner_config()
        self.cosigner.start(timeout=90)
        self._write_cosigner_config()

    def stop(self):
        # Cosigner first: it holds sessions on the gateway.
        self.cosigner.stop()
        self.gateway.stop()


@pytest.fixture(scope="session")
def servers(request, workdir):
    s = Servers(workdir)
    request.addfinalizer(s.stop)
    s.start()
    return s


def client_config(servers, directory):
    """The test client's configuration: dev primes and the fast KDF, so wallet creation
    takes about a minute (public primes, weak key-file hashing: tests only)."""
    cfg = w.default_mpc_config(
        os.path.join(directory, "client_key_shares.json"), DEVICE_PASS
    )
    cfg.cosigner_url = servers.cosigner_url
    cfg.recovery_path = os.path.join(directory, "recovery_key_shares.json")
    cfg.recovery_passphrase = RECOVERY_PASS
    cfg.insecure_dev_primes = True
    cfg.insecure_fast_kdf = True
    cfg.request_timeout_secs = 20
    cfg.sign_timeout_secs = 120
    cfg.setup_timeout_secs = 600
    return cfg


class Recorder(w.ProgressListener):
    """Collects progress events (called from the library's threads)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.events = []

    def on_progress(self, event):
        with self.lock:
            self.events.append(event)

    def snapshot(self):
        with self.lock:
            return list(self.events)

    def clear(self):
        with self.lock:
            self.events.clear()


class Wallet:
    """The session's wallet: created once through the bindings."""

    def __init__(self, config, info, progress, elapsed):
        self.config = config
        self.info = info
        self.progress = progress
        self.elapsed = elapsed
        self.account_id = info.accounts[0].account_id


@pytest.fixture(scope="session")
def wallet(servers, workdir):
    directory = os.path.join(workdir, "client")
    os.makedirs(directory, exist_ok=True)
    cfg = client_config(servers, directory)
    client = run(w.new_mpc_client(cfg))
    progress = Recorder()
    started = time.monotonic()
    info = run(client.create_wallet(1, wt.AccountKind.HD, "bindings-test", progress))
    elapsed = time.monotonic() - started
    print(f"\n[bindings] create_wallet: {elapsed:.1f}s", file=sys.stderr)
    return Wallet(cfg, info, progress, elapsed)


@pytest.fixture
def client(wallet):
    """A fresh client over the session's wallet."""
    return run(w.new_mpc_client(wallet.config))


class Anvil:
    """Foundry's anvil on loopback port 0 (chain id 31337), its output in a log file;
    `rpc()` speaks JSON-RPC to it with the standard library."""

    CHAIN_ID = 31337

    def __init__(self, workdir):
        self.name = "anvil"
        self.bin = os.environ.get("ANVIL_BIN") or os.path.join(
            REPO,
            "testing",
            "evm-tools",
            "node_modules",
            "@foundry-rs",
            "anvil-linux-amd64",
            "bin",
            "anvil",
        )
        if not (os.path.isfile(self.bin) and os.access(self.bin, os.X_OK)):
            pytest.fail(
                f"anvil not found at {self.bin}: install it with "
                "`bash scripts/setup.sh evm` (or set ANVIL_BIN)",
                pytrace=False,
            )
        self.log = os.path.join(workdir, "anvil.log")
        self.url = None
        self.popen = None

    def start(self, timeout=30.0):
        out = open(self.log, "ab")
        try:
            self.popen = subprocess.Popen(
                [
                    self.bin,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--chain-id",
                    str(self.CHAIN_ID),
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            out.close()
        _PROCS.append(self)
        deadline = time.monotonic() + timeout
        while self.url is None:
            with open(self.log, "r", errors="replace") as f:
                for line in f:
                    if line.startswith("Listening on "):
                        self.url = "http://" + line.split()[-1]
            if self.url is None:
                if self.popen.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"anvil did not start; log:\n{_tail(self.log)}")
                time.sleep(0.05)
        return self

    def rpc(self, method, params):
        """One JSON-RPC call; an error answer raises."""
        body = json.dumps(
            {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        ).encode()
        req = urllib.request.Request(
            self.url, data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            answer = json.load(r)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    def receipt(self, tx_hash, timeout=30.0):
        """Waits for the receipt of `tx_hash`."""
        deadline = time.monotonic() + timeout
        while True:
            r = self.rpc("eth_getTransactionReceipt", [tx_hash])
            if r is not None:
                return r
            if time.monotonic() > deadline:
                raise RuntimeError(f"no receipt for {tx_hash} after {timeout}s")
            time.sleep(0.1)

    def alive(self):
        return self.popen is not None and self.popen.poll() is None

    def stop(self):
        p = self.popen
        if p is not None and p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.popen = None


@pytest.fixture(scope="session")
def anvil(request, workdir):
    a = Anvil(workdir)
    request.addfinalizer(a.stop)
    return a.start()
