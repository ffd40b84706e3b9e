//! Ethereum signing on [`MpcClient`], through the wallet's one EVM codec
//! (`wallet-evm`, on alloy): transactions of every type come back serialized and
//! hashed, EIP-712 typed data is sent to the cosigner as the JSON it hashes itself,
//! EIP-7702 authorizations come back ready for a type-4 transaction.

use serde::{Deserialize, Serialize};
use wallet_evm::{Address, AuthorizationFields, Signature, TypedDataPayload, UnsignedTx, U256};
use wallet_types::{DigestKind, PayloadKind};

use crate::error::MpcError;
use crate::types::ChainStyle;
use crate::{MpcClient, SignedResult};

/// A signed Ethereum transaction, ready for `eth_sendRawTransaction`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTransaction {
    /// The signature (its `v` in the transaction's own style); its fields appear at
    /// the top level in JSON.
    #[serde(flatten)]
    pub signature: SignedResult,
    /// The transaction type (0 legacy, 1, 2, 3 blob, 4 EIP-7702).
    pub tx_type: u8,
    /// The EIP-2718 encoding of the signed transaction, `0x` hex (a blob transaction
    /// without its sidecar).
    pub raw_transaction: String,
    /// The transaction hash, `0x` hex.
    pub transaction_hash: String,
}

/// A signed EIP-7702 authorization (an entry of a type-4 transaction's
/// `authorization_list`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedAuthorization {
    /// The signature.
    pub signature: SignedResult,
    /// Chain id (decimal; `0` for every chain).
    pub chain_id: String,
    /// The delegate contract, `0x` hex (EIP-55).
    pub address: String,
    /// The authority's account nonce.
    pub nonce: u64,
    /// y parity (0 or 1).
    pub y_parity: u8,
    /// r, `0x` hex.
    pub r: String,
    /// s, `0x` hex.
    pub s: String,
}

/// How `v` is formed for `tx`: EIP-155 for a legacy transaction with a chain id, 27/28
/// without one, the y parity for typed transactions.
pub fn chain_style(tx: &UnsignedTx) -> ChainStyle {
    match tx {
        UnsignedTx::Legacy(t) => match t.chain_id {
            Some(chain_id) => ChainStyle::Eip155 { chain_id },
            None => ChainStyle::Legacy,
        },
        _ => ChainStyle::Typed,
    }
}

/// Decodes an unsigned transaction signing payload (types 0-4, strictly).
pub fn decode_transaction(payload: &[u8]) -> Result<UnsignedTx, MpcError> {
    UnsignedTx::decode(payload)
        .map_err(|e| MpcError::input(format!("not an unsigned Ethereum transaction: {e}")))
}

/// alloy's signature from a verified [`SignedResult`].
fn alloy_signature(sig: &SignedResult) -> Result<Signature, MpcError> {
    let word = |h: &str, what: &str| {
        U256::from_str_radix(h.trim_start_matches("0x"), 16)
            .map_err(|_| MpcError::input(format!("the signature's {what} is not hex")))
    };
    Ok(Signature::new(
        word(&sig.r, "r")?,
        word(&sig.s, "s")?,
        sig.y_parity == 1,
    ))
}

/// The signed transaction of `tx` under `signature`.
pub fn signed_transaction(
    tx: UnsignedTx,
    signature: SignedResult,
) -> Result<SignedTransaction, MpcError> {
    let tx_type = tx.tx_type();
    let signed = tx.into_signed(alloy_signature(&signature)?);
    Ok(SignedTransaction {
        signature,
        tx_type,
        raw_transaction: format!("0x{}", hex::encode(&signed.raw)),
        transaction_hash: format!("{:#x}", signed.hash),
    })
}

fn signed_authorization(
    fields: &AuthorizationFields,
    signature: SignedResult,
) -> SignedAuthorization {
    SignedAuthorization {
        chain_id: fields.chain_id.to_string(),
        address: fields.delegate.to_checksum(None),
        nonce: fields.nonce,
        y_parity: signature.y_parity,
        r: format!("0x{}", signature.r),
        s: format!("0x{}", signature.s),
        signature,
    }
}

