//! The audit log of a real `sign-service` process is hash-chained: `sign-service audit
//! verify` accepts it as written, and names the first broken line (exit 1) once a
//! record is edited, deleted or moved. The chain continues across restarts.

use std::path::Path;
use std::process::Command;

use crate::common::*;
use cosigner_api::pb::AccountKind;

fn verify(file: &Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sign-service"))
        .args(["audit", "verify"])
        .arg(file)
        .output()
        .expect("run sign-service audit verify");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn create(
    client: &mut cosigner_api::pb::cosigner_client::CosignerClient<tonic::transport::Channel>,
) {
    let me = cosigner_identity(client).await;
    let (_, _, req) = signed_create_request(&me, 1, AccountKind::Hd, "");
    client.create_wallet(req).await.expect("create");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_names_an_edited_deleted_or_moved_record() {
    let gw = gateway().await;
    // No party joins: each CreateWallet leaves one `create_wallet` record.
    let mut svc = start_service(&gw, "", false).await;
    let mut client = svc.client().await;
    for _ in 0..3 {
        create(&mut client).await;
    }
    svc.restart(&[]).await;
    let mut client = svc.client().await;
    for _ in 0..3 {
        create(&mut client).await;
    }
    svc.kill();
    let log = svc.dir.0.join("audit.jsonl");
    let text = std::fs::read_to_string(&log).expect("audit log");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 6, "{text}");
    let (ok, out, err) = verify(&log);
    assert!(ok, "a healthy log failed: {err}");
    let head: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON head");
    assert_eq!(head["records"], lines.len() as u64, "{out}");

    let broken = |name: &str, lines: Vec<String>| {
        let p = svc.dir.0.join(name);
        std::fs::write(&p, lines.join("\n") + "\n").expect("write");
        let (ok, _, err) = verify(&p);
        assert!(!ok, "{name}: a broken log verified");
        err
    };
    let owned = || lines.iter().map(|l| l.to_string()).collect::<Vec<_>>();
    // Edited: the wallet id of record 2.
    let mut edited = owned();
    let v: serde_json::Value = serde_json::from_str(&edited[1]).expect("JSON");
    let id = v["wallet_id"].as_str().expect("wallet id").to_string();
    edited[1] = edited[1].replace(&id, "someone-else");
    let err = broken("edited.jsonl", edited);
    assert!(err.contains("line 2:") && err.contains("modified"), "{err}");
    // Deleted: record 4.
    let mut deleted = owned();
    deleted.remove(3);
    let err = broken("deleted.jsonl", deleted);
    assert!(err.contains("line 4:") && err.contains("deleted"), "{err}");
    // Moved: record 5 before record 3.
    let mut moved = owned();
    let r5 = moved.remove(4);
    moved.insert(2, r5);
    let err = broken("moved.jsonl", moved);
    assert!(
        err.contains("line 3:") && err.contains("reordered"),
        "{err}"
    );
}
