//! `local-sign`: signs with two key-share files on this machine and verifies the result.
//!
//! Useful to check a fresh wallet (or a recovery) without any server: any two of the
//! three share files sign. Both passphrases come from the environment
//! (`WALLET_CLIENT_PASSPHRASE`, `WALLET_SERVICE_PASSPHRASE`, `WALLET_RECOVERY_PASSPHRASE`).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use mpc_core::digest::{eip191_preimage, DigestKind, SignRequest};
use mpc_core::hd::DerivationPath;
use mpc_core::local::run_sessions;
use mpc_core::signature::{
    bitcoin_der, ethereum_signature, recover_ethereum_address, verify_digest, EthereumVStyle,
};
use mpc_core::{address, Session, SessionOutput};
use wallet_cli::load_share_file;

#[derive(Parser, Debug)]
#[command(
    name = "local-sign",
    version,
    about = "Sign with two local key-share files and verify the signature"
)]
struct Args {
    /// Two key-share files (of two different parties).
    #[arg(num_args = 2, required = true)]
    shares: Vec<PathBuf>,
    /// Account id.
    #[arg(long, default_value = "account-0")]
    account: String,
    /// Non-hardened derivation path, e.g. m/44/60/0/0/0 (HD accounts).
    #[arg(long, default_value = "m")]
    path: String,
    /// A text message, signed as an Ethereum personal message (EIP-191).
    #[arg(long, conflicts_with = "preimage_hex")]
    message: Option<String>,
    /// Raw preimage bytes (hex) to hash with --digest and sign (e.g. an unsigned transaction).
    #[arg(long)]
    preimage_hex: Option<String>,
    /// Digest of the preimage: keccak256 (Ethereum), double_sha256 (Bitcoin), sha256.
    #[arg(long, default_value = "keccak256")]
    digest: String,
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<()> {
    let path = DerivationPath::parse(&args.path)?;
    let request = match (&args.message, &args.preimage_hex) {
        (Some(m), None) => SignRequest {
            preimage: eip191_preimage(m.as_bytes()),
            digest: DigestKind::Keccak256,
        },
        (None, Some(h)) => SignRequest {
            preimage: hex::decode(h.trim_start_matches("0x"))
                .context("--preimage-hex is not hex")?,
            digest: DigestKind::parse(&args.digest).with_context(|| {
                format!(
                    "unknown --digest {:?} (keccak256, double_sha256, sha256)",
                    args.digest
                )
            })?,
        },
        _ => bail!("give --message TEXT or --preimage-hex HEX"),
    };
    let bundles = args
        .shares
        .iter()
        .map(|p| load_share_file(p))
        .collect::<Result<Vec<_>>>()?;
    let mut signers: Vec<u16> = bundles.iter().map(|b| b.party_index).collect();
    if signers[0] == signers[1] {
        bail!(
            "both files belong to party {}; give two different parties' files",
            signers[0]
        );
    }
    signers.sort_unstable();
    let mut shares = Vec::new();
    let mut account = None;
    for b in &bundles {
        let acct = b.accounts.get(&args.account).with_context(|| {
            format!(
                "account {:?} not found (have: {:?})",
                args.account,
                b.accounts.keys().collect::<Vec<_>>()
            )
        })?;
        let aux = b.aux_info.as_ref().context("share file has no aux info")?;
        shares.push((b.party_index, acct.complete(aux)?));
        account.get_or_insert_with(|| acct.clone());
    }
    let account = account.context("no account")?;
    if shares
        .iter()
        .any(|(_, s)| s.core.shared_public_key != shares[0].1.core.shared_public_key)
    {
        bail!(
            "the two files hold different wallets' shares of {:?}",
            args.account
        );
    }
    let pk = account.public_key_at(&path)?;
    let started = Instant::now();
    let sid = format!("local-sign-{}", std::process::id());
    let sessions = shares
        .into_iter()
        .map(|(_, share)| {
            Session::sign(
                sid.as_bytes(),
                signers.clone(),
                share,
                (!path.is_root()).then(|| path.indices().to_vec()),
                request.data_to_sign(),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let outs = run_sessions(sessions, None)
        .map_err(|(p, e)| anyhow::anyhow!("signing failed at party {p}: {e}"))?;
    let SessionOutput::Signature(sig) = outs[0] else {
        bail!("unexpected output")
    };
    let elapsed = started.elapsed();
    let digest = request.digest_bytes();
    verify_digest(&pk, &digest, &sig).context("signature does not verify")?;
    let eth = ethereum_signature(&pk, &digest, &sig, EthereumVStyle::Legacy)?;
    let recovered = recover_ethereum_address(&digest, &eth)?;
    let addr = address::ethereum_address(&pk);
    if recovered != addr {
        bail!("recovered address {recovered} differs from {addr}");
    }
    println!("account      {} at {}", account.id, path);
    println!("signers      parties {signers:?}");
    println!("address      {addr}");
    println!("digest       0x{}", hex::encode(digest));
    println!("r            0x{}", hex::encode(eth.r));
    println!("s            0x{}", hex::encode(eth.s));
    println!("v            {}", eth.v);
    println!("signature    0x{}", hex::encode(eth.to_rsv_bytes()));
    println!("der          {}", hex::encode(bitcoin_der(&sig)?));
    println!("verified     yes (k256 verify + ecrecover -> {recovered})");
    println!("signing time {:.2}s", elapsed.as_secs_f64());
    Ok(())
}
