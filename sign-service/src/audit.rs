//! Append-only audit log: one JSON object per line, written with a single `write` on a
//! file opened in append mode and synced before the request proceeds.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

/// One audit record. Sign requests produce a `sign_request` record (the decision) and,
/// when allowed, a `sign_outcome` record with the same `request_id`.
#[derive(Debug, Clone, Serialize, Default)]
pub struct AuditRecord {
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// `create_wallet`, `confirm_wallet`, `wallet_dkg`, `sign_request`, `sign_outcome`,
    /// `presign_start`, `presign_outcome`, `presign_release`, `import_wallet`.
    pub event: &'static str,
    /// Wallet id.
    pub wallet_id: String,
    /// Requesting party (0 device, 2 recovery), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub party: Option<u16>,
    /// Account id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// Derivation path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Hex digest to be signed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Payload kind (proto name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_kind: Option<String>,
    /// `allow` or `deny`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<&'static str>,
    /// Rule or reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Request id (returned to the caller).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Session id / room.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Presignature id (presignature sessions and fast-path signing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presignature_id: Option<String>,
    /// `signed`, `failed: ...`, `committed`, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// `true` when the wallet's aux info uses the PUBLIC test primes (development only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insecure_dev_primes: Option<bool>,
    /// Decoded Ethereum transaction summary, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction: Option<serde_json::Value>,
}

/// Failure to write the audit log (requests are refused when it cannot be written).
#[derive(Debug, thiserror::Error)]
#[error("audit log {path}: {source}")]
pub struct AuditError {
    path: PathBuf,
    source: std::io::Error,
}

/// The audit log file.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    file: Mutex<std::fs::File>,
}

impl AuditLog {
    /// Opens (creating) `path` for appending.
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        let err = |source| AuditError {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(err)?;
            }
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(err)?;
        Ok(Self {
            path: path.to_path_buf(),
            file: Mutex::new(file),
        })
    }

    /// Appends one record (durably).
    pub fn append(&self, rec: &AuditRecord) -> Result<(), AuditError> {
        let err = |source| AuditError {
            path: self.path.clone(),
            source,
        };
        let mut line = serde_json::to_vec(rec).map_err(|e| err(std::io::Error::other(e)))?;
        line.push(b'\n');
        let mut f = self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f.write_all(&line).map_err(err)?;
        f.sync_data().map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_json_lines() {
        let p =
            std::env::temp_dir().join(format!("sign-service-audit-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&p);
        let log = AuditLog::open(&p).unwrap();
        log.append(&AuditRecord {
            event: "sign_request",
            wallet_id: "w".into(),
            decision: Some("deny"),
            ..Default::default()
        })
        .unwrap();
        drop(log);
        let log = AuditLog::open(&p).unwrap();
        log.append(&AuditRecord {
            event: "sign_outcome",
            wallet_id: "w".into(),
            ..Default::default()
        })
        .unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["decision"], "deny");
        assert_eq!(lines[1]["event"], "sign_outcome");
        let _ = std::fs::remove_file(&p);
    }
}
