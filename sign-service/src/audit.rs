//! Append-only, tamper-evident audit log: one JSON object per line, hash-chained.
//!
//! Every line is `{"seq":N,"prev":"<hex>",…record…,"hash":"<hex>"}`:
//! - `seq` counts the records from 1;
//! - `prev` is the `hash` of the line before (the first record's is [`genesis`]);
//! - `hash` is SHA-256 of the line's bytes before `,"hash":"` (so of `seq`, `prev` and
//!   the record), in lowercase hex, and is the line's last field.
//!
//! An edited record no longer matches its own hash; one edited with its hash recomputed
//! breaks the next record's `prev`; a deleted, inserted or moved record breaks `seq` and
//! `prev`. [`verify`] names the first broken line and why (`sign-service audit verify`).
//! Truncating the newest records leaves a valid shorter chain: compare the head that
//! `verify` prints (count and hash) with one recorded elsewhere.
//!
//! Each record is written with a single `write` on a file opened in append mode and
//! synced before the request proceeds; a failed write is cut off again (the file is
//! truncated to its previous length) and fails the request that needed the record.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;
use sha2::{Digest, Sha256};

/// One audit record. Sign requests produce a `sign_request` record (the decision) and,
/// when allowed, a `sign_outcome` record with the same `request_id`.
#[derive(Debug, Clone, Serialize, Default)]
pub struct AuditRecord {
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// `create_wallet`, `confirm_wallet`, `wallet_dkg`, `enroll_device`,
    /// `enrollment_aux`, `sign_request`, `sign_outcome`, `presign_start`,
    /// `presign_outcome`, `presign_release`, `presign_purge`, `import_wallet`,
    /// `device_revoked`, `wallet_frozen`, `wallet_unfreeze_requested`.
    pub event: &'static str,
    /// Wallet id (the enrollment id for `enroll_device` and `enrollment_aux`).
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
    /// The decoded fields of typed data, an EIP-7702 authorization or a message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decoded: Option<serde_json::Value>,
}

/// Failure to write the audit log (requests are refused when it cannot be written).
#[derive(Debug, thiserror::Error)]
#[error("audit log {path}: {reason}")]
pub struct AuditError {
    path: PathBuf,
    reason: String,
}

/// The `prev` of the first record: SHA-256 of a fixed label, hex.
pub fn genesis() -> String {
    hex::encode(Sha256::digest(b"wallet-mpc/sign-service/audit-log/v1"))
}

/// Where a line's own hash starts: `,"hash":"` followed by 64 hex digits and `"}`.
const HASH_FIELD: &str = ",\"hash\":\"";

/// Splits a chained line into (hashed prefix, stored hash).
fn split_hash(line: &str) -> Option<(&str, &str)> {
    let at = line.rfind(HASH_FIELD)?;
    let stored = line[at + HASH_FIELD.len()..].strip_suffix("\"}")?;
    (stored.len() == 64).then_some((&line[..at], stored))
}

/// The head of a chain: how many records and the last one's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    /// Records in the log.
    pub records: u64,
    /// `hash` of the last record ([`genesis`] for an empty log).
    pub hash: String,
}

#[derive(Serialize)]
struct Chained<'a> {
    seq: u64,
    prev: &'a str,
    #[serde(flatten)]
    rec: &'a AuditRecord,
}

/// The audit log file.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    file: std::fs::File,
    head: ChainHead,
    len: u64,
    /// Why the last append failed (cleared by the next one that succeeds).
    failed: Option<String>,
}

/// The last complete line of `file` and the file's length up to that line's end (bytes
/// after the last newline are a torn write). Reads backwards, so only the tail.
fn last_line(file: &mut std::fs::File) -> std::io::Result<(Option<String>, u64)> {
    const CHUNK: u64 = 64 * 1024;
    let len = file.seek(SeekFrom::End(0))?;
    let mut start = len;
    let mut buf: Vec<u8> = Vec::new();
    let newlines = |b: &[u8]| {
        let last = b.iter().rposition(|&c| c == b'\n');
        let before = last.and_then(|a| b[..a].iter().rposition(|&c| c == b'\n'));
        (last, before)
    };
    while start > 0 {
        let from = start.saturating_sub(CHUNK);
        let mut chunk = vec![0u8; (start - from) as usize];
        file.seek(SeekFrom::Start(from))?;
        file.read_exact(&mut chunk)?;
        chunk.extend_from_slice(&buf);
        buf = chunk;
        start = from;
        if let (Some(_), Some(_)) = newlines(&buf) {
            break;
        }
    }
    let (last, before) = newlines(&buf);
    let Some(end) = last else {
        return Ok((None, 0));
    };
    let line_start = before.map_or(0, |b| b + 1);
    let line = String::from_utf8_lossy(&buf[line_start..end]).into_owned();
    Ok((Some(line), start + end as u64 + 1))
}

