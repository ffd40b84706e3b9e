"""PSBT signing through the bindings, checked with embit (an independent Bitcoin
library: it builds the PSBTs from the wallet's watch-only xpub and verifies every
signed input's BIP-143 signature itself).

- `offline_sign_psbt` (device + recovery, no cosigner) signs a 1- and a 2-input regtest
  PSBT spending P2WPKH coins at `m/84/1/0/0/i`, and `sign_psbt` a 2-input one with the
  cosigner; the transactions verify input by input.
- `sign_psbt` refuses a foreign input, a missing witness UTXO, a Taproot input and bad
  base64 with `MpcError.InvalidInput` whose reason is the client's own ("PSBT refused"
  and the codec's code): nothing was sent to the cosigner.

Needs the servers and the session wallet of `conftest.py` (an HD account)."""

import pytest
from embit import bip32, ec, script
from embit.networks import NETWORKS
from embit.psbt import PSBT, DerivationPath
from embit.transaction import Transaction, TransactionInput, TransactionOutput

from conftest import run, w

NET = w.BitcoinNetwork.REGTEST


def account_keys(client, account):
    """The account key at m/84/1/0 (embit, from the exported tpub) and the root
    fingerprint."""
    watch = run(client.bitcoin_watch_only(account, None, NET))
    assert watch.account_path == "m/84/1/0"
    return bip32.HDKey.from_string(watch.xpub), bytes.fromhex(watch.fingerprint)


def build_psbt(client, account, n, tweak=None):
    """A regtest PSBT spending `n` coins of the wallet (m/84/1/0/0/i) to one foreign
    output; `tweak(psbt)` may damage it. Returns the PSBT and the spent outputs."""
    xpub, fp = account_keys(client, account)
    spent = []
    vin = []
    for i in range(n):
        pub = xpub.derive([0, i]).key
        # The wallet's own address for that path matches embit's.
        addr = run(client.bitcoin_address(account, f"m/84/1/0/0/{i}", NET))
        assert addr.address == script.p2wpkh(pub).address(NETWORKS["regtest"])
        spent.append((pub, TransactionOutput(80_000 + i, script.p2wpkh(pub))))
        vin.append(TransactionInput(bytes([0x90 + i]) * 32, i, sequence=0xFFFFFFFD))
    total = sum(o.value for _, o in spent)
    foreign = bip32.HDKey.from_seed(b"\x07" * 32).key.get_public_key()
    tx = Transaction(
        version=2,
        vin=vin,
        vout=[TransactionOutput(total - 1_000, script.p2wpkh(foreign))],
        locktime=0,
    )
    psbt = PSBT(tx)
    for i, (pub, out) in enumerate(spent):
        psbt.inputs[i].witness_utxo = out
        psbt.inputs[i].bip32_derivations[pub] = DerivationPath(fp, [84, 1, 0, 0, i])
    if tweak:
        tweak(psbt)
    return psbt, spent


def verify_every_input(signed, spent):
    tx = Transaction.parse(bytes.fromhex(signed.tx_hex))
    assert tx.txid().hex() == signed.txid
    for i, (pub, out) in enumerate(spent):
        sig, key = tx.vin[i].witness.items
        assert sig[-1] == 1  # SIGHASH_ALL
        assert ec.PublicKey.parse(key) == pub
        h = tx.sighash_segwit(i, script.p2pkh_from_p2wpkh(out.script_pubkey), out.value)
        assert pub.verify(ec.Signature.parse(sig[:-1]), h), f"input {i}"


@pytest.mark.parametrize("n", [1, 2])
def test_psbt_signed_offline_verifies_in_embit(wallet, client, n):
    psbt, spent = build_psbt(client, wallet.account_id, n)
    signed = run(client.offline_sign_psbt(wallet.account_id, psbt.to_string(), NET))
    assert signed.network == "regtest"
    assert signed.fee_sats == 1_000
    assert [i.path for i in signed.inputs] == [f"m/84/1/0/0/{i}" for i in range(n)]
    assert not any(i.presigned for i in signed.inputs)
    verify_every_input(signed, spent)
    # The finalized PSBT carries the final witnesses.
    final = PSBT.from_string(signed.psbt_base64)
    assert all(inp.final_scriptwitness is not None for inp in final.inputs)


def test_psbt_signed_with_the_cosigner_verifies_in_embit(wallet, client):
    psbt, spent = build_psbt(client, wallet.account_id, 2)
    signed = run(client.sign_psbt(wallet.account_id, psbt.to_string(), NET))
    assert len(signed.inputs) == 2
    assert all(i.request_id for i in signed.inputs)  # the cosigner's audit references
    verify_every_input(signed, spent)


def _foreign(psbt):
    other = bip32.HDKey.from_seed(b"\x09" * 32).derive([84, 1, 0, 0, 0]).key.get_public_key()
    psbt.inputs[0].witness_utxo = TransactionOutput(80_000, script.p2wpkh(other))
    psbt.inputs[0].bip32_derivations = {other: DerivationPath(b"\x01\x02\x03\x04", [84, 1, 0, 0, 0])}


def _missing(psbt):
    psbt.inputs[1].witness_utxo = None


def _taproot(psbt):
    pub = list(psbt.inputs[0].bip32_derivations)[0]
    psbt.inputs[0].witness_utxo = TransactionOutput(80_000, script.p2tr(pub))


@pytest.mark.parametrize(
    "code,tweak",
    [("not_our_input", _foreign), ("missing_utxo", _missing), ("unsupported_script", _taproot)],
)
def test_bad_psbts_are_refused_before_any_request(wallet, client, code, tweak):
    psbt, _ = build_psbt(client, wallet.account_id, 2, tweak)
    with pytest.raises(w.MpcError.InvalidInput) as e:
        run(client.sign_psbt(wallet.account_id, psbt.to_string(), NET))
    assert "PSBT refused" in str(e.value) and code in str(e.value), str(e.value)


def test_bad_base64_is_refused(wallet, client):
    with pytest.raises(w.MpcError.InvalidInput) as e:
        run(client.sign_psbt(wallet.account_id, "cHNidP8B***", NET))
    assert "invalid_base64" in str(e.value), str(e.value)
