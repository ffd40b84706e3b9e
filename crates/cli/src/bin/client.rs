//! `client`: the user's side of the 2-of-3 wallet, talking to the cosigner
//! (`sign-service`) over gRPC and running its parties over the gateway.
//!
//! ```text
//! client create-wallet --accounts 1            # device + recovery share files
//! client list-accounts
//! client address --path m/44/60/0/0/0
//! client sign-message "hello"                  # device + cosigner
//! client --recovery sign-message "hello"       # recovery + cosigner
//! client offline-sign --message "hello"        # device + recovery, no cosigner
//! client sign-tx 02f86c...                     # unsigned Ethereum tx payload
//! client mktx --to 0x... --value 1ether --chain-id 1 --nonce 0 --gas 21000 \
//!     --max-fee-per-gas 30gwei --max-priority-fee-per-gas 1gwei   # unsigned payload
//! client send --to 0x... --value 1ether --rpc-url http://127.0.0.1:8545
//! client sign-typed-data permit.json           # EIP-712 (eth_signTypedData_v4 JSON)
//! client sign-auth --delegate 0x... --chain-id 1 --nonce 4   # EIP-7702
//! client create-wallet --kind independent      # root-key accounts (pool at the root)
//! client presign refill --target 8             # fill the presignature pool
//! client presign refill --path m/44/60/0/0/0   # HD account: the pool of that path
//! client presign status
//! client backup export --out device.backup      # encrypted backup of the device share
//! client backup import device.backup            # restore it (on another device)
//! client refresh                               # re-randomize every share (both files)
//! client replace-device --new-share-file new/client_key_shares.json   # lost device
//! client resume                                # settle an interrupted refresh
//! client sign-message "hi"                     # from the pool when possible (fast path)
//! client verify --message "hello" --signature 0x... --address 0x...
//! client btc address --network regtest --path m/84/1/0/0/5   # P2WPKH (bc1q/tb1q/bcrt1q)
//! client btc descriptor --network testnet                    # watch-only export
//! client btc sign-psbt spend.psbt --network regtest --out signed.psbt  # sign + finalize
//! ```
//!
//! Passphrases come from `--passphrase-file` / `--recovery-passphrase-file`, else
//! `WALLET_CLIENT_PASSPHRASE` (device file) and `WALLET_RECOVERY_PASSPHRASE` (recovery
//! file), else a prompt when standard input is a terminal.
//!
//! Exit codes: 0 success, 3 policy refusal, 4 unauthorized, 5 cosigner unavailable,
//! 6 timeout, 7 the transaction was mined but reverted (`send`), 1 anything else; with
//! `--json`, errors are `{"error": {"code", "message", "rule"}}`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use mpc_client::{
    new_mpc_client, AccountKind, BackupError, ChainStyle, ControlAction, DigestKind, ErrorCode,
    MpcClient, MpcConfig, MpcError, PartyRole, PayloadKind, PresignConfig, PresignMode,
    PresignPoolStatus, ProgressEvent, ProgressListener, SignedResult, WalletControls,
};
use wallet_cli::evm::{self, MkTxArgs, Node, NodeError, TxFields};
use wallet_cli::input;
use wallet_cli::{PASSPHRASE_ENV, SHARE_FILES};

#[derive(Parser, Debug)]
#[command(
    name = "client",
    version,
    about = "The user's side of the 2-of-3 threshold wallet (device and recovery shares)"
)]
struct Args {
    /// Cosigner (sign-service) gRPC URL.
    #[arg(
        long,
        env = "WALLET_COSIGNER_URL",
        default_value = "http://127.0.0.1:50051",
        global = true
    )]
    cosigner: String,
    /// Gateway URL to use instead of the one the cosigner announces.
    #[arg(long, env = "WALLET_GATEWAY_URL", global = true)]
    gateway: Option<String>,
    /// A PEM file of CA certificates trusted for https:// cosigner and gateway URLs,
    /// beside the web PKI roots (a private CA's certificate).
    #[arg(long, env = "WALLET_MPC_CA_FILE", global = true)]
    ca_file: Option<PathBuf>,
    /// The device's key-share file (passphrase from WALLET_CLIENT_PASSPHRASE).
    #[arg(long, default_value = SHARE_FILES[0], global = true)]
    share_file: PathBuf,
    /// The recovery key-share file (passphrase from WALLET_RECOVERY_PASSPHRASE).
    #[arg(long, default_value = SHARE_FILES[2], global = true)]
    recovery_file: PathBuf,
    /// A file holding the device file's passphrase (its first line break removed);
    /// overrides WALLET_CLIENT_PASSPHRASE.
    #[arg(long, global = true)]
    passphrase_file: Option<PathBuf>,
    /// A file holding the recovery file's passphrase; overrides
    /// WALLET_RECOVERY_PASSPHRASE.
    #[arg(long, global = true)]
    recovery_passphrase_file: Option<PathBuf>,
    /// Recovery mode: sign with the recovery share (and the cosigner) instead of the device.
    #[arg(long, global = true)]
    recovery: bool,
    /// Timeout of a signing session, in seconds.
    #[arg(long, default_value_t = 120, global = true)]
    timeout: u64,
    /// Timeout of each gRPC request, in seconds.
    #[arg(long, default_value_t = 30, global = true)]
    request_timeout: u64,
    /// Print results as JSON.
    #[arg(long, global = true)]
    json: bool,
    /// Fast, weak passphrase hashing for new files (tests only).
    #[arg(long, hide = true, global = true)]
    insecure_fast_kdf: bool,
    /// Accept a passphrase for new key files that fails the strength check (at least 12
    /// characters, 6 different ones).
    #[arg(long, global = true)]
    allow_weak_passphrase: bool,
    /// Presignature fast path when signing: `auto` (independent accounts at the root
    /// use the pool when it has a presignature, full signing otherwise), `off`, or
    /// `require` (an error instead of full signing).
    #[arg(long, default_value = "auto", global = true)]
    presign: String,
    /// After signing, refill the account's presignature pool to this many (0: no
    /// refill) before exiting.
    #[arg(long, default_value_t = 0, global = true)]
    refill_to: u32,
    #[command(subcommand)]
    command: Cmd,
}

/// The setup options shared by `enroll` and `create-wallet`.
#[derive(clap::Args, Debug)]
struct SetupArgs {
    /// Safe primes for the device and recovery aux info (key-gen --save-primes format).
    #[arg(long)]
    primes: Option<PathBuf>,
    /// Use the repository's PUBLIC test primes (development only; not secret-safe).
    #[arg(long)]
    insecure_dev_primes: bool,
    /// Timeout of each setup session (aux info, wallet creation), in seconds.
    #[arg(long, default_value_t = 900)]
    setup_timeout: u64,
    /// The registration credential (`wmreg1.…`) the cosigner's operator issued
    /// (`sign-service registration issue`); required unless the cosigner runs in dev
    /// mode with open registration.
    #[arg(long, env = "WALLET_REGISTRATION_CREDENTIAL", hide_env_values = true)]
    registration_credential: Option<String>,
}

impl SetupArgs {
    /// Sets the setup timeout, primes and registration credential of `cfg`.
    fn apply(&self, cfg: &mut MpcConfig) {
        cfg.setup_timeout_secs = self.setup_timeout;
        cfg.primes_path = self.primes.as_ref().map(|p| p.display().to_string());
        cfg.insecure_dev_primes = self.insecure_dev_primes;
        cfg.registration_credential = self.registration_credential.clone();
    }

