//! Property tests of the policy's decoders: arbitrary bytes as every payload kind and
//! digest, and one-byte changes of valid transactions (legacy, EIP-2930, EIP-1559, with
//! and without ERC-20 calldata). Nothing panics; whatever is allowed was decoded
//! canonically and obeys every rule (checked here by an independent oracle).
//!
//! Case counts: `PROPTEST_CASES` when set (docs/SECURITY.md), else the numbers below.

use alloy_consensus::{SignableTransaction, TxEip1559, TxEip2930, TxLegacy};
use alloy_primitives::{Address, TxKind, U256};
use alloy_sol_types::SolCall;
use cosigner_api::pb::PayloadKind;
use mpc_core::DigestKind;
use proptest::prelude::*;

use super::config::{
    ConfigAddress, Erc20Policy, Erc20Token, EthereumPolicy, PolicyConfig, TokenAmount,
    WalletPolicy, Wei,
};
use super::{evaluate, Verdict};
use crate::props::config;
use wallet_evm::erc20::IERC20;
use wallet_evm::{decode_erc20, decode_eth_signing_payload};

const WALLET: &str = "w";
const ALLOWED: Address = Address::repeat_byte(0x11);
const TOKEN: Address = Address::repeat_byte(0x70);
const FRIEND: Address = Address::repeat_byte(0xf0);
const MAX_SPEND: u128 = 10_000_000;
const MAX_TOKENS: u64 = 1000;

fn policy() -> PolicyConfig {
    PolicyConfig {
        ethereum: EthereumPolicy {
            allowed_chain_ids: vec![1],
            allowed_destinations: vec![ALLOWED.to_string()],
            allow_contract_creation: Some(false),
            max_value_per_tx_wei: Some(Wei(MAX_SPEND)),
            daily_value_limit_wei: None,
            erc20: Erc20Policy {
                tokens: [(
                    ConfigAddress(TOKEN),
                    Erc20Token {
                        max_amount_per_tx: Some(TokenAmount(U256::from(MAX_TOKENS))),
                    },
                )]
                .into(),
                allowed_recipients: vec![ConfigAddress(FRIEND)],
            },
            typed_data: Default::default(),
            eip7702: Default::default(),
        },
        ..PolicyConfig::default()
    }
}

fn kinds() -> impl Strategy<Value = PayloadKind> {
    prop_oneof![
        Just(PayloadKind::Unspecified),
        Just(PayloadKind::Raw),
        Just(PayloadKind::EthereumTransaction),
        Just(PayloadKind::EthereumMessage),
        Just(PayloadKind::EthereumTypedData),
        Just(PayloadKind::EthereumAuthorization),
    ]
}

fn digests() -> impl Strategy<Value = DigestKind> {
    prop_oneof![
        Just(DigestKind::Keccak256),
        Just(DigestKind::Sha256),
        Just(DigestKind::DoubleSha256),
    ]
}

/// The oracle: an allowed transaction payload decodes canonically and obeys the rules.
fn check_allowed(preimage: &[u8]) -> Result<(), TestCaseError> {
    let tx = decode_eth_signing_payload(preimage)
        .map_err(|e| TestCaseError::fail(format!("allowed but undecodable: {e}")))?;
    prop_assert_eq!(tx.chain_id, Some(1));
    let to = tx
        .to
        .ok_or_else(|| TestCaseError::fail("contract creation allowed"))?;
    match tx.erc20() {
        Some(Ok(call)) => {
            prop_assert_eq!(to, TOKEN);
            prop_assert_eq!(call.counterparty(), FRIEND);
            prop_assert!(call.amount() <= U256::from(MAX_TOKENS));
            prop_assert_eq!(call.abi_encode_check(), tx.input.to_vec());
        }
        Some(Err(e)) => return Err(TestCaseError::fail(format!("bad calldata allowed: {e}"))),
        None => prop_assert_eq!(to, ALLOWED),
    }
    prop_assert!(tx.max_spend() <= U256::from(MAX_SPEND));
    Ok(())
}

/// Re-encodes a decoded ERC-20 call (for the oracle).
trait AbiCheck {
    fn abi_encode_check(&self) -> Vec<u8>;
}

impl AbiCheck for wallet_evm::Erc20Call {
    fn abi_encode_check(&self) -> Vec<u8> {
        use wallet_evm::Erc20Call as C;
        match *self {
            C::Transfer { to, amount } => IERC20::transferCall { to, amount }.abi_encode(),
            C::TransferFrom { from, to, amount } => {
                IERC20::transferFromCall { from, to, amount }.abi_encode()
            }
            C::Approve { spender, amount } => IERC20::approveCall { spender, amount }.abi_encode(),
            C::IncreaseAllowance { spender, amount } => IERC20::increaseAllowanceCall {
                spender,
                addedValue: amount,
            }
            .abi_encode(),
        }
    }
}

/// Calldata: nothing, an ERC-20 call (to a friend or not, within the limit or not),
/// or arbitrary bytes.
fn calldata() -> impl Strategy<Value = Vec<u8>> {
    let who = prop_oneof![Just(FRIEND), any::<[u8; 20]>().prop_map(Address::from)];
    let amount = prop_oneof![0..=2 * MAX_TOKENS, any::<u64>()].prop_map(U256::from);
    prop_oneof![
        Just(Vec::new()),
        (who.clone(), amount.clone())
            .prop_map(|(to, amount)| IERC20::transferCall { to, amount }.abi_encode()),
        (who.clone(), amount.clone())
            .prop_map(|(spender, amount)| { IERC20::approveCall { spender, amount }.abi_encode() }),
        (who, amount).prop_map(|(to, amount)| IERC20::transferFromCall {
            from: FRIEND,
            to,
            amount
        }
        .abi_encode()),
        proptest::collection::vec(any::<u8>(), 0..80),
    ]
}