impl AuditLog {
    /// Opens (creating) `path` for appending and recovers the chain's head from its last
    /// record. A torn last line (a write cut short by a crash) is cut off.
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        let err = |reason: String| AuditError {
            path: path.to_path_buf(),
            reason,
        };
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
            }
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .map_err(|e| err(e.to_string()))?;
        let total = file
            .seek(SeekFrom::End(0))
            .map_err(|e| err(e.to_string()))?;
        let (last, len) = last_line(&mut file).map_err(|e| err(e.to_string()))?;
        if len < total {
            tracing::error!(path = %path.display(), torn_bytes = total - len, "the audit log ends with a torn record (a write cut short); cutting it off");
            file.set_len(len).map_err(|e| err(e.to_string()))?;
            file.sync_all().map_err(|e| err(e.to_string()))?;
        }
        let head = match last {
            None => ChainHead {
                records: 0,
                hash: genesis(),
            },
            Some(line) => {
                let seq = serde_json::from_str::<serde_json::Value>(&line)
                    .ok()
                    .and_then(|v| v.get("seq").and_then(serde_json::Value::as_u64));
                match (seq, split_hash(&line)) {
                    (Some(seq), Some((_, hash))) => ChainHead {
                        records: seq,
                        hash: hash.to_string(),
                    },
                    _ => return Err(err(
                        "its last record is not hash-chained (a log written before sign-service \
                             chained its audit records, or damaged): move it away and start a new \
                             log"
                        .into(),
                    )),
                }
            }
        };
        Ok(Self {
            path: path.to_path_buf(),
            inner: Mutex::new(Inner {
                file,
                head,
                len,
                failed: None,
            }),
        })
    }

    /// The chain's head now.
    pub fn head(&self) -> ChainHead {
        self.lock().head.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the log can take records (readiness): the last append did not fail, and
    /// the file appended to is still the one at the log's path (not removed, moved away
    /// or replaced, which would leave records where no one looks).
    pub fn check(&self) -> Result<(), AuditError> {
        let err = |reason: String| AuditError {
            path: self.path.clone(),
            reason,
        };
        let inner = self.lock();
        if let Some(why) = &inner.failed {
            return Err(err(format!("the last append failed: {why}")));
        }
        let at_path =
            std::fs::metadata(&self.path).map_err(|e| err(format!("the log file is gone: {e}")))?;
        let ours = inner.file.metadata().map_err(|e| err(e.to_string()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            if (at_path.dev(), at_path.ino()) != (ours.dev(), ours.ino()) {
                return Err(err(
                    "the file at the log's path is not the one being appended to (moved or \
                     replaced): restart the service to reopen it"
                        .into(),
                ));
            }
        }
        #[cfg(not(unix))]
        let _ = (at_path, ours);
        Ok(())
    }

    /// Appends one record, chained and synced. On failure nothing of it stays in the
    /// file (it is truncated back) and the chain does not advance.
    pub fn append(&self, rec: &AuditRecord) -> Result<(), AuditError> {
        let err = |reason: String| AuditError {
            path: self.path.clone(),
            reason,
        };
        let mut inner = self.lock();
        let seq = inner.head.records + 1;
        let body = serde_json::to_string(&Chained {
            seq,
            prev: &inner.head.hash,
            rec,
        })
        .map_err(|e| err(e.to_string()))?;
        let prefix = body
            .strip_suffix('}')
            .ok_or_else(|| err("a record is not a JSON object".into()))?;
        let hash = hex::encode(Sha256::digest(prefix.as_bytes()));
        let line = format!("{prefix}{HASH_FIELD}{hash}\"}}\n");
        let before = inner.len;
        let written = inner
            .file
            .write_all(line.as_bytes())
            .and_then(|()| inner.file.sync_data());
        if let Err(e) = written {
            // Cut off whatever part of the record reached the file.
            let _ = inner.file.set_len(before);
            let _ = inner.file.sync_data();
            inner.failed = Some(e.to_string());
            return Err(err(e.to_string()));
        }
        inner.failed = None;
        inner.len = before + line.len() as u64;
        inner.head = ChainHead { records: seq, hash };
        Ok(())
    }
}

/// Where and why a log fails verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct VerifyError {
    /// 1-based line number of the first broken record.
    pub line: u64,
    /// What is wrong with it.
    pub reason: String,
}

