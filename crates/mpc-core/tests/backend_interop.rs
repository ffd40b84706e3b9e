//! Interop between big-integer backends: party 1 runs in a separate process built with
//! GMP (`backend-rug`), parties 0 and 2 run here with the pure-Rust backend. Aux info,
//! DKG and signing cross the process boundary as serialized protocol messages, and the
//! GMP party's key share is serialized by one backend and deserialized by the other.
//!
//! The test builds the GMP party itself (`cargo build --example stdio_party
//! --no-default-features --features backend-rug`), which needs libgmp-dev.

mod common;

use std::io::{BufRead, BufReader, Write};

use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};

use base64::{engine::general_purpose::STANDARD as B64, Engine as _};
use mpc_core::digest::{DigestKind, SignRequest};
use mpc_core::primes::dev_fixture_primes;
use mpc_core::signature::verify_digest;
use mpc_core::{Incoming, KeyShare, Session, SessionOutput};
use serde_json::{json, Value};

fn gmp_party_binary() -> PathBuf {
    // target/<profile>/deps/backend_interop-xxxx -> target/
    let exe = std::env::current_exe().expect("current exe");
    let target = exe
        .parent()
        .and_then(|p| p.parent())
        .and_then(|p| p.parent())
        .expect("target dir")
        .to_path_buf();
    // Same target dir: dependencies built with GMP (also used by the cosigner) are shared.
    let interop_target = target.clone();
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--quiet",
            "-p",
            "mpc-core",
            "--example",
            "stdio_party",
            "--no-default-features",
            "--features",
            "backend-rug",
            "--target-dir",
        ])
        .arg(&interop_target)
        .current_dir(std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo test"))
        .status()
        .expect("run cargo");
    assert!(
        status.success(),
        "building the GMP party failed (is libgmp-dev installed?)"
    );
    interop_target
        .join("debug")
        .join("examples")
        .join("stdio_party")
}

struct Remote {
    child: Child,
    /// Lines for the remote's stdin, written by a separate thread so that a full pipe in
    /// one direction can never deadlock against a full pipe in the other.
    stdin: std::sync::mpsc::Sender<String>,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
    me: u16,
}

impl Remote {
    fn start(bin: &PathBuf, me: u16, job: Value) -> Self {
        let mut child = Command::new(bin)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn GMP party");
        let mut pipe: ChildStdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (stdin, rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in rx {
                if writeln!(pipe, "{line}").and_then(|_| pipe.flush()).is_err() {
                    break;
                }
            }
        });
        stdin.send(job.to_string()).unwrap();
        Remote {
            child,
            stdin,
            lines,
            me,
        }
    }
}

/// Runs local sessions together with one remote party until all finish. Returns the
/// local outputs and the remote's result JSON.
fn drive(mut local: Vec<Session>, mut remote: Remote) -> (Vec<SessionOutput>, Value) {
    let mut remote_result = None;
    loop {
        // Local parties.
        for k in 0..local.len() {
            let from = local[k].me();
            local[k].run().expect("local session");
            for m in local[k].drain_outgoing() {
                for s in local.iter_mut() {
                    let to = s.me();
                    if to != from && m.recipient.is_none_or(|r| r == to) {
                        s.handle(Incoming {
                            sender: from,
                            broadcast: m.recipient.is_none(),
                            payload: m.payload.clone(),
                        })
                        .unwrap();
                    }
                }
                if m.recipient.is_none_or(|r| r == remote.me) {
                    let line = json!({"sender": from, "broadcast": m.recipient.is_none(), "payload": B64.encode(&m.payload)});
                    remote.stdin.send(line.to_string()).unwrap();
                }
            }
        }
        if remote_result.is_some() && local.iter().all(Session::is_finished) {
            break;
        }
        // Remote party: read lines until it waits (we can't know, so read what is
        // available after each local round: the remote flushes all its messages, then
        // blocks on stdin; we read exactly until a line shows it's done or until local
        // sessions need input).
        if remote_result.is_none() {
            let line = remote.lines.next().expect("remote closed").unwrap();
            let v: Value = serde_json::from_str(&line).unwrap();
            if let Some(out) = v.get("out") {
                let payload = B64.decode(out["payload"].as_str().unwrap()).unwrap();
                let recipient = out["recipient"].as_u64().map(|r| r as u16);
                for s in local.iter_mut() {
                    if recipient.is_none_or(|r| r == s.me()) {
                        s.handle(Incoming {
                            sender: remote.me,
                            broadcast: recipient.is_none(),
                            payload: payload.clone(),
                        })
                        .unwrap();
                    }
                }
            } else {
                assert_eq!(v["backend"], "rug (GMP)", "remote party must run on GMP");
                assert!(v.get("error").is_none(), "remote failed: {v}");
                remote_result = Some(v["result"].clone());
            }
        }
    }
    let _ = remote.child.wait();
    let outs = local.iter_mut().map(|s| s.take_output().unwrap()).collect();
    (outs, remote_result.unwrap())
}

