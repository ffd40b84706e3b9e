//! Test hooks. They exist only in builds with the `test-hooks` cargo feature, which
//! the sign-service test suite turns on through a dev-dependency of the package on
//! itself (so `cargo test` builds the binary with it and `cargo build` does not); a
//! release build refuses the feature at compile time. Without it every hook is an
//! empty function and no configuration key or variable changes anything.

/// Environment variable read by [`after_presign_take`] (milliseconds, at most 60000).
#[cfg(feature = "test-hooks")]
pub const ENV_PAUSE_AFTER_PRESIGN_TAKE_MS: &str = "SIGN_SERVICE_TEST_PAUSE_AFTER_PRESIGN_TAKE_MS";

/// Environment variable read by [`rollback_guard_disabled`] (`1` switches the guard off).
#[cfg(feature = "test-hooks")]
pub const ENV_DISABLE_ROLLBACK_GUARD: &str = "SIGN_SERVICE_TEST_DISABLE_ROLLBACK_GUARD";

#[cfg(all(feature = "test-hooks", not(debug_assertions)))]
compile_error!("the `test-hooks` feature is for test (debug) builds of sign-service only");

/// Called after a presignature was consumed (committed) and before the partial
/// signature is computed: with `test-hooks`, pauses for
/// `SIGN_SERVICE_TEST_PAUSE_AFTER_PRESIGN_TAKE_MS` so a test can kill the service in
/// between. A no-op otherwise.
pub(crate) async fn after_presign_take() {
    #[cfg(feature = "test-hooks")]
    {
        let ms = std::env::var(ENV_PAUSE_AFTER_PRESIGN_TAKE_MS)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
            .min(60_000);
        if ms > 0 {
            tracing::warn!(ms, "test hook: pausing after a presignature take");
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
    }
}

/// Whether the presignature rollback guard (`rollback.rs`) is switched off: with
/// `test-hooks`, when `SIGN_SERVICE_TEST_DISABLE_ROLLBACK_GUARD=1`, so a test can show
/// the restore attack it stops. Always `false` otherwise: the switch does not exist in
/// a build without the feature, and a release build with the feature does not compile
/// (the `compile_error!` above).
#[cfg(feature = "test-hooks")]
pub(crate) fn rollback_guard_disabled() -> bool {
    let off = std::env::var(ENV_DISABLE_ROLLBACK_GUARD).is_ok_and(|v| v.trim() == "1");
    if off {
        tracing::warn!("test hook: the presignature rollback guard is OFF");
    }
    off
}

/// Without `test-hooks` the guard is always on.
#[cfg(not(feature = "test-hooks"))]
pub(crate) fn rollback_guard_disabled() -> bool {
    false
}