/// Checks the whole chain of `text` (a log's content); returns its head or the first
/// broken record.
pub fn verify_text(text: &str) -> Result<ChainHead, VerifyError> {
    let mut head = ChainHead {
        records: 0,
        hash: genesis(),
    };
    if text.is_empty() {
        return Ok(head);
    }
    let complete = text.strip_suffix('\n');
    let body = complete.unwrap_or(text);
    for (i, line) in body.split('\n').enumerate() {
        let n = i as u64 + 1;
        let fail = |reason: String| VerifyError { line: n, reason };
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| fail(format!("not a JSON record ({e})")))?;
        let seq = v
            .get("seq")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| fail("no `seq`: the record is not hash-chained".into()))?;
        let prev = v
            .get("prev")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| fail("no `prev`: the record is not hash-chained".into()))?;
        let (prefix, stored) = split_hash(line).ok_or_else(|| {
            fail("no `hash` as its last field: the record is not hash-chained".into())
        })?;
        if hex::encode(Sha256::digest(prefix.as_bytes())) != stored {
            return Err(fail(format!(
                "record {seq} was modified: its content does not match its hash"
            )));
        }
        if seq != n {
            return Err(fail(format!(
                "record {seq} where record {n} belongs: records were deleted, inserted or reordered \
                 before this line"
            )));
        }
        if prev != head.hash {
            return Err(fail(if n == 1 {
                "the first record does not start the chain (its `prev` is not the genesis hash): \
                 records were deleted from the start"
                    .into()
            } else {
                format!(
                    "`prev` does not match the hash of line {}: record {} was modified or replaced",
                    n - 1,
                    n - 1
                )
            }));
        }
        head = ChainHead {
            records: n,
            hash: stored.to_string(),
        };
    }
    if complete.is_none() {
        return Err(VerifyError {
            line: head.records,
            reason: "the last record has no newline (a torn write)".into(),
        });
    }
    Ok(head)
}

