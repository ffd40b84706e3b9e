"""The Python bindings against real processes: `sign-gateway` + `sign-service` on
loopback (see conftest.py), a wallet created through the bindings, an EIP-1559
transaction signed by the device and the cosigner, and the signature checked with
independent libraries (eth-account, eth-keys, rlp), not with the wallet's own code.

    bindings/test.sh                 # builds everything, then runs this
    python -m pytest bindings/tests  # with the binaries and bindings already built
"""

import os

import pytest
import rlp
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.typed_transactions import TypedTransaction
from eth_keys import keys
from eth_utils import keccak, to_checksum_address

from conftest import ALLOWED_TO, ETH_PATH, Recorder, run, w, wt

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

# An EIP-1559 transfer on Sepolia (chain id 11155111).
TX = {
    "type": 2,
    "chainId": 11155111,
    "nonce": 7,
    "maxPriorityFeePerGas": 1_500_000_000,
    "maxFeePerGas": 30_000_000_000,
    "gas": 21_000,
    "to": ALLOWED_TO,
    "value": 10**15,
    "data": b"",
    "accessList": [],
}


def tx_fields(tx):
    return [
        tx["chainId"],
        tx["nonce"],
        tx["maxPriorityFeePerGas"],
        tx["maxFeePerGas"],
        tx["gas"],
        bytes.fromhex(tx["to"][2:]),
        tx["value"],
        tx["data"],
        tx["accessList"],
    ]


def signing_payload(tx):
    """`0x02 || rlp([chain_id, nonce, ..., access_list])`: the EIP-1559 preimage."""
    return b"\x02" + rlp.encode(tx_fields(tx))


def test_create_wallet_through_bindings(wallet):
    info = wallet.info
    assert info.committed
    assert len(info.accounts) == 1
    acct = info.accounts[0]
    assert acct.kind == wt.AccountKind.HD
    assert acct.account_id
    assert acct.ethereum_address.startswith("0x") and len(acct.ethereum_address) == 42
    assert info.key_share_path == wallet.config.key_share_path
    assert os.path.isfile(info.key_share_path)
    assert os.path.isfile(info.recovery_path)
    # The progress listener passed to create_wallet saw every stage and a finished
    # keygen report for the account.
    events = wallet.progress.snapshot()
    stages = {e.stage for e in events}
    assert {"aux-info", "keygen", "confirm"} <= stages, stages
    assert any(
        e.stage == "keygen" and e.finished and e.account_id == acct.account_id
        for e in events
    ), events
    assert any(e.stage == "confirm" and e.finished for e in events), events


def test_accounts_and_public_key(wallet, client):
    accounts = run(client.list_accounts())
    assert [a.account_id for a in accounts] == [wallet.account_id]
    assert run(client.wallet_id()) == wallet.info.wallet_id

    root = run(client.get_public_key(wallet.account_id, "m"))
    assert root.public_key == accounts[0].public_key
    pk = run(client.get_public_key(wallet.account_id, ETH_PATH))
    assert pk.derivation_path == ETH_PATH
    assert pk.public_key != root.public_key
    # The address is keccak(uncompressed key)[12:], computed here by eth-keys.
    key = keys.PublicKey.from_compressed_bytes(bytes.fromhex(pk.public_key))
    assert key.to_checksum_address() == to_checksum_address(pk.ethereum_address)



