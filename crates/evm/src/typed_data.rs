//! EIP-712 typed data (`alloy-dyn-abi`): the JSON of `eth_signTypedData_v4` decoded,
//! checked against its own types, and turned into the signed preimage
//! `0x1901 ‖ domainSeparator ‖ hashStruct(message)`; token permits (EIP-2612, DAI's
//! permit, Uniswap's Permit2) read from it for the policy.

use alloy_dyn_abi::{DynSolValue, TypedData};
use alloy_primitives::{Address, U256};

/// Largest typed-data JSON accepted (the signing preimage limit).
pub const MAX_TYPED_DATA_LEN: usize = wallet_types::MAX_PREIMAGE_LEN;

/// Why typed data was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TypedDataError {
    /// Empty or larger than [`MAX_TYPED_DATA_LEN`].
    #[error("typed data must be 1..={MAX_TYPED_DATA_LEN} bytes of JSON, got {0}")]
    Size(usize),
    /// Not the JSON of `eth_signTypedData_v4`.
    #[error("malformed EIP-712 typed data: {0}")]
    Json(String),
    /// The message does not fit its declared types (or the types are invalid).
    #[error("EIP-712 typed data does not encode: {0}")]
    Encode(String),
    /// `types.EIP712Domain` declares other fields than the domain has.
    #[error("types.EIP712Domain is `{declared}` but the domain's fields make `{actual}`")]
    DomainType {
        /// What the JSON declares.
        declared: String,
        /// What the domain's fields encode to.
        actual: String,
    },
    /// `primaryType` is `EIP712Domain`: there is no message to sign.
    #[error("primaryType EIP712Domain signs no message")]
    DomainOnly,
    /// A permit whose fields could not be read.
    #[error("a {standard} permit without a readable `{field}`")]
    Permit {
        /// `EIP-2612`, `DAI` or `Permit2`.
        standard: &'static str,
        /// The field missing or of the wrong type.
        field: &'static str,
    },
}

/// Which permit standard a typed message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PermitStandard {
    /// EIP-2612 `Permit(owner, spender, value, nonce, deadline)`; the token is the
    /// domain's verifying contract.
    Eip2612,
    /// DAI's `Permit(holder, spender, nonce, expiry, allowed)`: all or nothing.
    Dai,
    /// Uniswap's Permit2 (domain name `Permit2`): `PermitSingle`, `PermitBatch`,
    /// `PermitTransferFrom`, `PermitBatchTransferFrom` and their witness variants.
    Permit2,
}

impl PermitStandard {
    /// `EIP-2612`, `DAI` or `Permit2`.
    pub fn as_str(self) -> &'static str {
        match self {
            PermitStandard::Eip2612 => "EIP-2612",
            PermitStandard::Dai => "DAI",
            PermitStandard::Permit2 => "Permit2",
        }
    }
}

/// A token permit: who may spend which tokens, and how many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permit {
    /// The standard.
    pub standard: PermitStandard,
    /// Who may spend.
    pub spender: Address,
    /// The tokens and the amounts allowed (for DAI's `allowed: true`, `U256::MAX`).
    pub allowances: Vec<(Address, U256)>,
}

/// Typed data, decoded and checked: what every party signs is [`Self::preimage`].
#[derive(Debug, Clone)]
pub struct TypedDataPayload {
    data: TypedData,
    message: DynSolValue,
    preimage: [u8; 66],
}

impl TypedDataPayload {
    /// Decodes the JSON of `eth_signTypedData_v4` (`{types, primaryType, domain,
    /// message}`; numbers as JSON numbers, decimal or `0x` strings). The message must
    /// encode under its types, and a declared `types.EIP712Domain` must be exactly the
    /// domain's fields (each party hashes the domain from its fields).
    pub fn parse(json: &[u8]) -> Result<Self, TypedDataError> {
        if json.is_empty() || json.len() > MAX_TYPED_DATA_LEN {
            return Err(TypedDataError::Size(json.len()));
        }
        let data: TypedData =
            serde_json::from_slice(json).map_err(|e| TypedDataError::Json(e.to_string()))?;
        if data.primary_type == "EIP712Domain" {
            return Err(TypedDataError::DomainOnly);
        }
        if data.resolver.contains_type_name("EIP712Domain") {
            let declared = data
                .resolver
                .encode_type("EIP712Domain")
                .map_err(|e| TypedDataError::Encode(e.to_string()))?;
            let actual = data.domain.encode_type();
            if declared != actual {
                return Err(TypedDataError::DomainType { declared, actual });
            }
        }
        let enc = |e: alloy_dyn_abi::Error| TypedDataError::Encode(e.to_string());
        let message = data.coerce().map_err(enc)?;
        let mut preimage = [0u8; 66];
        preimage[..2].copy_from_slice(&[0x19, 0x01]);
        preimage[2..34].copy_from_slice(data.domain.separator().as_slice());
        preimage[34..].copy_from_slice(data.hash_struct().map_err(enc)?.as_slice());
        Ok(TypedDataPayload {
            data,
            message,
            preimage,
        })
    }