impl MpcClient {
    /// Signs an unsigned Ethereum transaction (its signing payload: legacy RLP, or
    /// `type ‖ rlp` for types 1-4) with the cosigner, and returns it signed and hashed.
    /// The payload is decoded first: anything else is refused before any request.
    pub async fn sign_transaction(
        &self,
        account_id: String,
        path: String,
        payload: Vec<u8>,
    ) -> Result<SignedTransaction, MpcError> {
        let tx = decode_transaction(&payload)?;
        self.sign_unsigned_transaction(account_id, path, tx).await
    }

    /// [`Self::sign_transaction`] of a transaction already decoded (or built): its
    /// signing payload is what is signed.
    pub async fn sign_unsigned_transaction(
        &self,
        account_id: String,
        path: String,
        tx: UnsignedTx,
    ) -> Result<SignedTransaction, MpcError> {
        let sig = self
            .sign_tx(
                account_id,
                path,
                tx.signing_payload(),
                DigestKind::Keccak256,
                PayloadKind::EthereumTransaction,
                chain_style(&tx),
            )
            .await?;
        signed_transaction(tx, sig)
    }

    /// [`Self::sign_unsigned_transaction`] with the device AND recovery shares, without
    /// the cosigner.
    pub async fn offline_sign_transaction(
        &self,
        account_id: String,
        path: String,
        tx: UnsignedTx,
    ) -> Result<SignedTransaction, MpcError> {
        let style = chain_style(&tx);
        let sig = self
            .offline_sign(
                account_id,
                path,
                tx.signing_payload(),
                DigestKind::Keccak256,
                style,
            )
            .await?;
        signed_transaction(tx, sig)
    }

    /// Signs EIP-712 typed data (the JSON of `eth_signTypedData_v4`): the cosigner
    /// receives the JSON, decodes and hashes it itself and applies its typed-data rules;
    /// both sides sign `0x1901 ‖ domainSeparator ‖ hashStruct(message)`. `v` is 27/28.
    pub async fn sign_typed_data(
        &self,
        account_id: String,
        path: String,
        typed_data_json: Vec<u8>,
    ) -> Result<SignedResult, MpcError> {
        let typed = TypedDataPayload::parse(&typed_data_json)
            .map_err(|e| MpcError::input(e.to_string()))?;
        self.sign_with_cosigner(
            account_id,
            path,
            typed.preimage().to_vec(),
            DigestKind::Keccak256,
            PayloadKind::EthereumTypedData,
            Some(typed_data_json),
            None,
            ChainStyle::Legacy,
        )
        .await
    }

    /// Signs an EIP-7702 authorization delegating the account to `delegate` on
    /// `chain_id` (0: every chain, which cosigners refuse by default) for the account
    /// nonce `nonce`. Parse a typed address with [`wallet_evm::parse_address`].
    pub async fn sign_authorization(
        &self,
        account_id: String,
        path: String,
        chain_id: u64,
        delegate: Address,
        nonce: u64,
    ) -> Result<SignedAuthorization, MpcError> {
        let fields = AuthorizationFields {
            chain_id: U256::from(chain_id),
            delegate,
            nonce,
        };
        let sig = self
            .sign_tx(
                account_id,
                path,
                fields.signing_payload(),
                DigestKind::Keccak256,
                PayloadKind::EthereumAuthorization,
                ChainStyle::Typed,
            )
            .await?;
        Ok(signed_authorization(&fields, sig))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wallet_evm::tx::DecodeError;

    #[test]
    fn styles_follow_the_transaction() {
        // The EIP-155 example: a legacy transaction with chain id 1.
        let p = hex::decode("ec098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a764000080018080").unwrap();
        let tx = decode_transaction(&p).unwrap();
        assert_eq!(chain_style(&tx), ChainStyle::Eip155 { chain_id: 1 });
        assert!(matches!(
            UnsignedTx::decode(&[0x05, 0xc0]),
            Err(DecodeError::UnsupportedType(5))
        ));
        assert!(decode_transaction(&[]).is_err());
    }
}
