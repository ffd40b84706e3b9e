//! The signing policy: decodes what is being signed and applies the configured rules.
//!
//! Ethereum transactions are decoded from their *unsigned signing payload* (what the
//! keccak-256 digest covers): legacy RLP (pre- and post-EIP-155), EIP-2930 (`0x01`) and
//! EIP-1559 (`0x02`), with `alloy-rlp`. Other typed transactions are refused.

use alloy_rlp::Header;
use mpc_core::DigestKind;

use cosigner_api::pb::PayloadKind;

use crate::config::{parse_address, PolicyConfig};

/// Why a payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Empty payload.
    #[error("empty transaction payload")]
    Empty,
    /// Typed transaction of a type we do not decode.
    #[error("unsupported transaction type 0x{0:02x} (only legacy, 0x01 and 0x02)")]
    UnsupportedType(u8),
    /// RLP structure error.
    #[error("malformed RLP: {0}")]
    Rlp(String),
    /// Wrong field count.
    #[error("{kind} transaction must have {want} fields, got {got}")]
    FieldCount {
        /// Transaction kind.
        kind: &'static str,
        /// Expected counts.
        want: &'static str,
        /// Found.
        got: usize,
    },
    /// A field has the wrong shape.
    #[error("field `{0}`: {1}")]
    Field(&'static str, String),
    /// Bytes after the transaction.
    #[error("{0} trailing bytes after the transaction")]
    Trailing(usize),
}

/// The fields of an unsigned Ethereum transaction the policy looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EthTx {
    /// 0 legacy, 1 EIP-2930, 2 EIP-1559.
    pub tx_type: u8,
    /// Chain id (None for pre-EIP-155 legacy transactions).
    pub chain_id: Option<u64>,
    /// Sender nonce.
    pub nonce: u64,
    /// Destination; None for contract creation.
    pub to: Option<[u8; 20]>,
    /// Value in wei (saturated at `u128::MAX`: more than any limit).
    pub value: u128,
    /// Calldata length.
    pub data_len: usize,
}

fn rlp_err(e: alloy_rlp::Error) -> DecodeError {
    DecodeError::Rlp(e.to_string())
}

/// One RLP item, raw: `Ok((is_list, payload))`, advancing `buf`.
fn item<'a>(buf: &mut &'a [u8]) -> Result<(bool, &'a [u8]), DecodeError> {
    let h = Header::decode(buf).map_err(rlp_err)?;
    if buf.len() < h.payload_length {
        return Err(DecodeError::Rlp("item longer than its list".into()));
    }
    let (payload, rest) = buf.split_at(h.payload_length);
    *buf = rest;
    Ok((h.list, payload))
}

fn items(payload: &[u8]) -> Result<Vec<(bool, &[u8])>, DecodeError> {
    let mut buf = payload;
    let mut out = Vec::new();
    while !buf.is_empty() {
        // A single byte < 0x80 is its own payload: Header::decode leaves it in place
        // and `item` takes it.
        out.push(item(&mut buf)?);
    }
    Ok(out)
}

fn uint(name: &'static str, f: (bool, &[u8])) -> Result<u128, DecodeError> {
    let (list, b) = f;
    if list {
        return Err(DecodeError::Field(
            name,
            "expected an integer, got a list".into(),
        ));
    }
    if b.first() == Some(&0) {
        return Err(DecodeError::Field(
            name,
            "non-canonical integer (leading zero)".into(),
        ));
    }
    if b.len() > 32 {
        return Err(DecodeError::Field(
            name,
            "integer longer than 32 bytes".into(),
        ));
    }
    if b.len() > 16 {
        return Ok(u128::MAX);
    }
    Ok(b.iter().fold(0u128, |acc, x| (acc << 8) | u128::from(*x)))
}

fn uint64(name: &'static str, f: (bool, &[u8])) -> Result<u64, DecodeError> {
    u64::try_from(uint(name, f)?)
        .map_err(|_| DecodeError::Field(name, "does not fit 64 bits".into()))
}

fn address(f: (bool, &[u8])) -> Result<Option<[u8; 20]>, DecodeError> {
    match f {
        (false, []) => Ok(None),
        (false, b) if b.len() == 20 => {
            let mut a = [0u8; 20];
            a.copy_from_slice(b);
            Ok(Some(a))
        }
        _ => Err(DecodeError::Field("to", "must be empty or 20 bytes".into())),
    }
}

