use super::*;
use alloy_primitives::{address, keccak256, B256};
use alloy_sol_types::{eip712_domain, sol, SolStruct};
use serde_json::json;

/// The example of the EIP-712 text (`Mail`), with its published signing hash.
fn mail() -> serde_json::Value {
    json!({
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"}
            ],
            "Person": [{"name": "name", "type": "string"}, {"name": "wallet", "type": "address"}],
            "Mail": [
                {"name": "from", "type": "Person"},
                {"name": "to", "type": "Person"},
                {"name": "contents", "type": "string"}
            ]
        },
        "primaryType": "Mail",
        "domain": {
            "name": "Ether Mail",
            "version": "1",
            "chainId": 1,
            "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"
        },
        "message": {
            "from": {"name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},
            "to": {"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},
            "contents": "Hello, Bob!"
        }
    })
}

fn parse(v: &serde_json::Value) -> Result<TypedDataPayload, TypedDataError> {
    TypedDataPayload::parse(v.to_string().as_bytes())
}

#[test]
fn the_eip712_example_hashes_to_its_published_value() {
    let t = parse(&mail()).unwrap();
    let p = t.preimage();
    assert_eq!(&p[..2], &[0x19, 0x01]);
    assert_eq!(
        keccak256(p),
        "0xbe609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2"
            .parse::<B256>()
            .unwrap()
    );
    assert_eq!(t.chain_id(), Some(U256::from(1)));
    assert_eq!(
        t.verifying_contract(),
        Some(address!("CcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"))
    );
    assert!(t.permit().is_none());
}

sol! {
    #[derive(serde::Serialize)]
    struct Permit {
        address owner;
        address spender;
        uint256 value;
        uint256 nonce;
        uint256 deadline;
    }
}

#[test]
fn an_eip2612_permit_agrees_with_the_static_encoder_and_is_read() {
    let token = address!("00000000000000000000000000000000000000aa");
    let spender = address!("00000000000000000000000000000000000000bb");
    let permit = Permit {
        owner: Address::repeat_byte(1),
        spender,
        value: U256::from(1_000_000u64),
        nonce: U256::ZERO,
        deadline: U256::from(u64::MAX),
    };
    let domain = eip712_domain! {
        name: "Token",
        version: "1",
        chain_id: 31337,
        verifying_contract: token,
    };
    let json = serde_json::to_value(TypedData::from_struct(&permit, Some(domain.clone()))).unwrap();
    // Numbers as decimal strings, the way JSON-RPC clients send them.
    let t = parse(&json).unwrap();
    assert_eq!(keccak256(t.preimage()), permit.eip712_signing_hash(&domain));
    let p = t.permit().unwrap().unwrap();
    assert_eq!(p.standard, PermitStandard::Eip2612);
    assert_eq!(p.spender, spender);
    assert_eq!(p.allowances, vec![(token, U256::from(1_000_000u64))]);
}

#[test]
fn permit2_single_and_batch_are_read() {
    let base = |primary: &str, details: serde_json::Value, types: serde_json::Value| {
        json!({
            "types": types,
            "primaryType": primary,
            "domain": {"name": "Permit2", "chainId": "31337", "verifyingContract": "0x000000000022D473030F116dDEE9F6B43aC78BA3"},
            "message": {"details": details, "spender": "0x00000000000000000000000000000000000000cc", "sigDeadline": "0x10"}
        })
    };
    let details_t = json!([
        {"name": "token", "type": "address"}, {"name": "amount", "type": "uint160"},
        {"name": "expiration", "type": "uint48"}, {"name": "nonce", "type": "uint48"}
    ]);
    let d = json!({"token": "0x00000000000000000000000000000000000000aa", "amount": "500", "expiration": 1, "nonce": 0});
    let single = base(
        "PermitSingle",
        d.clone(),
        json!({
            "PermitDetails": details_t,
            "PermitSingle": [{"name": "details", "type": "PermitDetails"}, {"name": "spender", "type": "address"}, {"name": "sigDeadline", "type": "uint256"}]
        }),
    );
    let p = parse(&single).unwrap().permit().unwrap().unwrap();
    assert_eq!(p.standard, PermitStandard::Permit2);
    assert_eq!(
        p.spender,
        address!("00000000000000000000000000000000000000cc")
    );
    assert_eq!(
        p.allowances,
        vec![(
            address!("00000000000000000000000000000000000000aa"),
            U256::from(500)
        )]
    );
    let batch = base(
        "PermitBatch",
        json!([d.clone(), {"token": "0x00000000000000000000000000000000000000ab", "amount": 7, "expiration": 1, "nonce": 0}]),
        json!({
            "PermitDetails": details_t,
            "PermitBatch": [{"name": "details", "type": "PermitDetails[]"}, {"name": "spender", "type": "address"}, {"name": "sigDeadline", "type": "uint256"}]
        }),
    );
    let p = parse(&batch).unwrap().permit().unwrap().unwrap();
    assert_eq!(p.allowances.len(), 2);
    assert_eq!(p.allowances[1].1, U256::from(7));
    // A Permit2-domain message without a spender: refused, not passed as "no permit".
    let odd = json!({
        "types": {"Other": [{"name": "x", "type": "uint256"}]},
        "primaryType": "Other",
        "domain": {"name": "Permit2"},
        "message": {"x": 1}
    });
    assert!(matches!(
        parse(&odd).unwrap().permit(),
        Some(Err(TypedDataError::Permit { .. }))
    ));
}

