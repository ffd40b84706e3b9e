"""Smoke test of the generated Python bindings: no cosigner, no gateway, no wallet.

Checks that the module loads, that the records/enums cross the boundary, and that
failures come back as the typed `MpcError` variants an app switches on.

Run after `bindings/generate.sh` (or set WALLET_MPC_FFI_PY to the directory holding
wallet_mpc_ffi.py and the shared library):

    python3 -m pytest bindings/tests
"""

import asyncio
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
GENERATED = os.environ.get(
    "WALLET_MPC_FFI_PY", os.path.join(HERE, "..", "generated", "python")
)
sys.path.insert(0, os.path.abspath(GENERATED))

import wallet_mpc_ffi as w  # noqa: E402
import wallet_types as wt  # noqa: E402


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def config(tmp_path):
    cfg = w.default_mpc_config(str(tmp_path / "client_key_shares.json"), "passphrase")
    # Nothing listens on port 1: connecting fails at once.
    cfg.cosigner_url = "http://127.0.0.1:1"
    cfg.request_timeout_secs = 5
    return cfg


def test_default_config():
    cfg = w.default_mpc_config("shares.json", "pass")
    assert cfg.key_share_path == "shares.json"
    assert cfg.cosigner_url == "http://127.0.0.1:50051"
    assert cfg.role == wt.PartyRole.DEVICE
    assert cfg.gateway_url is None
    assert cfg.request_timeout_secs == 30
    assert cfg.insecure_dev_primes is False


def test_invalid_config_is_config_error(config):
    config.cosigner_url = ""
    with pytest.raises(w.MpcError.Config) as e:
        run(w.new_mpc_client(config))
    assert "cosigner_url" in e.value.detail
    assert e.value.code == wt.ErrorCode.CONFIG
    # The synchronous constructor reports the same error.
    with pytest.raises(w.MpcError.Config):
        w.MpcClient(config)


def test_recovery_role_needs_recovery_path(config):
    config.role = wt.PartyRole.RECOVERY
    with pytest.raises(w.MpcError.Config):
        run(w.new_mpc_client(config))


def test_missing_share_file_is_no_wallet(config):
    client = run(w.new_mpc_client(config))
    with pytest.raises(w.MpcError.NoWallet) as e:
        run(client.list_accounts())
    assert e.value.path == config.key_share_path
    assert e.value.code == wt.ErrorCode.NO_WALLET
    with pytest.raises(w.MpcError.NoWallet):
        run(client.get_public_key("0", "m/44/60/0/0/0"))
    with pytest.raises(w.MpcError.NoWallet):
        run(
            client.sign_tx(
                "0",
                "m/44/60/0/0/0",
                b"\x02\xc0",
                wt.DigestKind.KECCAK256,
                wt.PayloadKind.ETHEREUM_TRANSACTION,
                w.ChainStyle.TYPED(),
            )
        )


def test_every_error_is_an_mpc_error(config):
    client = w.MpcClient(config)
    with pytest.raises(w.MpcError):
        run(client.list_accounts())


def test_unreachable_cosigner_is_cosigner_unavailable(config):
    client = run(w.new_mpc_client(config))
    with pytest.raises(w.MpcError.CosignerUnavailable) as e:
        run(client.health())
    assert "127.0.0.1:1" in e.value.detail


def test_bad_cosigner_url_is_config_error(config):
    config.cosigner_url = "not a url"
    client = run(w.new_mpc_client(config))
    with pytest.raises(w.MpcError.Config):
        run(client.health())


def test_progress_listener_is_accepted(config):
    class Listener(w.ProgressListener):
        def __init__(self):
            self.events = []

        def on_progress(self, event):
            self.events.append(event)

    client = w.MpcClient(config)
    client.set_progress_listener(Listener())
    client.set_progress_listener(None)


def test_enrollment_api(config, tmp_path):
    config.recovery_path = str(tmp_path / "recovery_key_shares.json")
    config.recovery_passphrase = "recovery passphrase"
    config.allow_weak_passphrase = True
    client = w.MpcClient(config)
    # Nothing stored yet.
    assert client.list_enrollments() == []
    # An enrollment that is not stored is refused before any network traffic.
    with pytest.raises(w.MpcError.InvalidInput) as e:
        run(
            client.create_wallet_from_enrollment(
                "enrollment-1", 1, wt.AccountKind.HD, "x", None
            )
        )
    assert "enroll" in e.value.detail
    with pytest.raises(w.MpcError.InvalidInput):
        run(client.create_wallet_from_enrollment("../x", 1, wt.AccountKind.HD, "x", None))
    # Enrolling needs the cosigner.
    with pytest.raises(w.MpcError.CosignerUnavailable):
        run(client.enroll_device(None))
    assert client.list_enrollments() == []


def test_verify_ethereum_rejects_garbage():
    with pytest.raises(w.MpcError.InvalidInput):
        w.verify_ethereum(b"hello", "zz", "0x0000000000000000000000000000000000000000")


def test_error_codes_are_the_shared_vocabulary():
    # The codes of wallet-types, as UniFFI exposes them: the same names everywhere.
    for name in ["POLICY_DENIED", "COSIGNER_UNAVAILABLE", "NO_WALLET", "VERIFICATION_FAILED"]:
        assert hasattr(wt.ErrorCode, name), name
    with pytest.raises(w.MpcError.InvalidInput) as e:
        w.verify_ethereum(b"hello", "zz", "0x0000000000000000000000000000000000000000")
    assert e.value.code == wt.ErrorCode.INVALID_INPUT


def test_bitcoin_hardened_path_is_invalid_input(config):
    # Refused before the (missing) share file is opened: the threshold key has no
    # hardened children.
    client = w.MpcClient(config)
    with pytest.raises(w.MpcError.InvalidInput) as e:
        run(client.bitcoin_address("0", "m/84'/0'/0'/0/0", w.BitcoinNetwork.MAINNET))
    assert "hardened" in e.value.detail
    assert e.value.code == wt.ErrorCode.INVALID_INPUT
    with pytest.raises(w.MpcError.InvalidInput):
        run(client.bitcoin_watch_only("0", "m/84h/0/0", w.BitcoinNetwork.TESTNET))
    with pytest.raises(w.MpcError.NoWallet):
        run(client.bitcoin_watch_only("0", None, w.BitcoinNetwork.REGTEST))