#[test]
fn gmp_and_pure_rust_parties_generate_and_sign_together() {
    assert_eq!(mpc_core::BACKEND, "num-bigint (pure Rust)");
    let bin = gmp_party_binary();
    let primes = dev_fixture_primes();

    // Aux info: parties 0 and 2 here, party 1 on GMP.
    let local = [0u16, 2]
        .iter()
        .map(|&i| {
            Session::aux_info(
                b"interop-aux",
                i,
                3,
                primes[usize::from(i)].to_pregenerated().unwrap(),
            )
            .unwrap()
        })
        .collect();
    let remote = Remote::start(
        &bin,
        1,
        json!({"job": "aux", "session_id": "interop-aux", "me": 1, "n": 3, "primes": primes[1]}),
    );
    let (outs, remote_aux) = drive(local, remote);
    let mut aux: Vec<mpc_core::AuxInfo> = outs
        .into_iter()
        .map(|o| match o {
            SessionOutput::AuxInfo(a) => *a,
            _ => panic!(),
        })
        .collect();
    let remote_aux: mpc_core::AuxInfo =
        serde_json::from_value(remote_aux).expect("GMP aux info deserializes in num-bigint");
    aux.insert(1, remote_aux);

    // DKG.
    let local = [0u16, 2]
        .iter()
        .map(|&i| Session::keygen(b"interop-dkg", i, 3, 2).unwrap())
        .collect();
    let remote = Remote::start(
        &bin,
        1,
        json!({"job": "keygen", "session_id": "interop-dkg", "me": 1, "n": 3, "t": 2}),
    );
    let (outs, remote_share) = drive(local, remote);
    let mut shares: Vec<mpc_core::IncompleteKeyShare> = outs
        .into_iter()
        .map(|o| match o {
            SessionOutput::Keygen(s) => *s,
            _ => panic!(),
        })
        .collect();
    shares.insert(1, serde_json::from_value(remote_share).unwrap());
    let complete: Vec<KeyShare> = shares
        .into_iter()
        .zip(aux)
        .map(|(s, a)| KeyShare::from_parts((s, a)).unwrap())
        .collect();
    let pk = *complete[0].core.shared_public_key;
    assert_eq!(pk, *complete[1].core.shared_public_key);

    // Signing: device (pure Rust) with the GMP cosigner, then GMP cosigner with recovery.
    for (local_party, sid) in [(0u16, "interop-sign-01"), (2u16, "interop-sign-12")] {
        let signers = if local_party == 0 {
            vec![0, 1]
        } else {
            vec![1, 2]
        };
        let req = SignRequest {
            preimage: sid.as_bytes().to_vec(),
            digest: DigestKind::Keccak256,
        };
        let local = vec![Session::sign(
            sid.as_bytes(),
            signers.clone(),
            complete[usize::from(local_party)].clone(),
            None,
            req.data_to_sign(),
        )
        .unwrap()];
        let remote = Remote::start(
            &bin,
            1,
            json!({"job": "sign", "session_id": sid, "signers": signers, "share": serde_json::to_value(&complete[1]).unwrap(), "preimage": sid}),
        );
        let (outs, remote_sig) = drive(local, remote);
        let SessionOutput::Signature(sig) = outs[0] else {
            panic!()
        };
        let remote_sig: mpc_core::Signature = serde_json::from_value(remote_sig).unwrap();
        assert_eq!(sig, remote_sig);
        verify_digest(&pk, &req.digest_bytes(), &sig).expect("verifies");
    }
}
