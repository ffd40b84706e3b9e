"""Backup and restore through the Python bindings, against the real servers of
conftest.py: the session's wallet (created through the bindings) exported with
`export_backup`, restored with `import_backup` into another directory, where it signs
with the cosigner at the same address (checked with eth-account); a wrong backup
passphrase is refused with nothing written, the identical share again is accepted.
"""

import os

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from conftest import ETH_PATH, client_config, run, w, wt

BACKUP_PASS = "bindings backup passphrase"


def test_export_import_and_sign(servers, wallet, client, workdir):
    backup = run(client.export_backup(wt.PartyRole.DEVICE, BACKUP_PASS))
    assert b'"wallet-mpc/key-shares"' in backup
    assert wallet.info.wallet_id.encode() in backup

    directory = os.path.join(workdir, "restored")
    os.makedirs(directory, exist_ok=True)
    cfg = client_config(servers, directory)
    restored = run(w.new_mpc_client(cfg))

    with pytest.raises(w.MpcError.WrongPassphrase) as e:
        run(restored.import_backup(backup, "not the backup passphrase"))
    assert e.value.code == wt.ErrorCode.WRONG_PASSPHRASE
    assert os.listdir(directory) == []

    done = run(restored.import_backup(backup, BACKUP_PASS))
    assert done.wallet_id == wallet.info.wallet_id
    assert done.party_index == 0
    assert not done.already_present
    again = run(restored.import_backup(backup, BACKUP_PASS))
    assert again.already_present

    original = run(client.get_public_key(wallet.account_id, ETH_PATH))
    assert run(restored.get_public_key(wallet.account_id, ETH_PATH)) == original
    sig = run(restored.sign_message(wallet.account_id, ETH_PATH, b"restored"))
    signer = Account.recover_message(
        encode_defunct(b"restored"), signature=bytes.fromhex(sig.rsv)
    )
    assert signer.lower() == original.ethereum_address.lower()