fn bytes_field(name: &'static str, f: (bool, &[u8])) -> Result<usize, DecodeError> {
    match f {
        (false, b) => Ok(b.len()),
        _ => Err(DecodeError::Field(
            name,
            "expected bytes, got a list".into(),
        )),
    }
}

fn list_field(name: &'static str, f: (bool, &[u8])) -> Result<(), DecodeError> {
    match f {
        (true, _) => Ok(()),
        _ => Err(DecodeError::Field(name, "expected a list".into())),
    }
}

/// Decodes an unsigned transaction signing payload.
pub fn decode_eth_signing_payload(payload: &[u8]) -> Result<EthTx, DecodeError> {
    let first = *payload.first().ok_or(DecodeError::Empty)?;
    let (tx_type, body) = if first >= 0xc0 {
        (0u8, payload)
    } else if first <= 0x7f {
        (first, &payload[1..])
    } else {
        return Err(DecodeError::Rlp(
            "payload is neither an RLP list nor a typed transaction".into(),
        ));
    };
    if tx_type > 2 {
        return Err(DecodeError::UnsupportedType(tx_type));
    }
    let mut buf = body;
    let (list, fields) = item(&mut buf)?;
    if !list {
        return Err(DecodeError::Rlp("transaction is not an RLP list".into()));
    }
    if !buf.is_empty() {
        return Err(DecodeError::Trailing(buf.len()));
    }
    let f = items(fields)?;
    match tx_type {
        0 => {
            if f.len() != 6 && f.len() != 9 {
                return Err(DecodeError::FieldCount {
                    kind: "legacy",
                    want: "6 or 9",
                    got: f.len(),
                });
            }
            let chain_id = if f.len() == 9 {
                if uint("eip155 r", f[7])? != 0 || uint("eip155 s", f[8])? != 0 {
                    return Err(DecodeError::Field(
                        "eip155",
                        "r and s must be empty in a signing payload".into(),
                    ));
                }
                Some(uint64("chain_id", f[6])?)
            } else {
                None
            };
            uint("gas_price", f[1])?;
            uint("gas_limit", f[2])?;
            Ok(EthTx {
                tx_type,
                chain_id,
                nonce: uint64("nonce", f[0])?,
                to: address(f[3])?,
                value: uint("value", f[4])?,
                data_len: bytes_field("data", f[5])?,
            })
        }
        1 => {
            if f.len() != 8 {
                return Err(DecodeError::FieldCount {
                    kind: "EIP-2930",
                    want: "8",
                    got: f.len(),
                });
            }
            uint("gas_price", f[2])?;
            uint("gas_limit", f[3])?;
            list_field("access_list", f[7])?;
            Ok(EthTx {
                tx_type,
                chain_id: Some(uint64("chain_id", f[0])?),
                nonce: uint64("nonce", f[1])?,
                to: address(f[4])?,
                value: uint("value", f[5])?,
                data_len: bytes_field("data", f[6])?,
            })
        }
        _ => {
            if f.len() != 9 {
                return Err(DecodeError::FieldCount {
                    kind: "EIP-1559",
                    want: "9",
                    got: f.len(),
                });
            }
            uint("max_priority_fee_per_gas", f[2])?;
            uint("max_fee_per_gas", f[3])?;
            uint("gas_limit", f[4])?;
            list_field("access_list", f[8])?;
            Ok(EthTx {
                tx_type,
                chain_id: Some(uint64("chain_id", f[0])?),
                nonce: uint64("nonce", f[1])?,
                to: address(f[5])?,
                value: uint("value", f[6])?,
                data_len: bytes_field("data", f[7])?,
            })
        }
    }
}

/// The policy's verdict before any stateful check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed; `daily` is `Some((amount, limit))` when the daily value limit applies
    /// (the caller checks and records it atomically in the store).
    Allow {
        /// Decoded transaction, if any (for the audit log).
        tx: Option<EthTx>,
        /// Amount to add to today's total, and the limit.
        daily: Option<(u128, u128)>,
    },
    /// Refused by `rule`.
    Deny {
        /// Rule name (as in the config).
        rule: &'static str,
        /// Human explanation.
        reason: String,
    },
}