    /// Warns about public test primes, or that generating primes takes minutes.
    fn primes_notice(&self) {
        primes_notice(self.insecure_dev_primes, self.primes.is_none());
    }
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Enroll this device ahead of wallet creation: registers the device and recovery
    /// identities with the cosigner and runs both parties' aux info (the minutes of
    /// prime generation and Paillier work). Stores each party's enrollment encrypted in
    /// an `enrollments/` directory next to its share file; a later `create-wallet` then
    /// takes about a second. The registration credential is consumed here.
    Enroll {
        #[command(flatten)]
        setup: SetupArgs,
    },
    /// Create a wallet with the cosigner: writes the device and recovery share files.
    ///
    /// If this device has a stored enrollment (`enroll`), the wallet is created from it
    /// by default (the one that expires first; only the DKGs run, no credential is
    /// needed, and the enrollment is removed once the shares are stored). Choose one
    /// with `--enrollment ID`, or run the whole creation with `--no-enrollment`.
    CreateWallet {
        /// Create the wallet from this stored enrollment.
        #[arg(long, conflicts_with = "no_enrollment")]
        enrollment: Option<String>,
        /// Ignore stored enrollments: run aux info and the DKGs now.
        #[arg(long)]
        no_enrollment: bool,
        /// Number of accounts (1..=100).
        #[arg(long, default_value_t = 1)]
        accounts: u32,
        /// `hd` (derive children) or `independent` (root key only).
        #[arg(long, default_value = "hd")]
        kind: String,
        /// A label for the wallet.
        #[arg(long, default_value = "")]
        label: String,
        #[command(flatten)]
        setup: SetupArgs,
    },
    /// Proactive refresh of every share (all accounts): the device and the recovery
    /// party (both files here) re-randomize their shares with the cosigner's. Addresses,
    /// public keys and xpubs stay; the old shares (and every presignature) stop working.
    /// The new shares are written as `<file>.pending`, confirmed with the cosigner, then
    /// swapped in; an interrupted refresh is settled by `resume` (or the next command).
    Refresh {
        /// Timeout of each refresh session, in seconds.
        #[arg(long, default_value_t = 900)]
        setup_timeout: u64,
    },
    /// Replace a lost device keeping every address: the recovery party (--recovery-file)
    /// and the cosigner rebuild the device share for a NEW device (a fresh identity)
    /// written to --new-share-file, then all three refresh, with new aux info. The old
    /// device identity is revoked at once; its files are left alone (delete them). Use
    /// the new file as --share-file afterwards.
    ReplaceDevice {
        /// The new device's key-share file (must not exist).
        #[arg(long)]
        new_share_file: PathBuf,
        /// A file holding the new file's passphrase; overrides
        /// WALLET_NEW_DEVICE_PASSPHRASE (else a prompt, twice, on a terminal).
        #[arg(long)]
        new_passphrase_file: Option<PathBuf>,
        /// Why, for the cosigner's audit log (at most 200 characters).
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        setup: SetupArgs,
    },
    /// Settle the pending share files an interrupted refresh or replacement left: each
    /// is swapped in if the cosigner committed its epoch, deleted if the session expired
    /// without, kept otherwise.
    Resume,
    /// List the wallet's accounts.
    ListAccounts,
    /// Show the public key and addresses of an account at a path.
    Address {
        /// Account id (default: the first account).
        #[arg(long)]
        account: Option<String>,
        /// Non-hardened derivation path.
        #[arg(long, default_value = "m")]
        path: String,
    },
    /// Sign a message as an Ethereum personal message (EIP-191) with the cosigner.
    SignMessage {
        /// The message (text); `-` reads it from standard input.
        message: Option<String>,
        /// Read the message from this file (its bytes, exactly).
        #[arg(long, conflicts_with = "message")]
        file: Option<PathBuf>,
        /// Account id (default: the first account).
        #[arg(long)]
        account: Option<String>,
        /// Non-hardened derivation path.
        #[arg(long, default_value = "m")]
        path: String,
    },
    /// Sign an unsigned Ethereum transaction (its signing payload, hex: legacy RLP, with
    /// its EIP-155 chain id, or `type ‖ rlp` for types 1-4, e.g. 0x02f8... for EIP-1559)
    /// with the cosigner; prints the signed transaction and its hash.
    SignTx {
        /// The unsigned transaction's signing payload, hex.
        tx: String,
        /// Account id (default: the first account).
        #[arg(long)]
        account: Option<String>,
        /// Non-hardened derivation path.
        #[arg(long, default_value = "m")]
        path: String,
    },
    /// Build an unsigned Ethereum transaction (alloy types) and print its signing
    /// payload, hex, for `sign-tx` or `offline-sign --tx`.
    Mktx(MkTxArgs),
    /// Send value (and calldata) from the account: nonce, gas, EIP-1559 fees and chain
    /// id come from the node; signed with the cosigner; broadcast; waits for the
    /// receipt. Exit code 7 when the transaction is mined but reverts.
    Send {
        /// Destination address.
        #[arg(long)]
        to: String,
        /// Value in wei (integer or 0x hex), or with a unit: 1.5ether, 20gwei.
        #[arg(long, default_value = "0")]
        value: String,
        /// Calldata, hex.
        #[arg(long, default_value = "")]
        data: String,
        /// The node's JSON-RPC URL (http:// or https://).
        #[arg(long, env = "WALLET_RPC_URL")]
        rpc_url: String,
        /// Seconds to wait for the receipt (0: print the hash once sent).
        #[arg(long, default_value_t = 120)]
        wait_secs: u64,
        /// Gas limit instead of the node's estimate.
        #[arg(long)]
        gas: Option<String>,
        /// Account id (default: the first account).
        #[arg(long)]
        account: Option<String>,
        /// Non-hardened derivation path.
        #[arg(long, default_value = "m")]
        path: String,
    },
    /// Sign EIP-712 typed data (the JSON of eth_signTypedData_v4) with the cosigner,
    /// which reads and hashes it itself.
    SignTypedData {
        /// The JSON file; `-` reads standard input.
        file: String,
        /// Account id (default: the first account).
        #[arg(long)]
        account: Option<String>,
        /// Non-hardened derivation path.
        #[arg(long, default_value = "m")]
        path: String,
    },
    /// Sign an EIP-7702 authorization delegating the account to a contract; prints the
    /// signed authorization for a type-4 transaction's authorization list.
    SignAuth {
        /// The delegate contract.
        #[arg(long)]
        delegate: String,
        /// Chain id (0: every chain, which cosigners refuse unless configured).
        #[arg(long)]
        chain_id: String,
        /// The account's nonce when the authorization is applied (its current nonce,
        /// plus one when the account itself sends the type-4 transaction).
        #[arg(long)]
        nonce: String,
        /// Account id (default: the first account).
        #[arg(long)]
        account: Option<String>,
        /// Non-hardened derivation path.
        #[arg(long, default_value = "m")]
        path: String,
    },
    /// Sign raw bytes (hex) hashed with --digest, with the cosigner.
    SignRaw {
        /// The preimage, hex.
        preimage: String,
        /// keccak256, double_sha256, sha256.
        #[arg(long, default_value = "keccak256")]
        digest: String,
        /// Account id (default: the first account).
        #[arg(long)]
        account: Option<String>,
        /// Non-hardened derivation path.
        #[arg(long, default_value = "m")]
        path: String,
    },
    /// Sign with the device AND recovery shares on this machine, without the cosigner.
    OfflineSign {
        /// A text message (EIP-191).
        #[arg(long, conflicts_with = "tx")]
        message: Option<String>,
        /// An unsigned Ethereum transaction payload, hex.
        #[arg(long)]
        tx: Option<String>,
        /// Account id (default: the first account).
        #[arg(long)]
        account: Option<String>,
        /// Non-hardened derivation path.
        #[arg(long, default_value = "m")]
        path: String,
    },
    /// Verify an Ethereum signature (65-byte r||s||v hex) of a message or transaction.
    Verify {
        /// The signed text message (EIP-191).
        #[arg(long, conflicts_with = "tx")]
        message: Option<String>,
        /// The signed unsigned-transaction payload, hex.
        #[arg(long)]
        tx: Option<String>,
        /// The signature, 65 bytes hex.
        #[arg(long)]
        signature: String,
        /// The expected signer address.
        #[arg(long)]
        address: String,
    },
    /// Check that the cosigner is up.
    Health,
    /// Presignature pools, one per (account, path): refill, status.
    Presign {
        #[command(subcommand)]
        action: PresignCmd,
    },
    /// Encrypted backups of a share (the key-share file format under a backup
    /// passphrase, with the wallet id): export, import. The backup passphrase comes from
    /// --backup-passphrase-file, else WALLET_BACKUP_PASSPHRASE, else a prompt.
    Backup {
        #[command(subcommand)]
        action: BackupCmd,
    },
    /// A lost or stolen device: the wallet's controls at the cosigner. Signed by the
    /// device share, or with --recovery by the recovery share (which a lost device
    /// does not take with it).
    Wallet {
        #[command(subcommand)]
        action: WalletCmd,
    },
    /// Bitcoin: native SegWit (P2WPKH) addresses and the watch-only export (xpub and
    /// descriptors for Bitcoin Core or Sparrow). Non-hardened paths only.
    Btc {
        #[command(subcommand)]
        action: BtcCmd,
    },
}