    /// `0x1901 ‖ domainSeparator ‖ hashStruct(message)`: its keccak-256 is the
    /// EIP-712 signing hash.
    pub fn preimage(&self) -> [u8; 66] {
        self.preimage
    }

    /// The decoded typed data.
    pub fn typed_data(&self) -> &TypedData {
        &self.data
    }

    /// `primaryType`.
    pub fn primary_type(&self) -> &str {
        &self.data.primary_type
    }

    /// The domain's `chainId`, if it has one.
    pub fn chain_id(&self) -> Option<U256> {
        self.data.domain.chain_id
    }

    /// The domain's `verifyingContract`, if it has one.
    pub fn verifying_contract(&self) -> Option<Address> {
        self.data.domain.verifying_contract
    }

    /// The domain's `name`, if it has one.
    pub fn domain_name(&self) -> Option<&str> {
        self.data.domain.name.as_deref()
    }

    /// The permit this message is, if it is one: `None` for other messages, an error
    /// for a message that claims to be a permit (primary type `Permit`, or the
    /// `Permit2` domain) whose spender, tokens or amounts cannot be read.
    pub fn permit(&self) -> Option<Result<Permit, TypedDataError>> {
        if self.domain_name() == Some("Permit2") {
            return Some(self.permit2());
        }
        if self.primary_type() != "Permit" {
            return None;
        }
        let has = |f: &str| field(&self.message, f).is_some();
        Some(if has("holder") && has("allowed") {
            self.dai()
        } else {
            self.eip2612()
        })
    }

    fn eip2612(&self) -> Result<Permit, TypedDataError> {
        let err = |field| TypedDataError::Permit {
            standard: "EIP-2612",
            field,
        };
        let token = self.verifying_contract().ok_or(err("verifyingContract"))?;
        Ok(Permit {
            standard: PermitStandard::Eip2612,
            spender: address(&self.message, "spender").ok_or(err("spender"))?,
            allowances: vec![(token, uint(&self.message, "value").ok_or(err("value"))?)],
        })
    }

    fn dai(&self) -> Result<Permit, TypedDataError> {
        let err = |field| TypedDataError::Permit {
            standard: "DAI",
            field,
        };
        let token = self.verifying_contract().ok_or(err("verifyingContract"))?;
        let allowed = field(&self.message, "allowed")
            .and_then(DynSolValue::as_bool)
            .ok_or(err("allowed"))?;
        Ok(Permit {
            standard: PermitStandard::Dai,
            spender: address(&self.message, "spender").ok_or(err("spender"))?,
            allowances: vec![(token, if allowed { U256::MAX } else { U256::ZERO })],
        })
    }

    fn permit2(&self) -> Result<Permit, TypedDataError> {
        let err = |field| TypedDataError::Permit {
            standard: "Permit2",
            field,
        };
        let spender = address(&self.message, "spender").ok_or(err("spender"))?;
        // `details` (allowance transfer) or `permitted` (signature transfer): one
        // struct or an array of them, each with a token and an amount.
        let (items, name) = match (
            field(&self.message, "details"),
            field(&self.message, "permitted"),
        ) {
            (Some(d), None) => (d, "details"),
            (None, Some(p)) => (p, "permitted"),
            _ => return Err(err("details or permitted")),
        };
        let items: Vec<&DynSolValue> = match items.as_array() {
            Some(list) => list.iter().collect(),
            None => vec![items],
        };
        let allowances = items
            .into_iter()
            .map(|i| Some((address(i, "token")?, uint(i, "amount")?)))
            .collect::<Option<Vec<_>>>()
            .ok_or(err(name))?;
        if allowances.is_empty() {
            return Err(err(name));
        }
        Ok(Permit {
            standard: PermitStandard::Permit2,
            spender,
            allowances,
        })
    }
}

/// The field `name` of a struct value.
fn field<'a>(v: &'a DynSolValue, name: &str) -> Option<&'a DynSolValue> {
    let (_, names, values) = v.as_custom_struct()?;
    names
        .iter()
        .position(|n| n == name)
        .and_then(|i| values.get(i))
}

fn address(v: &DynSolValue, name: &str) -> Option<Address> {
    field(v, name)?.as_address()
}

fn uint(v: &DynSolValue, name: &str) -> Option<U256> {
    field(v, name)?.as_uint().map(|(u, _)| u)
}

#[cfg(test)]
mod tests;