fn deny(rule: &'static str, reason: impl Into<String>) -> Verdict {
    Verdict::Deny {
        rule,
        reason: reason.into(),
    }
}

/// Applies the configured rules to one sign request.
pub fn evaluate(
    cfg: &PolicyConfig,
    kind: PayloadKind,
    digest: DigestKind,
    preimage: &[u8],
) -> Verdict {
    match kind {
        PayloadKind::Raw | PayloadKind::Unspecified => {
            if !cfg.allow_raw_payloads {
                return deny(
                    "allow_raw_payloads",
                    "raw payloads are not co-signed by this cosigner",
                );
            }
            if digest == DigestKind::Keccak256 && !cfg.raw_keccak256_allowed {
                return deny(
                    "raw_keccak256_allowed",
                    "raw keccak-256 payloads are refused (use PAYLOAD_KIND_ETHEREUM_TRANSACTION or _MESSAGE)",
                );
            }
            Verdict::Allow {
                tx: None,
                daily: None,
            }
        }
        PayloadKind::EthereumMessage => {
            if digest != DigestKind::Keccak256 {
                return deny(
                    "payload_kind",
                    "Ethereum messages are signed with keccak-256",
                );
            }
            if !preimage.starts_with(b"\x19Ethereum Signed Message:\n") {
                return deny("payload_kind", "not an EIP-191 personal message preimage");
            }
            Verdict::Allow {
                tx: None,
                daily: None,
            }
        }
        PayloadKind::EthereumTransaction => {
            if digest != DigestKind::Keccak256 {
                return deny(
                    "payload_kind",
                    "Ethereum transactions are signed with keccak-256",
                );
            }
            let tx = match decode_eth_signing_payload(preimage) {
                Ok(tx) => tx,
                Err(e) => {
                    return deny(
                        "ethereum_transaction",
                        format!("cannot decode the transaction: {e}"),
                    )
                }
            };
            let eth = &cfg.ethereum;
            match tx.to {
                None if !eth.contract_creation_allowed() => {
                    return deny(
                        "allow_contract_creation",
                        "contract creation is not allowed",
                    );
                }
                Some(to) if !eth.allowed_destinations.is_empty() => {
                    let ok = eth
                        .allowed_destinations
                        .iter()
                        .filter_map(|a| parse_address(a).ok())
                        .any(|a| a == to);
                    if !ok {
                        return deny(
                            "allowed_destinations",
                            format!(
                                "destination 0x{} is not in allowed_destinations",
                                hex::encode(to)
                            ),
                        );
                    }
                }
                _ => {}
            }
            if let Some(max) = eth.max_value_per_tx_wei {
                if tx.value > max.0 {
                    return deny(
                        "max_value_per_tx_wei",
                        format!(
                            "value {} wei exceeds the per-transaction limit {} wei",
                            tx.value, max.0
                        ),
                    );
                }
            }
            let daily = eth.daily_value_limit_wei.map(|l| (tx.value, l.0));
            Verdict::Allow {
                tx: Some(tx),
                daily,
            }
        }
    }
}