/// Valid unsigned transactions of the three types, near and past every limit.
fn transaction() -> impl Strategy<Value = Vec<u8>> {
    let to = prop_oneof![
        Just(ALLOWED),
        Just(TOKEN),
        any::<[u8; 20]>().prop_map(Address::from)
    ];
    let chain = prop_oneof![Just(1u64), any::<u64>()];
    let value = prop_oneof![0..=MAX_SPEND, any::<u128>()].prop_map(U256::from);
    (
        0..3u8,
        chain,
        to,
        value,
        0..=1000u64,
        0..=10_000u128,
        calldata(),
        any::<bool>(),
    )
        .prop_map(|(ty, chain_id, to, value, gas_limit, fee, input, eip155)| {
            let kind = TxKind::Call(to);
            match ty {
                0 => TxLegacy {
                    chain_id: eip155.then_some(chain_id),
                    nonce: 1,
                    gas_price: fee,
                    gas_limit,
                    to: kind,
                    value,
                    input: input.into(),
                }
                .encoded_for_signing(),
                1 => TxEip2930 {
                    chain_id,
                    nonce: 1,
                    gas_price: fee,
                    gas_limit,
                    to: kind,
                    value,
                    access_list: Default::default(),
                    input: input.into(),
                }
                .encoded_for_signing(),
                _ => TxEip1559 {
                    chain_id,
                    nonce: 1,
                    gas_limit,
                    max_fee_per_gas: fee,
                    max_priority_fee_per_gas: 0,
                    to: kind,
                    value,
                    access_list: Default::default(),
                    input: input.into(),
                }
                .encoded_for_signing(),
            }
        })
}

proptest! {
    #![proptest_config(config(4096))]

    /// Arbitrary bytes as every payload kind and digest: no panic; a raw payload is
    /// refused for a wallet without `allow_raw`; an allowed transaction obeys the rules.
    #[test]
    fn arbitrary_payloads(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
        kind in kinds(),
        digest in digests(),
    ) {
        let cfg = policy();
        match evaluate(&cfg, WALLET, kind, digest, &bytes) {
            Verdict::Allow { .. } => match kind {
                PayloadKind::Raw | PayloadKind::Unspecified => {
                    return Err(TestCaseError::fail("raw payload allowed by default"))
                }
                PayloadKind::EthereumTransaction => check_allowed(&bytes)?,
                PayloadKind::EthereumMessage => {
                    prop_assert!(wallet_evm::message::decode(&bytes).is_ok());
                }
                // Allowed typed data hashed, and was no permit (no spender is listed).
                PayloadKind::EthereumTypedData => {
                    let t = wallet_evm::TypedDataPayload::parse(&bytes);
                    prop_assert!(t.is_ok_and(|t| t.permit().is_none()));
                }
                // No delegate is listed: no authorization passes.
                PayloadKind::EthereumAuthorization => {
                    return Err(TestCaseError::fail("authorization allowed without delegates"))
                }
                // Arbitrary bytes are never a PSBT of this wallet.
                PayloadKind::BitcoinPsbtInput => {
                    return Err(TestCaseError::fail("arbitrary bytes allowed as a PSBT input"))
                }
            },
            Verdict::Deny { .. } | Verdict::Unsupported(_) => {}
        }
        // With `allow_raw` for this wallet only.
        let mut open = cfg;
        open.wallets.insert(WALLET.into(), WalletPolicy { allow_raw: true });
        if matches!(kind, PayloadKind::Raw | PayloadKind::Unspecified) {
            let allowed = matches!(
                evaluate(&open, WALLET, kind, digest, &bytes),
                Verdict::Allow { .. }
            );
            prop_assert!(allowed);
            let other = matches!(
                evaluate(&open, "other", kind, digest, &bytes),
                Verdict::Allow { .. }
            );
            prop_assert!(!other);
        }
        // The ERC-20 decoder alone: canonical or nothing.
        if let Some(Ok(call)) = decode_erc20(&bytes) {
            prop_assert_eq!(call.abi_encode_check(), bytes);
        }
    }

    /// Valid transactions and one-byte changes of them: no panic; allowed ⇒ canonical
    /// and within every rule.
    #[test]
    fn transactions_and_their_mutations(
        tx in transaction(),
        at in any::<usize>(),
        change in prop_oneof![
            (1..=255u8).prop_map(Some),
            Just(None),
        ],
    ) {
        let cfg = policy();
        let mut variants = vec![tx.clone()];
        let mut m = tx.clone();
        match change {
            Some(x) => m[at % tx.len()] ^= x,
            None => m.truncate(at % tx.len()),
        }
        variants.push(m);
        let mut inserted = tx.clone();
        inserted.insert(at % (tx.len() + 1), (at >> 8) as u8);
        variants.push(inserted);
        let original = decode_eth_signing_payload(&tx);
        prop_assert!(original.is_ok(), "a valid transaction did not decode: {:?}", original);
        for p in variants {
            let v = evaluate(&cfg, WALLET, PayloadKind::EthereumTransaction, DigestKind::Keccak256, &p);
            if let Verdict::Allow { tx, .. } = v {
                check_allowed(&p)?;
                prop_assert!(tx.is_some());
            }
            // Strict decoding: other bytes never read as the same transaction.
            if p != tx {
                if let Ok(decoded) = decode_eth_signing_payload(&p) {
                    prop_assert_ne!(Ok(decoded), original.clone());
                }
            }
        }
    }
}