/// The environment variable holding the backup passphrase.
const BACKUP_PASSPHRASE_ENV: &str = "WALLET_BACKUP_PASSPHRASE";

#[derive(Subcommand, Debug)]
enum BackupCmd {
    /// Write an encrypted backup of the device share (with --recovery: the recovery
    /// share) to --out (never overwritten). Browsers' `exportBackup` files are the same.
    Export {
        /// The backup file to write.
        #[arg(long)]
        out: PathBuf,
        /// A file holding the backup passphrase; overrides WALLET_BACKUP_PASSPHRASE.
        #[arg(long)]
        backup_passphrase_file: Option<PathBuf>,
    },
    /// Restore a backup into the share file of its party (the device's --share-file or
    /// the --recovery-file), encrypted under that file's passphrase. Refuses a backup
    /// that does not open and another wallet's share in the way; the identical share
    /// again is accepted without writing.
    Import {
        /// The backup file.
        file: PathBuf,
        /// A file holding the backup passphrase; overrides WALLET_BACKUP_PASSPHRASE.
        #[arg(long)]
        backup_passphrase_file: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum WalletCmd {
    /// Whether the wallet is frozen, and which identities are revoked.
    Status,
    /// Revoke the device identity at once: the cosigner refuses everything it signs
    /// from now on and deletes its presignatures. With --recovery (the device is lost),
    /// or from the device itself (retiring it). Cannot be undone.
    RevokeDevice {
        /// Why, for the cosigner's audit log (at most 200 characters).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Freeze the wallet: the cosigner signs nothing until an unfreeze takes effect.
    Freeze {
        /// Why, for the cosigner's audit log (at most 200 characters).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Ask to unfreeze (--recovery only): takes effect after the cosigner's delay
    /// (`unfreeze_delay_secs`); a freeze meanwhile cancels it.
    Unfreeze,
}

#[derive(Subcommand, Debug)]
enum BtcCmd {
    /// The P2WPKH address of an account at a path.
    Address {
        /// Account id (default: the first account).
        #[arg(long)]
        account: Option<String>,
        /// Non-hardened derivation path (default: the first receive address,
        /// m/84/0/0/0/0 on mainnet, m/84/1/0/0/0 on the test networks).
        #[arg(long)]
        path: Option<String>,
        /// mainnet, testnet, signet or regtest.
        #[arg(long, default_value = "mainnet")]
        network: String,
    },
    /// The account's xpub and its receive and change descriptors
    /// (`wpkh([fingerprint/path]xpub/0/*)#checksum`), for `importdescriptors`.
    Descriptor {
        /// Account id (default: the first account).
        #[arg(long)]
        account: Option<String>,
        /// Non-hardened account path (default: m/84/0/0 on mainnet, m/84/1/0 on the
        /// test networks).
        #[arg(long)]
        account_path: Option<String>,
        /// mainnet, testnet, signet or regtest.
        #[arg(long, default_value = "mainnet")]
        network: String,
    },
    /// Sign every input of a PSBT (BIP-174 v0 or BIP-370 v2, P2WPKH inputs of this
    /// wallet) and finalize it: prints the signed PSBT (base64), the transaction (hex,
    /// for `sendrawtransaction`) and its txid. Each input is signed with the cosigner
    /// (from its path's presignature pool when there is one), or with --offline by the
    /// device and recovery shares. A PSBT with a foreign input, a missing witness UTXO or
    /// an unsupported script is refused before anything is signed.
    SignPsbt {
        /// The PSBT file: base64 text or binary.
        file: PathBuf,
        /// Account id (default: the first account).
        #[arg(long)]
        account: Option<String>,
        /// mainnet, testnet, signet or regtest.
        #[arg(long, default_value = "mainnet")]
        network: String,
        /// Also write the signed PSBT (base64) to this file (never overwritten).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Sign with the device AND recovery shares, without the cosigner.
        #[arg(long)]
        offline: bool,
    },
}

#[derive(Subcommand, Debug)]
enum PresignCmd {
    /// Run presignature sessions with the cosigner until the pool holds --target.
    Refill {
        /// Account id (default: the first account).
        #[arg(long)]
        account: Option<String>,
        /// The pool's derivation path: `m` for an independent account, a non-hardened
        /// BIP-44 path (e.g. m/44/60/0/0/0) for an HD account.
        #[arg(long, default_value = "m")]
        path: String,
        /// Presignatures wanted in the pool.
        #[arg(long, default_value_t = 8)]
        target: u32,
        /// Sessions run at once.
        #[arg(long, default_value_t = 2)]
        concurrency: u32,
    },
    /// Presignatures held locally and by the cosigner.
    Status {
        /// Account id (default: the first account).
        #[arg(long)]
        account: Option<String>,
        /// The pool's derivation path (see `refill`).
        #[arg(long, default_value = "m")]
        path: String,
    },
}

fn main() {
    let args = Args::parse();
    let json = args.json;
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(run(args)) {
        if e.downcast_ref::<Reverted>().is_some() {
            // The result was printed; the transaction is on chain but failed.
            eprintln!("error: {e:#}");
            std::process::exit(7);
        }
        let (code, rule) = error_code(&e);
        if json {
            let mut err = serde_json::json!({"code": code, "message": format!("{e:#}")});
            if let Some(rule) = rule {
                err["rule"] = rule.into();
            }
            println!("{}", serde_json::json!({ "error": err }));
        }
        eprintln!("error [{code}]: {e:#}");
        std::process::exit(match code {
            ErrorCode::PolicyDenied => 3,
            ErrorCode::Unauthorized => 4,
            ErrorCode::CosignerUnavailable => 5,
            ErrorCode::Timeout => 6,
            ErrorCode::TlsFailed => 8,
            _ => 1,
        });
    }
}

/// The error's code (the wallet's one vocabulary, `docs/errors.md`) and, for a policy
/// refusal, the rule. Errors of the command line itself (arguments, environment) are
/// `invalid_input`.
fn error_code(e: &anyhow::Error) -> (ErrorCode, Option<String>) {
    for c in e.chain() {
        if let Some(m) = c.downcast_ref::<MpcError>() {
            return (m.code(), m.rule().map(str::to_string));
        }
        if let Some(n) = c.downcast_ref::<NodeError>() {
            return (n.code, None);
        }
        if let Some(b) = c.downcast_ref::<BackupError>() {
            return (b.code(), None);
        }
    }
    (ErrorCode::InvalidInput, None)
}

/// `send`: the transaction was mined and reverted (exit code 7; the result, with
/// `status` 0, is printed already).
#[derive(Debug)]
struct Reverted;

impl std::fmt::Display for Reverted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the transaction reverted")
    }
}

impl std::error::Error for Reverted {}

/// The passphrase of party `i` (0 device, 2 recovery): its `--…-passphrase-file`, its
/// environment variable, or a prompt on a terminal (twice when `confirm`).
fn pass(args: &Args, i: usize, confirm: bool) -> Result<Option<String>> {
    let (file, label) = match i {
        0 => (args.passphrase_file.as_deref(), "device"),
        _ => (args.recovery_passphrase_file.as_deref(), "recovery"),
    };
    Ok(input::passphrase(
        file,
        PASSPHRASE_ENV[i],
        label,
        true,
        confirm,
    )?)
}

/// A passphrase that is needed: `pass`, or an error naming where it may come from.
fn need_pass(args: &Args, i: usize, why: &str, confirm: bool) -> Result<String> {
    match pass(args, i, confirm)? {
        Some(p) => Ok(p),
        None => {
            let flag = if i == 0 {
                "--passphrase-file"
            } else {
                "--recovery-passphrase-file"
            };
            Err(MpcError::config(format!(
                "{} is not set; {why} needs it (e.g. `export {}=...`, or {flag} FILE)",
                PASSPHRASE_ENV[i], PASSPHRASE_ENV[i]
            ))
            .into())
        }
    }
}

/// A passphrase that is not needed: from a file or the environment, never a prompt.
fn optional_pass(args: &Args, i: usize) -> Result<Option<String>> {
    let file = match i {
        0 => args.passphrase_file.as_deref(),
        _ => args.recovery_passphrase_file.as_deref(),
    };
    Ok(input::passphrase(
        file,
        PASSPHRASE_ENV[i],
        "",
        false,
        false,
    )?)
}

/// The backup passphrase: `--backup-passphrase-file`, WALLET_BACKUP_PASSPHRASE, or a
/// prompt on a terminal (twice for a new backup).
fn backup_pass(file: Option<&std::path::Path>, confirm: bool) -> Result<String> {
    input::passphrase(file, BACKUP_PASSPHRASE_ENV, "backup", true, confirm)?.ok_or_else(|| {
        MpcError::config(format!(
            "{BACKUP_PASSPHRASE_ENV} is not set; the backup needs its passphrase \
             (e.g. `export {BACKUP_PASSPHRASE_ENV}=...`, or --backup-passphrase-file FILE)"
        ))
        .into()
    })
}

/// `backup export` / `backup import`.
async fn backup(args: &Args, role: PartyRole, action: &BackupCmd) -> Result<()> {
    match action {
        BackupCmd::Export {
            out,
            backup_passphrase_file,
        } => {
            if out.exists() {
                return Err(MpcError::WalletExists {
                    path: out.display().to_string(),
                }
                .into());
            }
            let cfg = config(
                args,
                role,
                role == PartyRole::Device,
                role == PartyRole::Recovery,
                "backup export",
            )?;
            let pass = backup_pass(backup_passphrase_file.as_deref(), true)?;
            let client = new_mpc_client(cfg)?;
            let bytes = client.export_backup(role, pass).await?;
            if out.exists() {
                bail!("{} appeared meanwhile; not overwritten", out.display());
            }
            mpc_core::keystore::write_atomically(out, &bytes)
                .with_context(|| format!("cannot write {}", out.display()))?;
            let wallet_id = client.wallet_id().await?;
            if args.json {
                let j = serde_json::json!({
                    "path": out.display().to_string(),
                    "wallet_id": wallet_id,
                    "party_index": role.index(),
                    "bytes": bytes.len(),
                });
                println!("{j}");
            } else {
                println!(
                    "Backup of the {} share of wallet {wallet_id} written to {}",
                    if role == PartyRole::Device {
                        "device"
                    } else {
                        "recovery"
                    },
                    out.display()
                );
                println!(
                    "Keep the backup passphrase apart from the file: together they are the share."
                );
            }
        }
        BackupCmd::Import {
            file,
            backup_passphrase_file,
        } => {
            let bytes = std::fs::read(file)
                .map_err(|e| MpcError::input(format!("cannot read {}: {e}", file.display())))?;
            // The header names the party in clear: its file's passphrase is the one needed.
            let party = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("party_index").and_then(|p| p.as_u64()));
            let (device, recovery) = (party == Some(0), party == Some(2));
            let pass = backup_pass(backup_passphrase_file.as_deref(), false)?;
            let cfg = config(args, PartyRole::Device, device, recovery, "backup import")?;
            let client = new_mpc_client(cfg)?;
            let done = client.import_backup(bytes, pass).await?;
            if args.json {
                println!("{}", serde_json::to_string(&done)?);
            } else {
                let what = if done.already_present {
                    "already holds this share; nothing written"
                } else {
                    "restored"
                };
                println!(
                    "{}: {what} (wallet {}, party {}, {} account(s))",
                    done.path,
                    done.wallet_id,
                    done.party_index,
                    done.accounts.len()
                );
            }
        }
    }
    Ok(())
}

/// The environment variable holding the new device file's passphrase
/// (`replace-device`).
const NEW_DEVICE_PASSPHRASE_ENV: &str = "WALLET_NEW_DEVICE_PASSPHRASE";

/// `refresh`, `replace-device`, `resume`.
async fn lifecycle(args: &Args, role: PartyRole) -> Result<()> {
    let result = match &args.command {
        Cmd::Refresh { setup_timeout } => {
            let mut cfg = config(args, role, true, true, "refresh")?;
            cfg.setup_timeout_secs = *setup_timeout;
            let client = new_mpc_client(cfg)?;
            eprintln!("Refreshing every share with the cosigner...");
            client.refresh_shares(Some(stderr_progress())).await?
        }
        Cmd::ReplaceDevice {
            new_share_file,
            new_passphrase_file,
            reason,
            setup,
        } => {
            let mut cfg = config(args, PartyRole::Recovery, false, true, "replace-device")?;
            setup.apply(&mut cfg);
            let new_pass = input::passphrase(
                new_passphrase_file.as_deref(),
                NEW_DEVICE_PASSPHRASE_ENV,
                "new device",
                true,
                true,
            )?
            .ok_or_else(|| {
                MpcError::config(format!(
                    "{NEW_DEVICE_PASSPHRASE_ENV} is not set; the new device's file needs a                      passphrase (or --new-passphrase-file FILE)"
                ))
            })?;
            setup.primes_notice();
            let client = new_mpc_client(cfg)?;
            eprintln!("Replacing the device (the old device identity is revoked now)...");
            client
                .replace_device(
                    new_share_file.display().to_string(),
                    new_pass,
                    reason.clone(),
                    Some(stderr_progress()),
                )
                .await?
        }
        _ => {
            let cfg = config(args, role, false, false, "resume")?;
            let client = new_mpc_client(cfg)?;
            let settled = client.resume_lifecycle().await?;
            if args.json {
                println!("{}", serde_json::to_string(&settled)?);
            } else {
                for s in &settled {
                    println!("{}: {:?}", s.path, s.outcome);
                }
            }
            return Ok(());
        }
    };
    if args.json {
        println!("{}", serde_json::to_string(&result)?);
    } else {
        println!(
            "{} committed: wallet {} now at share epoch {} ({:.1}s)",
            result.kind,
            result.wallet_id,
            result.epoch,
            result.elapsed_ms as f64 / 1000.0
        );
        for a in &result.accounts {
            println!(
                "  {}  ethereum {} (unchanged)",
                a.account_id, a.ethereum_address
            );
        }
        for f in &result.files {
            println!("  new shares in {f}");
        }
    }
    Ok(())
}

/// (stage, party, account, steps done) of the last line printed per stream.
type ProgressKey = (String, Option<u16>, Option<String>, u32);

/// Prints progress lines on stderr (one per new round of each party/stage).
struct StderrProgress {
    last: Mutex<Vec<ProgressKey>>,
}

impl ProgressListener for StderrProgress {
    fn on_progress(&self, ev: ProgressEvent) {
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        let key = (ev.stage.clone(), ev.party, ev.account_id.clone());
        if let Some(entry) = last
            .iter_mut()
            .find(|e| (e.0.clone(), e.1, e.2.clone()) == key)
        {
            if entry.3 == ev.done && !ev.finished {
                return;
            }
            entry.3 = ev.done;
        } else {
            last.push((ev.stage.clone(), ev.party, ev.account_id.clone(), ev.done));
        }
        let who = match ev.party {
            Some(0) => " device",
            Some(2) => " recovery",
            _ => "",
        };
        let acct = ev
            .account_id
            .as_deref()
            .map(|a| format!(" {a}"))
            .unwrap_or_default();
        let state = if ev.finished { " done" } else { "" };
        eprintln!("[{}{who}{acct}] {}/{}{state}", ev.stage, ev.done, ev.total);
    }
}

fn stderr_progress() -> Arc<StderrProgress> {
    Arc::new(StderrProgress {
        last: Mutex::new(Vec::new()),
    })
}

/// Warns about public test primes, or that generating primes takes minutes.
fn primes_notice(insecure_dev_primes: bool, generate: bool) {
    if insecure_dev_primes {
        eprintln!("WARNING: using the repository's PUBLIC test primes (--insecure-dev-primes).");
        eprintln!("         These keys are for development only: do not send funds to them.");
    } else if generate {
        eprintln!("Generating 2 x 4 safe primes of 1536 bits (this takes minutes)...");
    }
}

/// A client for signing, with session progress on stderr and the presignature mode
/// of `--presign`.
fn signing_client(cfg: MpcConfig, args: &Args) -> Result<MpcClient> {
    let client = new_mpc_client(cfg)?;
    client.set_progress_listener(stderr_progress());
    let mode = match args.presign.as_str() {
        "auto" => PresignMode::Auto,
        "off" => PresignMode::Off,
        "require" => PresignMode::Require,
        other => bail!("--presign must be auto, off or require, not {other:?}"),
    };
    client.set_presign_config(PresignConfig {
        mode,
        pool_target: args.refill_to,
        low_water: args.refill_to,
        // A CLI process exits after the command: refills run only with --refill-to,
        // and are waited for (see `finish_signing`).
        auto_refill: args.refill_to > 0,
        ..PresignConfig::default()
    })?;
    Ok(client)
}

/// Prints the signature, then waits for a refill started by --refill-to.
async fn finish_signing(client: &MpcClient, args: &Args, sig: &SignedResult) -> Result<()> {
    print_signature(args.json, sig)?;
    if args.refill_to > 0 {
        client.wait_refills().await;
    }
    Ok(())
}

fn print_pool(json: bool, s: &PresignPoolStatus) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(s)?);
        return Ok(());
    }
    let opt = |v: Option<u32>| v.map(|v| v.to_string()).unwrap_or_else(|| "?".into());
    println!(
        "account      {} at {} (signers {:?})",
        s.account_id, s.path, s.signers
    );
    println!("local        {}", s.local);
    println!(
        "cosigner     {} ready, {} running, cap {}",
        opt(s.cosigner),
        s.cosigner_running,
        s.cosigner_cap
    );
    println!("usable       {}", opt(s.usable));
    if s.generated + s.failed + s.discarded > 0 {
        println!(
            "this call    {} generated, {} failed, {} discarded in {:.1}s",
            s.generated,
            s.failed,
            s.discarded,
            s.elapsed_ms as f64 / 1000.0
        );
    }
    Ok(())
}

