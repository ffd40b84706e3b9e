//! Proto enums of the vocabulary types the cosigner API's `convert` module lacks.

use cosigner_api::pb;
use wallet_types::PayloadKind;

/// [`PayloadKind`] → `pb::PayloadKind`.
pub(crate) fn payload_kind_to_proto(p: PayloadKind) -> pb::PayloadKind {
    match p {
        PayloadKind::Raw => pb::PayloadKind::Raw,
        PayloadKind::EthereumTransaction => pb::PayloadKind::EthereumTransaction,
        PayloadKind::EthereumMessage => pb::PayloadKind::EthereumMessage,
        PayloadKind::EthereumTypedData => pb::PayloadKind::EthereumTypedData,
        PayloadKind::EthereumAuthorization => pb::PayloadKind::EthereumAuthorization,
        PayloadKind::BitcoinPsbtInput => pb::PayloadKind::BitcoinPsbtInput,
    }
}

/// `wallet_types::AccountKind` → `pb::AccountKind`.
pub(crate) fn account_kind_to_proto(k: wallet_types::AccountKind) -> pb::AccountKind {
    cosigner_api::convert::account_kind_to_proto(k)
}