/// Days since the Unix epoch (UTC) of `now_ms`.
pub fn utc_day(now_ms: u64) -> u64 {
    now_ms / 86_400_000
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{EthereumPolicy, Wei};
    use alloy_rlp::Encodable;

    /// The EIP-155 example transaction's signing payload (from the EIP text).
    const EIP155: &str = "ec098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a764000080018080";

    fn enc_list(fields: &[&dyn Encodable]) -> Vec<u8> {
        let mut payload = Vec::new();
        for f in fields {
            f.encode(&mut payload);
        }
        let mut out = Vec::new();
        Header {
            list: true,
            payload_length: payload.len(),
        }
        .encode(&mut out);
        out.extend_from_slice(&payload);
        out
    }

    fn addr(b: u8) -> [u8; 20] {
        [b; 20]
    }

    fn eip1559(to: Option<[u8; 20]>, value: u128) -> Vec<u8> {
        let to_bytes: Vec<u8> = to.map(|a| a.to_vec()).unwrap_or_default();
        let to_b = alloy_rlp::Bytes::from(to_bytes);
        let data = alloy_rlp::Bytes::from(vec![0xa9, 0x05, 0x9c, 0xbb]);
        let access: Vec<alloy_rlp::Bytes> = vec![];
        let mut out = vec![2u8];
        out.extend(enc_list(&[
            &1u64,
            &7u64,
            &1_000_000_000u64,
            &30_000_000_000u64,
            &21_000u64,
            &to_b,
            &value,
            &data,
            &access,
        ]));
        out
    }

    fn eip2930(to: [u8; 20], value: u128) -> Vec<u8> {
        let to_b = alloy_rlp::Bytes::from(to.to_vec());
        let data = alloy_rlp::Bytes::new();
        let access: Vec<alloy_rlp::Bytes> = vec![];
        let mut out = vec![1u8];
        out.extend(enc_list(&[
            &5u64,
            &0u64,
            &20_000_000_000u64,
            &21_000u64,
            &to_b,
            &value,
            &data,
            &access,
        ]));
        out
    }

    #[test]
    fn decodes_eip155_vector() {
        let p = hex::decode(EIP155).unwrap();
        let tx = decode_eth_signing_payload(&p).unwrap();
        assert_eq!(tx.tx_type, 0);
        assert_eq!(tx.chain_id, Some(1));
        assert_eq!(tx.nonce, 9);
        assert_eq!(tx.to, Some(addr(0x35)));
        assert_eq!(tx.value, 1_000_000_000_000_000_000);
        assert_eq!(tx.data_len, 0);
        // The digest signed is the EIP's signing hash.
        assert_eq!(
            hex::encode(DigestKind::Keccak256.digest(&p)),
            "daf5a779ae972f972197303d7b574746c7ef83eadac0f2791ad23db92e4c8e53"
        );
    }

    #[test]
    fn decodes_pre155_and_typed() {
        let to_b = alloy_rlp::Bytes::from(addr(1).to_vec());
        let legacy = enc_list(&[
            &0u64,
            &1u64,
            &21_000u64,
            &to_b,
            &5u128,
            &alloy_rlp::Bytes::new(),
        ]);
        let tx = decode_eth_signing_payload(&legacy).unwrap();
        assert_eq!((tx.chain_id, tx.value, tx.to), (None, 5, Some(addr(1))));

        let tx = decode_eth_signing_payload(&eip2930(addr(2), 77)).unwrap();
        assert_eq!(
            (tx.tx_type, tx.chain_id, tx.value, tx.to),
            (1, Some(5), 77, Some(addr(2)))
        );

        let tx = decode_eth_signing_payload(&eip1559(Some(addr(3)), 10u128.pow(20))).unwrap();
        assert_eq!(tx.tx_type, 2);
        assert_eq!(tx.chain_id, Some(1));
        assert_eq!(tx.nonce, 7);
        assert_eq!(tx.to, Some(addr(3)));
        assert_eq!(tx.value, 10u128.pow(20));
        assert_eq!(tx.data_len, 4);

        let tx = decode_eth_signing_payload(&eip1559(None, 0)).unwrap();
        assert_eq!(tx.to, None);
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(decode_eth_signing_payload(&[]), Err(DecodeError::Empty));
        assert_eq!(
            decode_eth_signing_payload(&[3, 0xc0]),
            Err(DecodeError::UnsupportedType(3))
        );
        assert_eq!(
            decode_eth_signing_payload(&[4, 0xc0]),
            Err(DecodeError::UnsupportedType(4))
        );
        let mut p = hex::decode(EIP155).unwrap();
        p.push(0);
        assert_eq!(
            decode_eth_signing_payload(&p),
            Err(DecodeError::Trailing(1))
        );
        let p = hex::decode(EIP155).unwrap();
        assert!(decode_eth_signing_payload(&p[..p.len() - 3]).is_err());
        assert!(matches!(
            decode_eth_signing_payload(&[0xc0]),
            Err(DecodeError::FieldCount { .. })
        ));
        assert!(decode_eth_signing_payload(&[0x85, 1, 2, 3, 4, 5]).is_err());
        // Bad `to` length.
        let short = alloy_rlp::Bytes::from(vec![1u8; 19]);
        let legacy = enc_list(&[
            &0u64,
            &1u64,
            &21_000u64,
            &short,
            &5u128,
            &alloy_rlp::Bytes::new(),
        ]);
        assert!(matches!(
            decode_eth_signing_payload(&legacy),
            Err(DecodeError::Field("to", _))
        ));
        // Random garbage never panics.
        for n in 0..400u32 {
            let bytes: Vec<u8> = (0..(n % 40))
                .map(|i| (i.wrapping_mul(n).wrapping_add(n * 7) % 256) as u8)
                .collect();
            let _ = decode_eth_signing_payload(&bytes);
        }
    }

    fn cfg(eth: EthereumPolicy) -> PolicyConfig {
        PolicyConfig {
            ethereum: eth,
            ..PolicyConfig::default()
        }
    }

    fn rule(v: Verdict) -> &'static str {
        match v {
            Verdict::Deny { rule, .. } => rule,
            Verdict::Allow { .. } => "allowed",
        }
    }

    #[test]
    fn rules() {
        let tx = PayloadKind::EthereumTransaction;
        let k = DigestKind::Keccak256;
        // No rules: allowed.
        assert_eq!(
            rule(evaluate(
                &cfg(EthereumPolicy::default()),
                tx,
                k,
                &eip1559(Some(addr(3)), 5)
            )),
            "allowed"
        );
        // Destinations.
        let c = cfg(EthereumPolicy {
            allowed_destinations: vec![format!("0x{}", hex::encode(addr(3)).to_uppercase())],
            ..Default::default()
        });
        assert_eq!(
            rule(evaluate(&c, tx, k, &eip1559(Some(addr(3)), 5))),
            "allowed"
        );
        assert_eq!(
            rule(evaluate(&c, tx, k, &eip1559(Some(addr(4)), 5))),
            "allowed_destinations"
        );
        assert_eq!(
            rule(evaluate(&c, tx, k, &eip1559(None, 5))),
            "allow_contract_creation"
        );
        // Per-tx limit.
        let c = cfg(EthereumPolicy {
            max_value_per_tx_wei: Some(Wei(100)),
            ..Default::default()
        });
        assert_eq!(rule(evaluate(&c, tx, k, &eip2930(addr(1), 100))), "allowed");
        assert_eq!(
            rule(evaluate(&c, tx, k, &eip2930(addr(1), 101))),
            "max_value_per_tx_wei"
        );
        // Daily limit is handed to the store.
        let c = cfg(EthereumPolicy {
            daily_value_limit_wei: Some(Wei(1000)),
            ..Default::default()
        });
        match evaluate(&c, tx, k, &eip2930(addr(1), 100)) {
            Verdict::Allow { daily, .. } => assert_eq!(daily, Some((100, 1000))),
            v => panic!("{v:?}"),
        }
        // Undecodable and wrong digest.
        assert_eq!(
            rule(evaluate(&c, tx, k, b"not a tx")),
            "ethereum_transaction"
        );
        assert_eq!(
            rule(evaluate(&c, tx, DigestKind::Sha256, &eip2930(addr(1), 1))),
            "payload_kind"
        );
        // Raw payloads.
        let mut c = PolicyConfig::default();
        assert_eq!(rule(evaluate(&c, PayloadKind::Raw, k, b"x")), "allowed");
        c.raw_keccak256_allowed = false;
        assert_eq!(
            rule(evaluate(&c, PayloadKind::Raw, k, b"x")),
            "raw_keccak256_allowed"
        );
        assert_eq!(
            rule(evaluate(
                &c,
                PayloadKind::Raw,
                DigestKind::DoubleSha256,
                b"x"
            )),
            "allowed"
        );
        c.allow_raw_payloads = false;
        assert_eq!(
            rule(evaluate(
                &c,
                PayloadKind::Raw,
                DigestKind::DoubleSha256,
                b"x"
            )),
            "allow_raw_payloads"
        );
        // Messages.
        let msg = mpc_core::digest::eip191_preimage(b"hi");
        assert_eq!(
            rule(evaluate(&c, PayloadKind::EthereumMessage, k, &msg)),
            "allowed"
        );
        assert_eq!(
            rule(evaluate(&c, PayloadKind::EthereumMessage, k, b"hi")),
            "payload_kind"
        );
    }
}