def test_bitcoin_addresses_and_watch_only(wallet, client):
    prefixes = {
        w.BitcoinNetwork.MAINNET: ("bc1q", "xpub", "m/84/0/0"),
        w.BitcoinNetwork.TESTNET: ("tb1q", "tpub", "m/84/1/0"),
        w.BitcoinNetwork.SIGNET: ("tb1q", "tpub", "m/84/1/0"),
        w.BitcoinNetwork.REGTEST: ("bcrt1q", "tpub", "m/84/1/0"),
    }
    for net, (prefix, xprefix, account_path) in prefixes.items():
        wo = run(client.bitcoin_watch_only(wallet.account_id, None, net))
        assert wo.account_path == account_path
        assert wo.xpub.startswith(xprefix), wo.xpub
        origin = f"wpkh([{wo.fingerprint}/{account_path[2:]}]{wo.xpub}/"
        assert wo.receive_descriptor.startswith(origin + "0/*)#"), wo.receive_descriptor
        assert wo.change_descriptor.startswith(origin + "1/*)#"), wo.change_descriptor
        a = run(client.bitcoin_address(wallet.account_id, account_path + "/0/0", net))
        assert a.address.startswith(prefix), a.address
        assert a.path == account_path + "/0/0"
    # The mainnet and testnet addresses are get_public_key's.
    pk = run(client.get_public_key(wallet.account_id, "m/84/0/0/0/1"))
    main = run(client.bitcoin_address(wallet.account_id, "m/84/0/0/0/1", w.BitcoinNetwork.MAINNET))
    test = run(client.bitcoin_address(wallet.account_id, "m/84/0/0/0/1", w.BitcoinNetwork.TESTNET))
    assert (main.address, main.public_key) == (pk.bitcoin_address, pk.public_key)
    assert test.address == pk.bitcoin_testnet_address
    with pytest.raises(w.MpcError.InvalidInput):
        run(client.bitcoin_address(wallet.account_id, "m/84'/0/0", w.BitcoinNetwork.MAINNET))

def test_health(client):
    h = run(client.health())
    assert h.status
    assert h.identity


def test_sign_eip1559_transaction_verifies_independently(wallet, client):
    pk = run(client.get_public_key(wallet.account_id, ETH_PATH))
    address = to_checksum_address(pk.ethereum_address)

    payload = signing_payload(TX)
    digest = keccak(payload)
    # eth-account computes the same signing hash from the transaction fields: the
    # payload above is a real EIP-1559 preimage.
    assert TypedTransaction.from_dict(TX).hash() == digest

    progress = Recorder()
    client.set_progress_listener(progress)
    sig = run(
        client.sign_tx(
            wallet.account_id,
            ETH_PATH,
            payload,
            wt.DigestKind.KECCAK256,
            wt.PayloadKind.ETHEREUM_TRANSACTION,
            w.ChainStyle.TYPED(),
        )
    )
    client.set_progress_listener(None)

    assert sig.account_id == wallet.account_id
    assert sig.derivation_path == ETH_PATH
    assert bytes.fromhex(sig.digest) == digest
    assert sorted(sig.signers) == [0, 1], sig.signers
    assert sig.request_id
    r, s = int(sig.r, 16), int(sig.s, 16)
    assert 0 < r < SECP256K1_N and 0 < s <= SECP256K1_N // 2, "s must be low"
    assert sig.y_parity in (0, 1) and sig.v == sig.y_parity

    # 1. eth-keys: recover the signer's key from (digest, r, s, y_parity).
    recovered = keys.Signature(vrs=(sig.y_parity, r, s)).recover_public_key_from_msg_hash(
        digest
    )
    assert recovered.to_checksum_address() == address
    assert recovered.to_compressed_bytes().hex() == pk.public_key
    assert keys.PublicKey.from_compressed_bytes(
        bytes.fromhex(pk.public_key)
    ).verify_msg_hash(digest, keys.Signature(vrs=(sig.y_parity, r, s)))

    # 2. eth-account: decode the signed raw transaction and recover its sender.
    raw = b"\x02" + rlp.encode(tx_fields(TX) + [sig.y_parity, r, s])
    assert Account.recover_transaction(raw) == address

    # 3. The 65-byte form is r || s || v.
    rsv = bytes.fromhex(sig.rsv)
    assert rsv == r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([sig.v])

    # Progress of the signing session reached the listener.
    events = progress.snapshot()
    assert any(e.stage == "sign" for e in events), events
    assert any(e.stage == "sign" and e.finished for e in events), events