/// The client over the existing share files (the commands that read a wallet).
fn open_wallet(
    args: &Args,
    role: PartyRole,
    need_device: bool,
    need_recovery: bool,
) -> Result<MpcClient> {
    let cfg = config(
        args,
        role,
        need_device,
        need_recovery,
        "opening the share file",
    )?;
    Ok(new_mpc_client(cfg)?)
}

fn config(
    args: &Args,
    role: PartyRole,
    need_device: bool,
    need_recovery: bool,
    why: &str,
) -> Result<MpcConfig> {
    // New key files (create-wallet, enroll) get their passphrase typed twice.
    let confirm = matches!(
        args.command,
        Cmd::CreateWallet { .. }
            | Cmd::Enroll { .. }
            | Cmd::Backup {
                action: BackupCmd::Import { .. }
            }
    );
    let device_pass = if need_device {
        need_pass(args, 0, why, confirm)?
    } else {
        optional_pass(args, 0)?.unwrap_or_default()
    };
    let recovery_pass = if need_recovery {
        Some(need_pass(args, 2, why, confirm)?)
    } else {
        optional_pass(args, 2)?
    };
    let mut cfg = MpcConfig::new(args.share_file.display().to_string(), device_pass);
    cfg.cosigner_url = args.cosigner.clone();
    cfg.gateway_url = args.gateway.clone();
    cfg.ca_file = args.ca_file.as_ref().map(|p| p.display().to_string());
    cfg.recovery_path = Some(args.recovery_file.display().to_string());
    cfg.recovery_passphrase = recovery_pass;
    cfg.role = role;
    cfg.sign_timeout_secs = args.timeout;
    cfg.request_timeout_secs = args.request_timeout;
    cfg.insecure_fast_kdf = args.insecure_fast_kdf;
    cfg.allow_weak_passphrase = args.allow_weak_passphrase;
    Ok(cfg)
}

