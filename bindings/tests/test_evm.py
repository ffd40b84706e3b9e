"""The bindings on a real Ethereum node: a transaction signed through
`sign_transaction` is accepted by anvil (`eth_sendRawTransaction`) and mined with
status 1; typed data signed through `sign_typed_data` recovers with eth-account; an
EIP-7702 authorization to a delegate the cosigner's policy does not list is refused
with the rule named.

Needs anvil (`bash scripts/setup.sh evm`) and the servers of `conftest.py`."""

import json

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak, to_checksum_address

from conftest import ALLOWED_TO, ETH_PATH, run, w, wt
from test_e2e import signing_payload

VALUE = 10**15


def test_eip1559_transaction_signed_through_bindings_is_mined(anvil, wallet, client):
    pk = run(client.get_public_key(wallet.account_id, ETH_PATH))
    sender = to_checksum_address(pk.ethereum_address)
    anvil.rpc("anvil_setBalance", [sender, hex(10**19)])
    chain_id = int(anvil.rpc("eth_chainId", []), 16)
    assert chain_id == anvil.CHAIN_ID
    nonce = int(anvil.rpc("eth_getTransactionCount", [sender, "pending"]), 16)
    base_fee = int(anvil.rpc("eth_getBlockByNumber", ["latest", False])["baseFeePerGas"], 16)
    tip = 10**9
    tx = {
        "type": 2,
        "chainId": chain_id,
        "nonce": nonce,
        "maxPriorityFeePerGas": tip,
        "maxFeePerGas": 2 * base_fee + tip,
        "gas": 21_000,
        "to": ALLOWED_TO,
        "value": VALUE,
        "data": b"",
        "accessList": [],
    }
    signed = run(client.sign_transaction(wallet.account_id, ETH_PATH, signing_payload(tx)))
    assert signed.tx_type == 2
    assert signed.raw_transaction[0] == 2
    assert signed.raw_transaction_hex == "0x" + signed.raw_transaction.hex()
    assert signed.transaction_hash == "0x" + keccak(signed.raw_transaction).hex()
    assert sorted(signed.signature.signers) == [0, 1]
    # eth-account decodes the signed transaction and recovers the wallet's address.
    assert Account.recover_transaction(signed.raw_transaction) == sender

    before = int(anvil.rpc("eth_getBalance", [ALLOWED_TO, "latest"]), 16)
    tx_hash = anvil.rpc("eth_sendRawTransaction", [signed.raw_transaction_hex])
    assert tx_hash == signed.transaction_hash
    receipt = anvil.receipt(tx_hash)
    assert int(receipt["status"], 16) == 1, receipt
    assert int(receipt["type"], 16) == 2, receipt
    assert to_checksum_address(receipt["from"]) == sender
    after = int(anvil.rpc("eth_getBalance", [ALLOWED_TO, "latest"]), 16)
    assert after - before == VALUE
    assert int(anvil.rpc("eth_getTransactionCount", [sender, "latest"]), 16) == nonce + 1


def test_typed_data_signed_through_bindings_recovers(wallet, client):
    pk = run(client.get_public_key(wallet.account_id, ETH_PATH))
    typed = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
            ],
            "Mail": [
                {"name": "from", "type": "address"},
                {"name": "contents", "type": "string"},
            ],
        },
        "primaryType": "Mail",
        "domain": {"name": "bindings", "version": "1", "chainId": 31337},
        "message": {"from": ALLOWED_TO, "contents": "hello from the bindings"},
    }
    sig = run(client.sign_typed_data(wallet.account_id, ETH_PATH, json.dumps(typed)))
    assert sig.v in (27, 28)
    recovered = Account.recover_message(
        encode_typed_data(full_message=typed), signature=bytes.fromhex(sig.rsv)
    )
    assert recovered == to_checksum_address(pk.ethereum_address)


def test_authorization_to_an_unlisted_delegate_is_refused(wallet, client):
    try:
        run(
            client.sign_authorization(
                wallet.account_id, ETH_PATH, 31337, "0x" + "de" * 20, 0
            )
        )
    except w.MpcError.PolicyDenied as e:
        assert e.code == wt.ErrorCode.POLICY_DENIED
        assert e.rule == "eip7702_delegates", e
    else:
        raise AssertionError("the cosigner signed an authorization to an unlisted delegate")