def test_sign_message_verifies_independently(wallet, client):
    pk = run(client.get_public_key(wallet.account_id, ETH_PATH))
    message = b"wallet-mpc bindings test"
    sig = run(client.sign_message(wallet.account_id, ETH_PATH, message))
    assert sig.v in (27, 28)
    recovered = Account.recover_message(
        encode_defunct(primitive=message), signature=bytes.fromhex(sig.rsv)
    )
    assert recovered == to_checksum_address(pk.ethereum_address)


def test_policy_refusal_carries_the_code(wallet, client):
    """A transaction to a destination the cosigner's policy does not allow is refused:
    the exception is `MpcError.PolicyDenied` with `code == ErrorCode.POLICY_DENIED` (the
    same code as the CLI's JSON and the cosigner's wire error) and the rule."""
    other = dict(TX, to="0x1111111111111111111111111111111111111111")
    with pytest.raises(w.MpcError) as e:
        run(
            client.sign_tx(
                wallet.account_id,
                ETH_PATH,
                signing_payload(other),
                wt.DigestKind.KECCAK256,
                wt.PayloadKind.ETHEREUM_TRANSACTION,
                w.ChainStyle.TYPED(),
            )
        )
    err = e.value
    # Python callers switch on the code, whatever the variant.
    assert err.code == wt.ErrorCode.POLICY_DENIED, err
    assert isinstance(err, w.MpcError.PolicyDenied), type(err)
    assert err.detail
    # A cosigner with google.rpc.ErrorInfo names the rule; older ones cannot (the
    # client never reads it from the message text).
    assert err.rule in ("allowed_destinations", None), err.rule
    if err.rule is None:
        import warnings

        warnings.warn("this cosigner names no rule (no ErrorInfo): rule not checked")
    # The allowed destination still signs.
    sig = run(
        client.sign_tx(
            wallet.account_id,
            ETH_PATH,
            signing_payload(TX),
            wt.DigestKind.KECCAK256,
            wt.PayloadKind.ETHEREUM_TRANSACTION,
            w.ChainStyle.TYPED(),
        )
    )
    assert sorted(sig.signers) == [0, 1]


def test_wrong_account_is_unknown_account(wallet, client):
    with pytest.raises(w.MpcError.UnknownAccount) as e:
        run(
            client.sign_tx(
                "no-such-account",
                ETH_PATH,
                signing_payload(TX),
                wt.DigestKind.KECCAK256,
                wt.PayloadKind.ETHEREUM_TRANSACTION,
                w.ChainStyle.TYPED(),
            )
        )
    assert e.value.account_id == "no-such-account"
    assert e.value.code == wt.ErrorCode.UNKNOWN_ACCOUNT
    assert e.value.available == [wallet.account_id]
    with pytest.raises(w.MpcError.UnknownAccount):
        run(client.get_public_key("no-such-account", ETH_PATH))


def test_cosigner_down_is_cosigner_unavailable(servers, wallet, client):
    servers.cosigner.stop()
    try:
        with pytest.raises(w.MpcError.CosignerUnavailable) as e:
            run(
                client.sign_tx(
                    wallet.account_id,
                    ETH_PATH,
                    signing_payload(TX),
                    wt.DigestKind.KECCAK256,
                    wt.PayloadKind.ETHEREUM_TRANSACTION,
                    w.ChainStyle.TYPED(),
                )
            )
        assert servers.cosigner_url.split("//")[1] in e.value.detail
        assert e.value.code == wt.ErrorCode.COSIGNER_UNAVAILABLE
        # The local operations do not need the cosigner.
        assert run(client.list_accounts())[0].account_id == wallet.account_id
    finally:
        # Back up for the tests after this one (same key store).
        servers.cosigner.start(timeout=90)
    # And a restarted cosigner signs again with the stored share.
    sig = run(client.sign_message(wallet.account_id, ETH_PATH, b"after restart"))
    assert sorted(sig.signers) == [0, 1]