#[test]
fn refuses_what_it_cannot_hash_consistently() {
    // Empty and oversized.
    assert!(matches!(
        TypedDataPayload::parse(b""),
        Err(TypedDataError::Size(0))
    ));
    // Not JSON / not typed data.
    assert!(matches!(
        TypedDataPayload::parse(b"{"),
        Err(TypedDataError::Json(_))
    ));
    assert!(matches!(
        TypedDataPayload::parse(b"[1,2]"),
        Err(TypedDataError::Json(_))
    ));
    // The message does not fit its types.
    let mut bad = mail();
    bad["message"]["from"]["wallet"] = json!("not an address");
    assert!(matches!(parse(&bad), Err(TypedDataError::Encode(_))));
    let mut missing = mail();
    missing["message"]
        .as_object_mut()
        .unwrap()
        .remove("contents");
    assert!(matches!(parse(&missing), Err(TypedDataError::Encode(_))));
    // A declared domain type that is not the domain's fields.
    let mut lying = mail();
    lying["types"]["EIP712Domain"].as_array_mut().unwrap().pop();
    assert!(matches!(
        parse(&lying),
        Err(TypedDataError::DomainType { .. })
    ));
    // Nothing to sign.
    let mut domain_only = mail();
    domain_only["primaryType"] = json!("EIP712Domain");
    assert!(matches!(
        parse(&domain_only),
        Err(TypedDataError::DomainOnly)
    ));
    // A recursive type never loops.
    let cyclic = json!({
        "types": {"A": [{"name": "b", "type": "B"}], "B": [{"name": "a", "type": "A"}]},
        "primaryType": "A", "domain": {}, "message": {"b": {"a": {}}}
    });
    assert!(parse(&cyclic).is_err());
    // A permit whose amount is not a number.
    let permit = json!({
        "types": {"Permit": [{"name": "owner", "type": "address"}, {"name": "spender", "type": "address"}, {"name": "value", "type": "string"}]},
        "primaryType": "Permit",
        "domain": {"verifyingContract": "0x00000000000000000000000000000000000000aa"},
        "message": {"owner": "0x00000000000000000000000000000000000000aa", "spender": "0x00000000000000000000000000000000000000bb", "value": "lots"}
    });
    assert!(matches!(
        parse(&permit).unwrap().permit(),
        Some(Err(TypedDataError::Permit { field: "value", .. }))
    ));
}

proptest::proptest! {
    /// Hostile bytes never panic the decoder.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
        let _ = TypedDataPayload::parse(&bytes);
    }

    /// Mutated valid typed data never panics and, when it parses, reads consistently.
    #[test]
    fn mutated_json_never_panics(i in 0usize..1024, c in proptest::num::u8::ANY) {
        let mut s = mail().to_string().into_bytes();
        let n = s.len();
        s[i % n] = c;
        if let Ok(t) = TypedDataPayload::parse(&s) {
            let _ = t.permit();
            proptest::prop_assert_eq!(&t.preimage()[..2], &[0x19, 0x01]);
        }
    }
}
