//! The rules, one by one (the process-level attacks are in `tests/policy.rs`).

use super::config::{
    ConfigAddress, Erc20Policy, Erc20Token, EthereumPolicy, TokenAmount, WalletPolicy, Wei,
};
use super::eth::tests::eip1559;
use super::eth::IERC20;
use super::*;
use alloy_consensus::{SignableTransaction, TxEip2930, TxLegacy};
use alloy_primitives::TxKind;
use alloy_sol_types::SolCall;

const W: &str = "wallet-1";

fn addr(b: u8) -> Address {
    Address::repeat_byte(b)
}

fn eip2930(to: Address, value: u64) -> Vec<u8> {
    TxEip2930 {
        chain_id: 5,
        nonce: 0,
        gas_price: 1,
        gas_limit: 10,
        to: TxKind::Call(to),
        value: U256::from(value),
        access_list: Default::default(),
        input: Default::default(),
    }
    .encoded_for_signing()
}

fn cfg(eth: EthereumPolicy) -> PolicyConfig {
    PolicyConfig {
        ethereum: eth,
        ..PolicyConfig::default()
    }
}

fn rule_of(v: Verdict) -> &'static str {
    match v {
        Verdict::Deny { rule, .. } => rule,
        Verdict::Allow { .. } => "allowed",
        Verdict::Unsupported(_) => "unsupported",
    }
}

fn eth(c: &PolicyConfig, p: &[u8]) -> &'static str {
    rule_of(evaluate(
        c,
        W,
        PayloadKind::EthereumTransaction,
        DigestKind::Keccak256,
        p,
    ))
}

#[test]
fn destinations_creation_and_value_with_fee() {
    let none = Vec::new();
    assert_eq!(
        eth(
            &cfg(EthereumPolicy::default()),
            &eip1559(1, Some(addr(3)), U256::from(5), none.clone())
        ),
        "allowed"
    );
    let c = cfg(EthereumPolicy {
        allowed_destinations: vec![format!("0x{}", hex::encode(addr(3)).to_uppercase())],
        ..Default::default()
    });
    assert_eq!(
        eth(&c, &eip1559(1, Some(addr(3)), U256::from(5), none.clone())),
        "allowed"
    );
    assert_eq!(
        eth(&c, &eip1559(1, Some(addr(4)), U256::from(5), none.clone())),
        rule::ALLOWED_DESTINATIONS
    );
    assert_eq!(
        eth(&c, &eip1559(1, None, U256::from(5), none.clone())),
        rule::ALLOW_CONTRACT_CREATION
    );
    // Value + fee (2930: gas_limit 10 × gas_price 1 = 10 wei).
    let c = cfg(EthereumPolicy {
        max_value_per_tx_wei: Some(Wei(100)),
        ..Default::default()
    });
    assert_eq!(eth(&c, &eip2930(addr(1), 90)), "allowed");
    assert_eq!(eth(&c, &eip2930(addr(1), 91)), rule::MAX_VALUE_PER_TX_WEI);
    // The daily amount handed to the store is value + fee.
    let c = cfg(EthereumPolicy {
        daily_value_limit_wei: Some(Wei(1000)),
        ..Default::default()
    });
    match evaluate(
        &c,
        W,
        PayloadKind::EthereumTransaction,
        DigestKind::Keccak256,
        &eip2930(addr(1), 100),
    ) {
        Verdict::Allow { daily, .. } => assert_eq!(daily, Some((110, 1000))),
        v => panic!("{v:?}"),
    }
    // An EIP-1559 type byte followed by no transaction.
    assert_eq!(eth(&c, &[2, 0x01, 0x02]), rule::ETHEREUM_TRANSACTION);
    // Text reads as an unknown transaction type (its first byte is below 0x80).
    assert_eq!(eth(&c, b"not a tx"), "unsupported");
    assert_eq!(
        rule_of(evaluate(
            &c,
            W,
            PayloadKind::EthereumTransaction,
            DigestKind::Sha256,
            &eip2930(addr(1), 1)
        )),
        rule::PAYLOAD_KIND
    );
    // EIP-4844 / EIP-7702: invalid input, not a policy refusal.
    assert_eq!(eth(&c, &[3, 0xc0]), "unsupported");
    assert_eq!(eth(&c, &[4, 0xc0]), "unsupported");
}

#[test]
fn chain_ids_and_eip155() {
    let c = cfg(EthereumPolicy {
        allowed_chain_ids: vec![1],
        ..Default::default()
    });
    assert_eq!(
        eth(&c, &eip1559(1, Some(addr(3)), U256::ZERO, vec![])),
        "allowed"
    );
    assert_eq!(
        eth(&c, &eip1559(10, Some(addr(3)), U256::ZERO, vec![])),
        rule::ALLOWED_CHAIN_IDS
    );
    let pre155 = TxLegacy {
        chain_id: None,
        nonce: 0,
        gas_price: 1,
        gas_limit: 21_000,
        to: TxKind::Call(addr(3)),
        value: U256::ZERO,
        input: Default::default(),
    };
    // Refused even with no chain list at all.
    assert_eq!(
        eth(
            &cfg(EthereumPolicy::default()),
            &pre155.encoded_for_signing()
        ),
        rule::EIP155_REQUIRED
    );
    let eip155 = TxLegacy {
        chain_id: Some(1),
        ..pre155
    };
    assert_eq!(eth(&c, &eip155.encoded_for_signing()), "allowed");
}

