//! The page's lifecycle endpoints (pairing token): `POST
//! /v1/wallets/{wallet_id}/lifecycle` (a refresh or a device replacement, held until the
//! user confirms it on the agent's machine) and `POST /v1/requests/{id}/possession`
//! (the new device's proof of possession of its identity). See [`crate::lifecycle`].

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use mpc_wire::PublicIdentity;
use serde::Deserialize;

use crate::api::{bad, json_body, origin_of};
use crate::error::ApiError;
use crate::requests::{NewRequest, RequestAction, MAX_REASON_CHARS};
use crate::{check_http_url, check_wallet_id, Agent};

/// `{"kind", "cosigner_url", "reason"?, "new_device_identity"?}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LifecycleBody {
    kind: RequestAction,
    cosigner_url: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    new_device_identity: Option<String>,
}

/// The request, validated: the kind, and a fresh new identity for a replacement only.
fn validate(wallet_id: &str, req: &LifecycleBody) -> Result<Option<String>, ApiError> {
    check_wallet_id(wallet_id).map_err(bad)?;
    check_http_url("cosigner", &req.cosigner_url).map_err(bad)?;
    if req.reason.chars().count() > MAX_REASON_CHARS || req.reason.chars().any(|c| c.is_control()) {
        return Err(bad(format!(
            "reason must be at most {MAX_REASON_CHARS} characters without control characters"
        )));
    }
    match (req.kind, &req.new_device_identity) {
        (RequestAction::Refresh, None) => Ok(None),
        (RequestAction::Refresh, Some(_)) => {
            Err(bad("a refresh keeps the device: no new_device_identity"))
        }
        (RequestAction::ReplaceDevice, None) => Err(bad(
            "a replacement needs new_device_identity (the new browser profile's identity)",
        )),
        (RequestAction::ReplaceDevice, Some(id)) => {
            let ok = id.len() == 128 && id.parse::<PublicIdentity>().is_ok();
            if !ok {
                return Err(bad("new_device_identity must be an identity (128 hex)"));
            }
            Ok(Some(id.to_ascii_lowercase()))
        }
        _ => Err(bad("kind must be refresh or replace_device")),
    }
}

pub(crate) async fn request_lifecycle(
    State(agent): State<Arc<Agent>>,
    Path(wallet_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: LifecycleBody = json_body(&agent, &headers, body)?;
    let new_device_identity = validate(&wallet_id, &req)?;
    let v = agent.submit_request(NewRequest {
        wallet_id,
        action: req.kind,
        reason: req.reason,
        cosigner_url: req.cosigner_url.trim().to_string(),
        origin: origin_of(&headers),
        sign: None,
        new_device_identity,
    })?;
    Ok((StatusCode::ACCEPTED, Json(v)).into_response())
}

/// `{"signature_hex": "<128 hex>"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PossessionBody {
    signature_hex: String,
}

pub(crate) async fn post_possession(
    State(agent): State<Arc<Agent>>,
    Path(request_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: PossessionBody = json_body(&agent, &headers, body)?;
    let v = agent
        .requests()
        .post_possession(&request_id, &req.signature_hex)?;
    Ok(Json(v).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(kind: RequestAction, new: Option<&str>) -> LifecycleBody {
        LifecycleBody {
            kind,
            cosigner_url: "http://127.0.0.1:1".into(),
            reason: String::new(),
            new_device_identity: new.map(str::to_string),
        }
    }

    #[test]
    fn a_lifecycle_request_is_a_refresh_or_a_replacement_with_a_new_identity() {
        let id = mpc_wire::IdentityKey::generate()
            .unwrap()
            .public()
            .to_string();
        assert_eq!(
            validate("w-1", &body(RequestAction::Refresh, None)).unwrap(),
            None
        );
        assert_eq!(
            validate("w-1", &body(RequestAction::ReplaceDevice, Some(&id))).unwrap(),
            Some(id.clone())
        );
        for (kind, new) in [
            (RequestAction::ReplaceDevice, None),
            (RequestAction::ReplaceDevice, Some("abcd")),
            (RequestAction::Refresh, Some(id.as_str())),
            (RequestAction::Unfreeze, None),
            (RequestAction::Sign, None),
        ] {
            let e = validate("w-1", &body(kind, new)).unwrap_err();
            assert_eq!(e.code(), "invalid_request", "{kind:?} {new:?}");
        }
    }
}