async fn account_or_first(client: &MpcClient, account: Option<String>) -> Result<String> {
    if let Some(a) = account {
        return Ok(a);
    }
    let accounts = client.list_accounts().await?;
    accounts
        .first()
        .map(|a| a.account_id.clone())
        .context("the wallet has no accounts")
}

fn hex_arg(name: &str, s: &str) -> Result<Vec<u8>> {
    let s = s.trim();
    let s = s.strip_prefix("0x").unwrap_or(s);
    let b = hex::decode(s).with_context(|| format!("{name} is not hex"))?;
    if b.is_empty() {
        bail!("{name} is empty");
    }
    Ok(b)
}

/// A signed transaction: the signature, then the transaction itself.
fn print_transaction(json: bool, t: &mpc_client::SignedTransaction) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(t)?);
        return Ok(());
    }
    print_signature(false, &t.signature)?;
    println!("tx type      {}", t.tx_type);
    println!("tx hash      {}", t.transaction_hash);
    println!("signed tx    {}", t.raw_transaction);
    Ok(())
}

fn print_signature(json: bool, sig: &SignedResult) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(sig)?);
        return Ok(());
    }
    println!("account      {} at {}", sig.account_id, sig.derivation_path);
    println!("signers      parties {:?}", sig.signers);
    println!("address      {}", sig.ethereum_address);
    println!("digest       0x{}", sig.digest);
    println!("r            0x{}", sig.r);
    println!("s            0x{}", sig.s);
    println!("y_parity     {}", sig.y_parity);
    println!("v            {}", sig.v);
    println!("signature    0x{}", sig.rsv);
    println!("der          {}", sig.der);
    if !sig.request_id.is_empty() {
        println!("request id   {}", sig.request_id);
    }
    println!("verified     yes (k256 verify + ecrecover)");
    println!(
        "fast path    {}",
        if sig.presigned {
            "yes (presignature)"
        } else {
            "no (full signing)"
        }
    );
    println!("signing time {:.3}s", sig.elapsed_ms as f64 / 1000.0);
    Ok(())
}