#[test]
fn erc20_rules() {
    let token = addr(0x70);
    let other_token = addr(0x71);
    let friend = addr(0xf0);
    let stranger = addr(0x5e);
    let c = cfg(EthereumPolicy {
        allowed_destinations: vec![format!("{}", addr(0xd0))],
        erc20: Erc20Policy {
            tokens: [(
                ConfigAddress(token),
                Erc20Token {
                    max_amount_per_tx: Some(TokenAmount(U256::from(1000))),
                },
            )]
            .into(),
            allowed_recipients: vec![ConfigAddress(friend)],
        },
        ..Default::default()
    });
    let call = |tok: Address, data: Vec<u8>| eip1559(1, Some(tok), U256::ZERO, data);
    let transfer = |to, amount: u64| {
        IERC20::transferCall {
            to,
            amount: U256::from(amount),
        }
        .abi_encode()
    };
    // A listed token (not in allowed_destinations: the token list is its own).
    assert_eq!(eth(&c, &call(token, transfer(friend, 1000))), "allowed");
    assert_eq!(
        eth(&c, &call(token, transfer(stranger, 1))),
        rule::ERC20_RECIPIENTS
    );
    assert_eq!(
        eth(&c, &call(token, transfer(friend, 1001))),
        rule::ERC20_MAX_AMOUNT
    );
    assert_eq!(
        eth(&c, &call(other_token, transfer(friend, 1))),
        rule::ERC20_TOKENS
    );
    let approve = IERC20::approveCall {
        spender: stranger,
        amount: U256::from(1),
    }
    .abi_encode();
    assert_eq!(eth(&c, &call(token, approve)), rule::ERC20_RECIPIENTS);
    let unlimited = IERC20::increaseAllowanceCall {
        spender: friend,
        addedValue: U256::MAX,
    }
    .abi_encode();
    assert_eq!(eth(&c, &call(token, unlimited)), rule::ERC20_MAX_AMOUNT);
    let from = IERC20::transferFromCall {
        from: stranger,
        to: friend,
        amount: U256::from(5),
    }
    .abi_encode();
    assert_eq!(eth(&c, &call(token, from)), "allowed");
    let mut bad = transfer(friend, 1);
    bad.push(0);
    assert_eq!(eth(&c, &call(token, bad)), rule::ERC20_CALLDATA);
    // Default deny: no token listed, no ERC-20 call, even with no other rule.
    assert_eq!(
        eth(
            &cfg(EthereumPolicy::default()),
            &call(token, transfer(friend, 1))
        ),
        rule::ERC20_TOKENS
    );
}

#[test]
fn raw_payloads_are_per_wallet() {
    let k = DigestKind::Keccak256;
    let mut c = PolicyConfig::default();
    for d in [k, DigestKind::DoubleSha256, DigestKind::Sha256] {
        assert_eq!(
            rule_of(evaluate(&c, W, PayloadKind::Raw, d, b"x")),
            rule::ALLOW_RAW
        );
        assert_eq!(
            rule_of(evaluate(&c, W, PayloadKind::Unspecified, d, b"x")),
            rule::ALLOW_RAW
        );
    }
    c.wallets.insert(W.into(), WalletPolicy { allow_raw: true });
    assert_eq!(
        rule_of(evaluate(&c, W, PayloadKind::Raw, k, b"x")),
        "allowed"
    );
    assert_eq!(
        rule_of(evaluate(&c, "wallet-2", PayloadKind::Raw, k, b"x")),
        rule::ALLOW_RAW
    );
    assert_eq!(c.raw_wallets(), vec![W]);
    // "*" only in dev mode.
    let mut any = PolicyConfig::default();
    any.wallets
        .insert(config::ANY_WALLET.into(), WalletPolicy { allow_raw: true });
    assert!(any.check(false).is_err());
    any.check(true).unwrap();
    assert!(any.raw_allowed("whatever"));
    // The removed switches: `true` refused naming the new key, `false` tolerated.
    let mut old = PolicyConfig {
        allow_raw_payloads: Some(true),
        ..Default::default()
    };
    let (key, why) = old.check(false).unwrap_err();
    assert_eq!(key, "policy.allow_raw_payloads");
    assert!(why.contains("allow_raw"), "{why}");
    old.allow_raw_payloads = Some(false);
    old.check(false).unwrap();
    assert_eq!(old.warnings().len(), 1);
    // Messages.
    let msg = mpc_core::digest::eip191_preimage(b"hi");
    assert_eq!(
        rule_of(evaluate(&c, W, PayloadKind::EthereumMessage, k, &msg)),
        "allowed"
    );
    assert_eq!(
        rule_of(evaluate(&c, W, PayloadKind::EthereumMessage, k, b"hi")),
        rule::PAYLOAD_KIND
    );
}
