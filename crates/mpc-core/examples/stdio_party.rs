//! One party over stdin/stdout, in JSON lines — used by the backend-interop test to run
//! a party built with a different big-integer backend in its own process.
//!
//! Input: a job line, then incoming messages `{"sender","broadcast","payload"}` (base64).
//! Output: `{"out":{"recipient","round","payload"}}` lines, then `{"backend","result"}`
//! or `{"error"}`.

use std::io::{BufRead, Write};

use base64::{engine::general_purpose::STANDARD as B64, Engine as _};
use mpc_core::digest::{DigestKind, SignRequest};
use mpc_core::primes::PrimeSet;
use mpc_core::{Incoming, KeyShare, Session, SessionOutput, Step};
use serde_json::{json, Value};

fn main() {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = run(&mut out);
    let line = match result {
        Ok(v) => json!({ "backend": mpc_core::BACKEND, "result": v }),
        Err(e) => json!({ "backend": mpc_core::BACKEND, "error": e }),
    };
    let _ = writeln!(out, "{line}");
}

fn field<'a>(v: &'a Value, k: &str) -> Result<&'a Value, String> {
    v.get(k).ok_or_else(|| format!("missing {k}"))
}

fn run(out: &mut impl Write) -> Result<Value, String> {
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let job: Value =
        serde_json::from_str(&lines.next().ok_or("no job")?.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    let sid = field(&job, "session_id")?
        .as_str()
        .ok_or("session_id")?
        .as_bytes()
        .to_vec();
    let u16_of = |k: &str| -> Result<u16, String> {
        field(&job, k)?
            .as_u64()
            .map(|x| x as u16)
            .ok_or_else(|| format!("{k} not a number"))
    };
    let mut session = match field(&job, "job")?.as_str() {
        Some("aux") => {
            let primes: PrimeSet = serde_json::from_value(field(&job, "primes")?.clone())
                .map_err(|e| e.to_string())?;
            let p = primes.to_pregenerated().map_err(|e| e.to_string())?;
            Session::aux_info(&sid, u16_of("me")?, u16_of("n")?, p)
        }
        Some("keygen") => Session::keygen(&sid, u16_of("me")?, u16_of("n")?, u16_of("t")?),
        Some("sign") => {
            let share: KeyShare =
                serde_json::from_value(field(&job, "share")?.clone()).map_err(|e| e.to_string())?;
            let signers: Vec<u16> = serde_json::from_value(field(&job, "signers")?.clone())
                .map_err(|e| e.to_string())?;
            let req = SignRequest {
                preimage: field(&job, "preimage")?
                    .as_str()
                    .unwrap_or_default()
                    .as_bytes()
                    .to_vec(),
                digest: DigestKind::Keccak256,
            };
            Session::sign(&sid, signers, share, None, req.data_to_sign())
        }
        other => return Err(format!("unknown job {other:?}")),
    }
    .map_err(|e| e.to_string())?;

    loop {
        let step = session.run().map_err(|e| e.to_string())?;
        for m in session.drain_outgoing() {
            let line = json!({"out": {"recipient": m.recipient, "round": m.round, "payload": B64.encode(&m.payload)}});
            writeln!(out, "{line}").map_err(|e| e.to_string())?;
        }
        out.flush().map_err(|e| e.to_string())?;
        match step {
            Step::Finished => break,
            Step::Continue => continue,
            Step::WaitingForMessages => {
                let line = lines
                    .next()
                    .ok_or("stdin closed")?
                    .map_err(|e| e.to_string())?;
                let v: Value = serde_json::from_str(&line).map_err(|e| e.to_string())?;
                let payload = B64
                    .decode(field(&v, "payload")?.as_str().unwrap_or_default())
                    .map_err(|e| e.to_string())?;
                session
                    .handle(Incoming {
                        sender: u16::try_from(field(&v, "sender")?.as_u64().unwrap_or(u64::MAX))
                            .map_err(|e| e.to_string())?,
                        broadcast: field(&v, "broadcast")?.as_bool().unwrap_or(false),
                        payload,
                    })
                    .map_err(|e| e.to_string())?;
            }
        }
    }
    let v = match session.take_output().ok_or("no output")? {
        SessionOutput::AuxInfo(a) => serde_json::to_value(&*a),
        SessionOutput::Keygen(s) => serde_json::to_value(&*s),
        SessionOutput::Signature(s) => serde_json::to_value(s),
        SessionOutput::Presignature(..)
        | SessionOutput::Refreshed(_)
        | SessionOutput::Repaired(_)
        | SessionOutput::RepairHelped => return Err("unsupported".into()),
    }
    .map_err(|e| e.to_string())?;
    Ok(v)
}
