//! The rules, one by one (the process-level attacks are in `tests/policy.rs`).

use super::config::{
    ConfigAddress, Erc20Policy, Erc20Token, EthereumPolicy, TokenAmount, WalletPolicy, Wei,
};
use super::*;
use alloy_consensus::{SignableTransaction, TxEip1559, TxEip2930, TxLegacy};
use alloy_primitives::TxKind;
use alloy_sol_types::SolCall;
use wallet_evm::erc20::IERC20;

const W: &str = "wallet-1";

fn addr(b: u8) -> Address {
    Address::repeat_byte(b)
}

pub(crate) fn eip1559(chain: u64, to: Option<Address>, value: U256, input: Vec<u8>) -> Vec<u8> {
    TxEip1559 {
        chain_id: chain,
        nonce: 7,
        gas_limit: 21_000,
        max_fee_per_gas: 30_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to: to.map_or(TxKind::Create, TxKind::Call),
        value,
        access_list: Default::default(),
        input: input.into(),
    }
    .encoded_for_signing()
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
    // An unknown type is invalid input; a malformed blob / 7702 transaction is refused.
    assert_eq!(eth(&c, &[5, 0xc0]), "unsupported");
    assert_eq!(eth(&c, &[3, 0xc0]), rule::ETHEREUM_TRANSACTION);
    assert_eq!(eth(&c, &[4, 0xc0]), rule::ETHEREUM_TRANSACTION);
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

/// An EIP-2612 permit on token `addr(0x70)` for `spender`, `value` units, on `chain`.
fn permit_json(chain: Option<u64>, spender: Address, value: u64) -> Vec<u8> {
    let mut domain = serde_json::json!({
        "name": "Token", "version": "1",
        "verifyingContract": hex_addr(&addr(0x70)),
    });
    let mut domain_type = vec![
        serde_json::json!({"name": "name", "type": "string"}),
        serde_json::json!({"name": "version", "type": "string"}),
    ];
    if let Some(c) = chain {
        domain["chainId"] = c.into();
        domain_type.push(serde_json::json!({"name": "chainId", "type": "uint256"}));
    }
    domain_type.push(serde_json::json!({"name": "verifyingContract", "type": "address"}));
    serde_json::json!({
        "types": {
            "EIP712Domain": domain_type,
            "Permit": [
                {"name": "owner", "type": "address"}, {"name": "spender", "type": "address"},
                {"name": "value", "type": "uint256"}, {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"}
            ]
        },
        "primaryType": "Permit",
        "domain": domain,
        "message": {
            "owner": hex_addr(&addr(1)), "spender": hex_addr(&spender),
            "value": value.to_string(), "nonce": 0, "deadline": "18446744073709551615"
        }
    })
    .to_string()
    .into_bytes()
}

fn typed(c: &PolicyConfig, json: &[u8]) -> &'static str {
    rule_of(evaluate(
        c,
        W,
        PayloadKind::EthereumTypedData,
        DigestKind::Keccak256,
        json,
    ))
}

fn token_policy() -> EthereumPolicy {
    EthereumPolicy {
        allowed_chain_ids: vec![1, 31337],
        erc20: Erc20Policy {
            tokens: [(
                ConfigAddress(addr(0x70)),
                Erc20Token {
                    max_amount_per_tx: Some(TokenAmount(U256::from(1000))),
                },
            )]
            .into(),
            allowed_recipients: vec![],
        },
        typed_data: config::TypedDataPolicy {
            allowed_verifying_contracts: vec![],
            permit_spenders: vec![ConfigAddress(addr(0x5b))],
        },
        ..EthereumPolicy::default()
    }
}

#[test]
fn permits_are_approvals() {
    let c = cfg(token_policy());
    assert_eq!(
        typed(&c, &permit_json(Some(31337), addr(0x5b), 1000)),
        "allowed"
    );
    // The spender is not listed.
    assert_eq!(
        typed(&c, &permit_json(Some(31337), addr(0x66), 1)),
        rule::PERMIT_SPENDERS
    );
    // Over the token's per-transaction amount.
    assert_eq!(
        typed(&c, &permit_json(Some(31337), addr(0x5b), 1001)),
        rule::ERC20_MAX_AMOUNT
    );
    // Another chain; no chain at all.
    assert_eq!(
        typed(&c, &permit_json(Some(5), addr(0x5b), 1)),
        rule::ALLOWED_CHAIN_IDS
    );
    assert_eq!(
        typed(&c, &permit_json(None, addr(0x5b), 1)),
        rule::EIP712_CHAIN_ID
    );
    // A token that is not listed.
    let mut other = token_policy();
    other.erc20.tokens.clear();
    assert_eq!(
        typed(&cfg(other), &permit_json(Some(1), addr(0x5b), 1)),
        rule::ERC20_TOKENS
    );
    // By default no permit passes.
    assert_eq!(
        typed(
            &cfg(EthereumPolicy::default()),
            &permit_json(Some(1), addr(0x5b), 1)
        ),
        rule::PERMIT_SPENDERS
    );
}

#[test]
fn typed_data_domain_rules_and_bad_json() {
    let mail = serde_json::json!({
        "types": {"Mail": [{"name": "contents", "type": "string"}]},
        "primaryType": "Mail",
        "domain": {"name": "Mail", "chainId": 1, "verifyingContract": hex_addr(&addr(0xcc))},
        "message": {"contents": "hi"}
    })
    .to_string()
    .into_bytes();
    assert_eq!(typed(&cfg(EthereumPolicy::default()), &mail), "allowed");
    let mut listed = EthereumPolicy::default();
    listed.typed_data.allowed_verifying_contracts = vec![ConfigAddress(addr(0xdd))];
    assert_eq!(
        typed(&cfg(listed.clone()), &mail),
        rule::EIP712_VERIFYING_CONTRACTS
    );
    listed
        .typed_data
        .allowed_verifying_contracts
        .push(ConfigAddress(addr(0xcc)));
    assert_eq!(typed(&cfg(listed), &mail), "allowed");
    let chains = EthereumPolicy {
        allowed_chain_ids: vec![5],
        ..EthereumPolicy::default()
    };
    assert_eq!(typed(&cfg(chains), &mail), rule::ALLOWED_CHAIN_IDS);
    // Malformed: not JSON, a message that does not fit its types, a wrong digest.
    let c = cfg(EthereumPolicy::default());
    assert_eq!(typed(&c, b"{not json"), rule::EIP712_TYPED_DATA);
    let bad = String::from_utf8(mail.clone())
        .unwrap()
        .replace("\"hi\"", "7");
    assert_eq!(typed(&c, bad.as_bytes()), rule::EIP712_TYPED_DATA);
    assert_eq!(
        rule_of(evaluate(
            &c,
            W,
            PayloadKind::EthereumTypedData,
            DigestKind::Sha256,
            &mail
        )),
        rule::PAYLOAD_KIND
    );
    // The cosigner signs the derived preimage, never the JSON.
    let pre = signing_preimage(PayloadKind::EthereumTypedData, &mail, None).unwrap();
    assert_eq!(pre.len(), 66);
    assert!(signing_preimage(PayloadKind::EthereumTypedData, b"[]", None).is_err());
}

#[test]
fn authorizations_need_a_listed_delegate_and_a_chain() {
    let auth = |chain: u64, delegate: Address| {
        wallet_evm::AuthorizationFields {
            chain_id: U256::from(chain),
            delegate,
            nonce: 0,
        }
        .signing_payload()
    };
    let run = |c: &PolicyConfig, p: &[u8]| {
        rule_of(evaluate(
            c,
            W,
            PayloadKind::EthereumAuthorization,
            DigestKind::Keccak256,
            p,
        ))
    };
    let none = cfg(EthereumPolicy::default());
    assert_eq!(run(&none, &auth(1, addr(0xd1))), rule::EIP7702_DELEGATES);
    let mut p = EthereumPolicy {
        allowed_chain_ids: vec![31337],
        ..EthereumPolicy::default()
    };
    p.eip7702.allowed_delegates = vec![ConfigAddress(addr(0xd1))];
    let c = cfg(p.clone());
    assert_eq!(run(&c, &auth(31337, addr(0xd1))), "allowed");
    assert_eq!(run(&c, &auth(31337, addr(0xd2))), rule::EIP7702_DELEGATES);
    assert_eq!(run(&c, &auth(1, addr(0xd1))), rule::ALLOWED_CHAIN_IDS);
    assert_eq!(run(&c, &auth(0, addr(0xd1))), rule::EIP7702_ANY_CHAIN);
    p.eip7702.allow_any_chain = true;
    assert_eq!(run(&cfg(p), &auth(0, addr(0xd1))), "allowed");
    assert_eq!(run(&c, &[0x05, 0xc0]), rule::EIP7702_AUTHORIZATION);
    assert_eq!(run(&c, &[0x04]), rule::EIP7702_AUTHORIZATION);
}

#[test]
fn blob_and_7702_transactions_follow_the_transaction_rules() {
    use alloy_consensus::{TxEip4844, TxEip7702};
    let mut p = EthereumPolicy {
        allowed_chain_ids: vec![1],
        max_value_per_tx_wei: Some(Wei(1_000_000)),
        ..EthereumPolicy::default()
    };
    let blob = TxEip4844 {
        chain_id: 1,
        nonce: 0,
        gas_limit: 1,
        max_fee_per_gas: 1,
        max_priority_fee_per_gas: 1,
        to: addr(4),
        value: U256::ZERO,
        access_list: Default::default(),
        blob_versioned_hashes: vec![Default::default()],
        max_fee_per_blob_gas: 10,
        input: Default::default(),
    }
    .encoded_for_signing();
    // 1 blob × 131,072 × 10 wei > 1,000,000: the blob fee counts.
    assert_eq!(eth(&cfg(p.clone()), &blob), rule::MAX_VALUE_PER_TX_WEI);
    p.max_value_per_tx_wei = Some(Wei(2_000_000));
    assert_eq!(eth(&cfg(p.clone()), &blob), "allowed");
    let t7702 = TxEip7702 {
        chain_id: 2,
        nonce: 0,
        gas_limit: 1,
        max_fee_per_gas: 1,
        max_priority_fee_per_gas: 1,
        to: addr(4),
        value: U256::ZERO,
        access_list: Default::default(),
        authorization_list: vec![],
        input: Default::default(),
    }
    .encoded_for_signing();
    assert_eq!(eth(&cfg(p), &t7702), rule::ALLOWED_CHAIN_IDS);
}