/// The controls for a person.
fn print_controls(c: &WalletControls) {
    match (c.frozen, c.unfreeze_at_ms) {
        (false, _) => println!("  frozen          no"),
        (true, None) => println!(
            "  frozen          yes, since {} ms (the recovery party can ask to unfreeze)",
            c.frozen_at_ms.unwrap_or(0)
        ),
        (true, Some(t)) => println!("  frozen          yes, until {t} ms (unfreeze requested)"),
    }
    if c.revoked_parties.is_empty() {
        println!("  revoked         none");
    } else {
        let names: Vec<&str> = c
            .revoked_parties
            .iter()
            .map(|p| match p {
                0 => "device (party 0)",
                2 => "recovery (party 2)",
                _ => "other",
            })
            .collect();
        println!("  revoked         {}", names.join(", "));
    }
}

async fn run(args: Args) -> Result<()> {
    let role = if args.recovery {
        PartyRole::Recovery
    } else {
        PartyRole::Device
    };
    let (need_device, need_recovery) = (role == PartyRole::Device, role == PartyRole::Recovery);
    match &args.command {
        Cmd::Enroll { setup } => {
            let mut cfg = config(&args, PartyRole::Device, true, true, "enroll")?;
            setup.apply(&mut cfg);
            setup.primes_notice();
            let client = new_mpc_client(cfg)?;
            let e = client.enroll_device(Some(stderr_progress())).await?;
            if args.json {
                println!("{}", serde_json::to_string(&e)?);
            } else {
                println!("Enrolled: enrollment {}", e.enrollment_id);
                println!("  stored at {}", e.path);
                if e.expires_at_ms > 0 {
                    println!(
                        "  usable until {} (ms since the Unix epoch); create-wallet uses it by default",
                        e.expires_at_ms
                    );
                }
            }
        }
        Cmd::CreateWallet {
            enrollment,
            no_enrollment,
            accounts,
            kind,
            label,
            setup,
        } => {
            let kind = match kind.as_str() {
                "hd" => AccountKind::Hd,
                "independent" => AccountKind::Independent,
                other => bail!("--kind must be `hd` or `independent`, not {other:?}"),
            };
            let mut cfg = config(&args, PartyRole::Device, true, true, "create-wallet")?;
            setup.apply(&mut cfg);
            let client = new_mpc_client(cfg)?;
            let enrollment = match (enrollment, no_enrollment) {
                (Some(id), _) => Some(id.clone()),
                (None, true) => None,
                (None, false) => {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_millis() as u64)
                        .unwrap_or(0);
                    client
                        .list_enrollments()?
                        .into_iter()
                        .find(|e| e.expires_at_ms == 0 || e.expires_at_ms > now)
                        .map(|e| e.enrollment_id)
                }
            };
            match &enrollment {
                Some(id) => eprintln!("Creating the wallet from enrollment {id} (DKGs only)..."),
                None => setup.primes_notice(),
            }
            let listener = stderr_progress();
            let w = client
                .create_wallet_with(*accounts, kind, label.clone(), enrollment, Some(listener))
                .await?;
            if args.json {
                println!("{}", serde_json::to_string(&w)?);
            } else {
                println!(
                    "Created wallet {} with {} account(s) in {:.1}s:",
                    w.wallet_id,
                    w.accounts.len(),
                    w.elapsed_ms as f64 / 1000.0
                );
                for a in &w.accounts {
                    println!(
                        "  {}  public key {}  ethereum {}",
                        a.account_id, a.public_key, a.ethereum_address
                    );
                }
                println!(
                    "  device share    {}  (passphrase from {})",
                    w.key_share_path, PASSPHRASE_ENV[0]
                );
                println!(
                    "  recovery share  {}  (passphrase from {})",
                    w.recovery_path, PASSPHRASE_ENV[2]
                );
                println!("Move the recovery file to another machine: with the cosigner it replaces a lost device,");
                println!("and with the device it signs without the cosigner (offline-sign).");
            }
        }
        Cmd::Backup { action } => backup(&args, role, action).await?,
        Cmd::Refresh { .. } | Cmd::ReplaceDevice { .. } | Cmd::Resume => {
            lifecycle(&args, role).await?
        }
        Cmd::Wallet { action } => {
            let client = open_wallet(&args, role, need_device, need_recovery)?;
            let (controls, done) = match action {
                WalletCmd::Status => (client.wallet_control(ControlAction::Status).await?, None),
                WalletCmd::RevokeDevice { reason } => (
                    client
                        .wallet_control(ControlAction::RevokeDevice {
                            reason: reason.clone(),
                        })
                        .await?,
                    Some("device identity revoked"),
                ),
                WalletCmd::Freeze { reason } => (
                    client
                        .wallet_control(ControlAction::Freeze {
                            reason: reason.clone(),
                        })
                        .await?,
                    Some("wallet frozen"),
                ),
                WalletCmd::Unfreeze => (
                    client.wallet_control(ControlAction::Unfreeze).await?,
                    Some("unfreeze requested"),
                ),
            };
            if args.json {
                println!("{}", serde_json::to_string(&controls)?);
            } else {
                if let Some(d) = done {
                    println!("{d}");
                }
                println!("wallet {}", client.wallet_id().await?);
                print_controls(&controls);
            }
        }
        Cmd::ListAccounts => {
            let client = open_wallet(&args, role, need_device, need_recovery)?;
            let accounts = client.list_accounts().await?;
            if args.json {
                println!("{}", serde_json::to_string(&accounts)?);
            } else {
                println!("wallet {}", client.wallet_id().await?);
                for a in accounts {
                    println!(
                        "  {}  {:?}  public key {}  ethereum {}",
                        a.account_id, a.kind, a.public_key, a.ethereum_address
                    );
                }
            }
        }
        Cmd::Address { account, path } => {
            let client = open_wallet(&args, role, need_device, need_recovery)?;
            let account = account_or_first(&client, account.clone()).await?;
            let info = client.get_public_key(account, path.clone()).await?;
            if args.json {
                println!("{}", serde_json::to_string(&info)?);
            } else {
                println!("account    {} at {}", info.account_id, info.derivation_path);
                println!("public key {}", info.public_key);
                println!("ethereum   {}", info.ethereum_address);
                println!("bitcoin    {}", info.bitcoin_address);
                println!("testnet    {}", info.bitcoin_testnet_address);
            }
        }
        Cmd::Btc {
            action:
                BtcCmd::SignPsbt {
                    file,
                    account,
                    network,
                    out,
                    offline,
                },
        } => {
            let network = mpc_client::bitcoin::parse_network(network)?;
            let psbt =
                std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
            if let Some(out) = out {
                if out.exists() {
                    bail!("{} exists; refusing to overwrite it", out.display());
                }
            }
            let (client, signer) = if *offline {
                let cfg = config(
                    &args,
                    PartyRole::Device,
                    true,
                    true,
                    "btc sign-psbt --offline (device + recovery)",
                )?;
                (new_mpc_client(cfg)?, mpc_client::PsbtSigner::Offline)
            } else {
                let cfg = config(&args, role, need_device, need_recovery, "signing")?;
                (
                    signing_client(cfg, &args)?,
                    mpc_client::PsbtSigner::Cosigner,
                )
            };
            let account = account_or_first(&client, account.clone()).await?;
            let signed = client.sign_psbt(account, psbt, network, signer).await?;
            if let Some(out) = out {
                std::fs::write(out, format!("{}\n", signed.psbt_base64))
                    .with_context(|| format!("writing {}", out.display()))?;
            }
            if args.json {
                println!("{}", serde_json::to_string(&signed)?);
            } else {
                let pooled = signed.inputs.iter().filter(|i| i.presigned).count();
                println!(
                    "signed     {} input(s) ({} from pools) on {} in {} ms, fee {} sat",
                    signed.inputs.len(),
                    pooled,
                    signed.network,
                    signed.elapsed_ms,
                    signed.fee_sats
                );
                println!("txid       {}", signed.txid);
                println!("psbt       {}", signed.psbt_base64);
                println!("tx         {}", signed.tx_hex);
            }
            if args.refill_to > 0 && !*offline {
                client.wait_refills().await;
            }
        }
        Cmd::Btc { action } => {
            let network = match action {
                BtcCmd::Address { network, .. } | BtcCmd::Descriptor { network, .. } => {
                    mpc_client::bitcoin::parse_network(network)?
                }
                BtcCmd::SignPsbt { .. } => bail!("internal: btc sign-psbt has its own arm above"),
            };
            let client = open_wallet(&args, role, need_device, need_recovery)?;
            match action {
                BtcCmd::Address { account, path, .. } => {
                    let path = path
                        .clone()
                        .unwrap_or_else(|| mpc_client::bitcoin::default_address_path(network));
                    let account = account_or_first(&client, account.clone()).await?;
                    let a = client.bitcoin_address(account, path, network).await?;
                    if args.json {
                        println!("{}", serde_json::to_string(&a)?);
                    } else {
                        println!("account    {} at {} ({})", a.account_id, a.path, a.network);
                        println!("public key {}", a.public_key);
                        println!("address    {}", a.address);
                    }
                }
                BtcCmd::Descriptor {
                    account,
                    account_path,
                    ..
                } => {
                    let account = account_or_first(&client, account.clone()).await?;
                    let w = client
                        .bitcoin_watch_only(account, account_path.clone(), network)
                        .await?;
                    if args.json {
                        println!("{}", serde_json::to_string(&w)?);
                    } else {
                        println!(
                            "account     {} at {} ({})",
                            w.account_id, w.account_path, w.network
                        );
                        println!("fingerprint {}", w.fingerprint);
                        println!("xpub        {}", w.xpub);
                        println!("receive     {}", w.receive_descriptor);
                        println!("change      {}", w.change_descriptor);
                    }
                }
                BtcCmd::SignPsbt { .. } => bail!("internal: btc sign-psbt has its own arm above"),
            }
        }
        Cmd::SignMessage {
            message,
            file,
            account,
            path,
        } => {
            let message = input::message_bytes(message.as_deref(), file.as_deref())?;
            let client = signing_client(
                config(&args, role, need_device, need_recovery, "signing")?,
                &args,
            )?;
            let account = account_or_first(&client, account.clone()).await?;
            let sig = client.sign_message(account, path.clone(), message).await?;
            finish_signing(&client, &args, &sig).await?;
        }
        Cmd::SignTx { tx, account, path } => {
            let tx = mpc_client::eth::decode_transaction(&hex_arg("the transaction", tx)?)?;
            let client = signing_client(
                config(&args, role, need_device, need_recovery, "signing")?,
                &args,
            )?;
            let account = account_or_first(&client, account.clone()).await?;
            let signed = client
                .sign_unsigned_transaction(account, path.clone(), tx)
                .await?;
            print_transaction(args.json, &signed)?;
            if args.refill_to > 0 {
                client.wait_refills().await;
            }
        }
        Cmd::Mktx(a) => {
            let fields = a.fields()?;
            let tx = fields.build()?;
            let payload = format!("0x{}", hex::encode(tx.signing_payload()));
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"tx_type": tx.tx_type(), "unsigned_transaction": payload})
                );
            } else {
                println!("{payload}");
            }
        }
        Cmd::Send {
            to,
            value,
            data,
            rpc_url,
            wait_secs,
            gas,
            account,
            path,
        } => {
            let to = evm::parse_address("--to", to)?;
            let value = evm::parse_amount("--value", value)?;
            let data = evm::parse_data("--data", data)?;
            let gas = gas
                .as_deref()
                .map(|g| evm::parse_u64("--gas", g))
                .transpose()?;
            let node = Node::new(rpc_url)?;
            let client = signing_client(
                config(&args, role, need_device, need_recovery, "signing")?,
                &args,
            )?;
            let account = account_or_first(&client, account.clone()).await?;
            let from = client
                .get_public_key(account.clone(), path.clone())
                .await?
                .ethereum_address;
            let from = evm::parse_address("the account's address", &from)?;
            let chain_id = node.chain_id().await?;
            let nonce = node.pending_nonce(from).await?;
            let (max_fee_per_gas, max_priority_fee_per_gas) = node.eip1559_fees().await?;
            let gas = match gas {
                Some(g) => g,
                None => node.estimate_gas(from, to, value, data.clone()).await?,
            };
            let fields = TxFields {
                tx_type: 2,
                chain_id,
                nonce,
                to,
                value,
                data,
                gas,
                max_fee_per_gas,
                max_priority_fee_per_gas,
            };
            let signed = client
                .sign_unsigned_transaction(account, path.clone(), fields.build()?)
                .await?;
            let raw = hex_arg("the signed transaction", &signed.raw_transaction)?;
            let (hash, receipt) = node.send_raw(&raw, Duration::from_secs(*wait_secs)).await?;
            if format!("{hash:#x}") != signed.transaction_hash {
                bail!(
                    "the node names the transaction {hash:#x}, not {}",
                    signed.transaction_hash
                );
            }
            let out = serde_json::json!({
                "transaction_hash": signed.transaction_hash,
                "from": from.to_checksum(None),
                "to": to.to_checksum(None),
                "value": value.to_string(),
                "chain_id": chain_id,
                "nonce": nonce,
                "gas_limit": gas,
                "max_fee_per_gas": max_fee_per_gas.to_string(),
                "max_priority_fee_per_gas": max_priority_fee_per_gas.to_string(),
                "raw_transaction": signed.raw_transaction,
                "status": receipt.as_ref().map(|r| r.status),
                "receipt": receipt,
                "signature": signed.signature,
            });
            if args.json {
                println!("{out}");
            } else {
                println!("from         {}", from.to_checksum(None));
                println!("to           {}", to.to_checksum(None));
                println!("value        {value} wei");
                println!("chain id     {chain_id}, nonce {nonce}, gas {gas}");
                println!("tx hash      {}", signed.transaction_hash);
                match &receipt {
                    Some(r) => {
                        let state = if r.status == 1 { "success" } else { "REVERTED" };
                        println!("status       {} ({state})", r.status);
                        if let Some(b) = r.block_number {
                            println!("block        {b}");
                        }
                        println!(
                            "gas used     {} at {} wei",
                            r.gas_used, r.effective_gas_price
                        );
                    }
                    None => println!("status       sent (not waited for)"),
                }
            }
            if args.refill_to > 0 {
                client.wait_refills().await;
            }
            if receipt.is_some_and(|r| r.status != 1) {
                return Err(Reverted.into());
            }
        }
        Cmd::SignTypedData {
            file,
            account,
            path,
        } => {
            let json = input::read_source("the typed data", file)?;
            // Malformed typed data is refused before any key file is opened.
            wallet_evm::TypedDataPayload::parse(&json)
                .map_err(|e| MpcError::input(format!("not EIP-712 typed data: {e}")))?;
            let client = signing_client(
                config(&args, role, need_device, need_recovery, "signing")?,
                &args,
            )?;
            let account = account_or_first(&client, account.clone()).await?;
            let sig = client.sign_typed_data(account, path.clone(), json).await?;
            finish_signing(&client, &args, &sig).await?;
        }
        Cmd::SignAuth {
            delegate,
            chain_id,
            nonce,
            account,
            path,
        } => {
            let delegate = evm::parse_address("--delegate", delegate)?;
            let chain_id = evm::parse_u64("--chain-id", chain_id)?;
            let nonce = evm::parse_u64("--nonce", nonce)?;
            let client = signing_client(
                config(&args, role, need_device, need_recovery, "signing")?,
                &args,
            )?;
            let account = account_or_first(&client, account.clone()).await?;
            let auth = client
                .sign_authorization(account, path.clone(), chain_id, delegate, nonce)
                .await?;
            if args.json {
                println!("{}", serde_json::to_string(&auth)?);
            } else {
                print_signature(false, &auth.signature)?;
                // The entry of a type-4 transaction's `authorizationList`, as JSON-RPC
                // writes it.
                let entry = serde_json::json!({
                    "chainId": format!("{:#x}", chain_id),
                    "address": auth.address,
                    "nonce": format!("{:#x}", auth.nonce),
                    "yParity": format!("{:#x}", auth.y_parity),
                    "r": auth.r,
                    "s": auth.s,
                });
                println!("authorization {entry}");
            }
            if args.refill_to > 0 {
                client.wait_refills().await;
            }
        }
        Cmd::SignRaw {
            preimage,
            digest,
            account,
            path,
        } => {
            let preimage = hex_arg("the preimage", preimage)?;
            let digest = match digest.to_ascii_lowercase().replace('-', "_").as_str() {
                "keccak256" | "keccak" => DigestKind::Keccak256,
                "double_sha256" | "sha256d" => DigestKind::DoubleSha256,
                "sha256" => DigestKind::Sha256,
                other => bail!("unknown --digest {other:?} (keccak256, double_sha256, sha256)"),
            };
            let client = signing_client(
                config(&args, role, need_device, need_recovery, "signing")?,
                &args,
            )?;
            let account = account_or_first(&client, account.clone()).await?;
            let sig = client
                .sign_tx(
                    account,
                    path.clone(),
                    preimage,
                    digest,
                    PayloadKind::Raw,
                    ChainStyle::Legacy,
                )
                .await?;
            finish_signing(&client, &args, &sig).await?;
        }
        Cmd::OfflineSign {
            message,
            tx,
            account,
            path,
        } => {
            let client = new_mpc_client(config(
                &args,
                PartyRole::Device,
                true,
                true,
                "offline-sign (device + recovery)",
            )?)?;
            let account = account_or_first(&client, account.clone()).await?;
            match (message, tx) {
                (Some(m), None) => {
                    let sig = client
                        .offline_sign_message(account, path.clone(), m.as_bytes().to_vec())
                        .await?;
                    print_signature(args.json, &sig)?;
                }
                (None, Some(t)) => {
                    let tx = mpc_client::eth::decode_transaction(&hex_arg("--tx", t)?)?;
                    let signed = client
                        .offline_sign_transaction(account, path.clone(), tx)
                        .await?;
                    print_transaction(args.json, &signed)?;
                }
                _ => bail!("give --message TEXT or --tx HEX"),
            }
        }
        Cmd::Verify {
            message,
            tx,
            signature,
            address,
        } => {
            let preimage = match (message, tx) {
                (Some(m), None) => mpc_core::digest::eip191_preimage(m.as_bytes()),
                (None, Some(t)) => hex_arg("--tx", t)?,
                _ => bail!("give --message TEXT or --tx HEX"),
            };
            let recovered = mpc_client::verify_ethereum(&preimage, signature, address)?;
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"valid": true, "address": recovered})
                );
            } else {
                println!("valid: signed by {recovered}");
            }
        }
        Cmd::Presign { action } => {
            let client = signing_client(
                config(&args, role, need_device, need_recovery, "presign")?,
                &args,
            )?;
            match action {
                PresignCmd::Refill {
                    account,
                    path,
                    target,
                    concurrency,
                } => {
                    let mut cfg = client.presign_config();
                    cfg.concurrency = *concurrency;
                    client.set_presign_config(cfg)?;
                    let account = account_or_first(&client, account.clone()).await?;
                    let s = client
                        .refill_presignatures_at(account, path.clone(), *target)
                        .await?;
                    print_pool(args.json, &s)?;
                }
                PresignCmd::Status { account, path } => {
                    let account = account_or_first(&client, account.clone()).await?;
                    let s = client.presign_pool_status_at(account, path.clone()).await?;
                    print_pool(args.json, &s)?;
                }
            }
        }
        Cmd::Health => {
            let client = new_mpc_client(config(&args, PartyRole::Device, false, false, "")?)?;
            let h = client.health().await?;
            if args.json {
                println!("{}", serde_json::to_string(&h)?);
            } else {
                println!(
                    "cosigner {}: {} (version {}, backend {}, identity {})",
                    args.cosigner, h.status, h.version, h.backend, h.identity
                );
            }
        }
    }
    Ok(())
}
