"""Runs the Kotlin test (tests/kotlin/BindingsTest.kt, compiled by bindings/test.sh)
against the session's real gateway + cosigner and wallet, and verifies the signature
it produced with eth-account (independent of the wallet's code).

`WALLET_MPC_KOTLIN_CMD` is the command running the compiled test (java with the
classpath and `-Djna.library.path`); without it the test is skipped, unless
`WALLET_MPC_REQUIRE_KOTLIN=1` (set by bindings/test.sh), which makes it fail.
"""

import json
import os
import shlex
import subprocess

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import to_checksum_address

from conftest import DEVICE_PASS, run, w

# The Kotlin test signs here, a path no other test signs at: a signature at a path
# starts a background refill of that path's presignature pool (in whichever process
# signed), so at a shared path the Kotlin signing could come from the pool, with no
# session and no progress to report.
KOTLIN_PATH = "m/44/60/0/0/17"


def test_kotlin_bindings(servers, wallet):
    cmd = os.environ.get("WALLET_MPC_KOTLIN_CMD")
    if not cmd:
        if os.environ.get("WALLET_MPC_REQUIRE_KOTLIN") == "1":
            pytest.fail("WALLET_MPC_KOTLIN_CMD is not set", pytrace=False)
        pytest.skip("WALLET_MPC_KOTLIN_CMD not set (bindings/test.sh sets it)")
    env = dict(os.environ)
    env.update(
        WALLET_MPC_TEST_COSIGNER=servers.cosigner_url,
        WALLET_MPC_TEST_KEY_SHARES=wallet.config.key_share_path,
        WALLET_MPC_TEST_PASSPHRASE=DEVICE_PASS,
        WALLET_MPC_TEST_ACCOUNT=wallet.account_id,
        WALLET_MPC_TEST_PATH=KOTLIN_PATH,
    )
    proc = subprocess.run(
        shlex.split(cmd),
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = proc.stdout + proc.stderr
    print(output)
    assert proc.returncode == 0, f"Kotlin test failed ({proc.returncode}):\n{output}"
    lines = proc.stdout.splitlines()
    assert "kotlin: 4 passed, 0 failed" in lines, output

    # The signature the Kotlin client obtained, checked here with eth-account.
    signed = [l for l in lines if l.startswith("SIGNED ")]
    assert len(signed) == 1, output
    sig = json.loads(signed[0][len("SIGNED ") :])
    recovered = Account.recover_message(
        encode_defunct(primitive=bytes.fromhex(sig["message_hex"])),
        signature=bytes.fromhex(sig["rsv"]),
    )
    client = run(w.new_mpc_client(wallet.config))
    expected = run(client.get_public_key(wallet.account_id, KOTLIN_PATH)).ethereum_address
    assert to_checksum_address(sig["address"]) == to_checksum_address(expected)
    assert recovered == to_checksum_address(expected)
