//! What the metrics of both gateways share, so that one dashboard reads either: the
//! status classes error replies are counted under, the buckets of the delivery-latency
//! histogram, and the check of a metrics bearer token.

use subtle::ConstantTimeEq;

use crate::GatewayError;

/// Upper bound of the first delivery-latency bucket, in seconds (0.1 ms).
pub const LATENCY_BUCKET_START: f64 = 0.0001;
/// Each delivery-latency bucket's bound is this many times the previous one.
pub const LATENCY_BUCKET_FACTOR: f64 = 2.0;
/// Number of finite delivery-latency buckets (0.1 ms to ~6.5 s; `+Inf` comes on top).
pub const LATENCY_BUCKETS: u16 = 17;

/// The finite upper bounds (seconds) of the delivery-latency histogram, computed as
/// `prometheus-client`'s `exponential_buckets` computes them (the same floats).
pub fn delivery_latency_buckets() -> impl Iterator<Item = f64> {
    (0..LATENCY_BUCKETS).map(|i| LATENCY_BUCKET_START * LATENCY_BUCKET_FACTOR.powf(f64::from(i)))
}

/// The status class an error reply with HTTP `status` is counted under
/// (`sign_gateway_errors_total{status=...}`).
pub fn status_class(status: u16) -> &'static str {
    match status {
        400 => "400",
        401 => "401",
        403 => "403",
        404 | 405 => "404",
        409 | 410 => "410",
        413 => "413",
        429 => "429",
        _ => "5xx",
    }
}

/// Checks the `Authorization` header of a metrics scrape against the configured
/// `token`: `Bearer <token>` passes; no header (or another scheme) is
/// [`GatewayError::TokenMissing`] (401), a wrong token [`GatewayError::TokenInvalid`]
/// (403). Both sides are hashed with SHA-256 first and the digests compared in constant
/// time, so neither the token's bytes nor its length leak through timing.
pub fn check_metrics_token(token: &str, authorization: Option<&str>) -> Result<(), GatewayError> {
    use sha2::{Digest, Sha256};
    let given = authorization
        .and_then(|h| {
            let (scheme, rest) = h.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .filter(|t| !t.is_empty())
        .ok_or(GatewayError::TokenMissing)?;
    let want = Sha256::digest(token.as_bytes());
    let got = Sha256::digest(given.as_bytes());
    if bool::from(want.as_slice().ct_eq(got.as_slice())) {
        Ok(())
    } else {
        Err(GatewayError::TokenInvalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_0_1_ms_doubling() {
        let b: Vec<f64> = delivery_latency_buckets().collect();
        assert_eq!(b.len(), 17);
        assert_eq!(b[0], 0.0001);
        assert_eq!(b[1], 0.0002);
        assert!((b[16] - 6.5536).abs() < 1e-9, "{}", b[16]);
    }

    #[test]
    fn metrics_token() {
        let t = "s3cret-token";
        assert_eq!(check_metrics_token(t, Some("Bearer s3cret-token")), Ok(()));
        assert_eq!(check_metrics_token(t, Some("bearer s3cret-token")), Ok(()));
        for missing in [
            None,
            Some(""),
            Some("Bearer"),
            Some("Bearer  "),
            Some("Basic abc"),
        ] {
            assert_eq!(
                check_metrics_token(t, missing),
                Err(GatewayError::TokenMissing),
                "{missing:?}"
            );
        }
        for wrong in [
            "Bearer s3cret-toke",
            "Bearer s3cret-token2",
            "Bearer S3CRET-TOKEN",
        ] {
            assert_eq!(
                check_metrics_token(t, Some(wrong)),
                Err(GatewayError::TokenInvalid),
                "{wrong}"
            );
        }
    }
}