/// [`verify_text`] of the file at `path`.
pub fn verify(path: &Path) -> Result<ChainHead, VerifyError> {
    let bytes = std::fs::read(path).map_err(|e| VerifyError {
        line: 0,
        reason: format!("cannot read {}: {e}", path.display()),
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let upto = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        VerifyError {
            line: upto.iter().filter(|&&b| b == b'\n').count() as u64 + 1,
            reason: "not UTF-8 text".into(),
        }
    })?;
    verify_text(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!(
            "sign-service-audit-{}-{name}.jsonl",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&p);
        p
    }

    fn rec(event: &'static str, wallet: &str) -> AuditRecord {
        AuditRecord {
            timestamp_ms: 1,
            event,
            wallet_id: wallet.into(),
            ..Default::default()
        }
    }

    /// A healthy log of `n` records, written across two opens (the chain continues).
    fn healthy(name: &str, n: usize) -> (PathBuf, Vec<String>) {
        let p = tmp(name);
        let log = AuditLog::open(&p).unwrap();
        for i in 0..n / 2 {
            log.append(&rec("sign_request", &format!("w{i}"))).unwrap();
        }
        drop(log);
        let log = AuditLog::open(&p).unwrap();
        for i in n / 2..n {
            log.append(&rec("sign_outcome", &format!("w{i}"))).unwrap();
        }
        assert_eq!(log.head().records, n as u64);
        let text = std::fs::read_to_string(&p).unwrap();
        (p, text.lines().map(str::to_string).collect())
    }

    fn join(lines: &[String]) -> String {
        let mut s = lines.join("\n");
        s.push('\n');
        s
    }

    #[test]
    fn check_fails_once_the_log_file_is_removed_or_replaced() {
        let d = std::env::temp_dir().join(format!("audit-check-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let p = d.join("audit.jsonl");
        let log = AuditLog::open(&p).unwrap();
        log.check().unwrap();
        std::fs::remove_file(&p).unwrap();
        let e = log.check().unwrap_err();
        assert!(e.reason.contains("gone"), "{e}");
        std::fs::write(&p, "").unwrap();
        let e = log.check().unwrap_err();
        assert!(e.reason.contains("replaced"), "{e}");
        let reopened = AuditLog::open(&p).unwrap();
        reopened.check().unwrap();
    }

    #[test]
    fn a_healthy_log_verifies() {
        let (p, lines) = healthy("healthy", 6);
        let head = verify(&p).unwrap();
        assert_eq!(head.records, 6);
        assert_eq!(head, AuditLog::open(&p).unwrap().head());
        let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(first["seq"], 1);
        assert_eq!(first["prev"], genesis());
        assert_eq!(first["event"], "sign_request");
        assert!(lines[5].ends_with("\"}"));
        assert_eq!(verify_text("").unwrap().records, 0);
    }

    #[test]
    fn edit_delete_and_reorder_are_named() {
        let (_, lines) = healthy("attacks", 6);
        // An edited record (the hash left alone).
        let mut edited = lines.clone();
        edited[2] = edited[2].replace("\"w2\"", "\"w9\"");
        assert_ne!(edited, lines);
        let e = verify_text(&join(&edited)).unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(e.reason.contains("modified"), "{e}");
        // An edited record whose own hash is recomputed: the next record names it.
        let (prefix, _) = split_hash(&edited[2]).unwrap();
        let h = hex::encode(Sha256::digest(prefix.as_bytes()));
        edited[2] = format!("{prefix}{HASH_FIELD}{h}\"}}");
        let e = verify_text(&join(&edited)).unwrap_err();
        assert_eq!(e.line, 4, "{e}");
        assert!(e.reason.contains("record 3 was modified"), "{e}");
        // A deleted record.
        let mut deleted = lines.clone();
        deleted.remove(3);
        let e = verify_text(&join(&deleted)).unwrap_err();
        assert_eq!(e.line, 4, "{e}");
        assert!(e.reason.contains("deleted"), "{e}");
        // The first record deleted.
        let e = verify_text(&join(&lines[1..])).unwrap_err();
        assert_eq!(e.line, 1, "{e}");
        // Two records swapped.
        let mut swapped = lines.clone();
        swapped.swap(1, 2);
        let e = verify_text(&join(&swapped)).unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        assert!(e.reason.contains("reordered"), "{e}");
        // Garbage and torn lines.
        let mut junk = lines.clone();
        junk.insert(5, "{not json".into());
        assert_eq!(verify_text(&join(&junk)).unwrap_err().line, 6);
        let torn = join(&lines);
        assert!(verify_text(&torn[..torn.len() - 1]).is_err());
        // An unchained (old-format) record.
        let mut old = lines;
        old[0] = r#"{"timestamp_ms":1,"event":"x","wallet_id":"w"}"#.into();
        assert!(verify_text(&join(&old))
            .unwrap_err()
            .reason
            .contains("not hash-chained"));
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_an_unchained_log_is_refused() {
        let (p, lines) = healthy("torn", 4);
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"seq\":5,\"prev\":\"ab").unwrap();
        drop(f);
        let log = AuditLog::open(&p).unwrap();
        assert_eq!(log.head().records, 4);
        log.append(&rec("sign_request", "after")).unwrap();
        let head = verify(&p).unwrap();
        assert_eq!(head.records, 5);
        assert_eq!(
            std::fs::read_to_string(&p).unwrap().lines().next().unwrap(),
            lines[0]
        );
        let old = tmp("unchained");
        std::fs::write(&old, "{\"event\":\"x\"}\n").unwrap();
        assert!(AuditLog::open(&old)
            .unwrap_err()
            .to_string()
            .contains("not hash-chained"));
    }
}
