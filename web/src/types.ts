/** Public types of the package. */

import type { TypedDataDefinition } from "viem";

/** A `0x`-prefixed hex string (viem's `Hex`). */
export type Hex = `0x${string}`;

/** An Ethereum address, `0x`-prefixed (EIP-55 checksummed when the package returns one; viem's `Address`). */
export type Address = `0x${string}`;

/** Where the services are and how this wallet is stored. */
export interface WalletConfig {
  /** gRPC-web base URL of the cosigner (`sign-service`), e.g. `http://127.0.0.1:50051`. */
  cosignerUrl: string;
  /**
   * Gateway base URL this device uses for protocol sessions. Empty/undefined: the URL
   * the cosigner returns with each room (it may be a name only the cosigner can resolve).
   */
  gatewayUrl?: string;
  /** Recovery agent base URL (party 2), e.g. `http://127.0.0.1:7070`. Needed to create a wallet. */
  agentUrl?: string;
  /** Pairing token of the recovery agent (`Authorization: Bearer`). */
  agentToken?: string;
  /**
   * The Bitcoin network of addresses, descriptors and PSBTs when a call names none:
   * `mainnet` (default), `testnet`, `signet` or `regtest`.
   */
  bitcoinNetwork?: BitcoinNetwork;
  /** Name of the wallet in local storage (several wallets can live side by side). Default `"default"`. */
  walletName?: string;
  /**
   * Protect the key shares with this passphrase (Argon2id + XChaCha20-Poly1305, the
   * native client's file format) instead of the default non-extractable WebCrypto
   * AES-GCM key kept in IndexedDB. Needed again on every operation that uses the shares.
   */
  passphrase?: string;
  /**
   * How new key shares are protected. Default: `passphrase` when a passphrase is given
   * or the package runs inside a browser extension (where a profile copy or a script
   * running in the extension's origin would otherwise get a usable key: see the
   * README's *Storage* threat model), `webcrypto` otherwise. `webcrypto` in an extension
   * is the explicit opt-out.
   */
  protection?: "passphrase" | "webcrypto";
  /**
   * Accept a passphrase for a new wallet that fails the strength check (at least 12
   * characters, 6 different ones): the explicit override.
   */
  allowWeakPassphrase?: boolean;
  /** Tests only: cheap Argon2id parameters for the passphrase mode. */
  insecureFastKdf?: boolean;
  /**
   * Tests and demos only: use the repository's PUBLIC prime fixtures for the device's
   * aux info instead of generating fresh safe primes (minutes in wasm). A wallet created
   * like this must never hold funds.
   */
  insecureDevPrimes?: boolean;
  /** URL of `mpc_wasm_bg.wasm` (default: `../wasm/mpc_wasm_bg.wasm` next to the package). */
  wasmUrl?: string | URL;
  /** SSE transport of the wasm sessions (default `auto`). */
  transport?: "auto" | "eventsource" | "fetch";
  /** Deadline of each protocol session, ms (default: wasm's; aux info 10 min). */
  sessionTimeoutMs?: number;
  /** Deadline of the recovery agent's job, ms (default 20 min). */
  agentTimeoutMs?: number;
  /** Presignature pool of independent accounts (see {@link PresignPoolConfig}). */
  presignPool?: PresignPoolConfig;
}

/** Phases reported by progress events. */
export type Phase = "connect" | "primes" | "aux-info" | "keygen" | "agent" | "confirm" | "store" | "sign"
  // exportBackup / importBackup: Argon2id and storing
  | "backup"
  // presign-web: a presignature refill
  | "presign"
  // key lifecycle: the sessions of a refresh / replacement (aux info uses "aux-info")
  | "refresh"
  | "repair";

/** A progress report. */
export interface ProgressEvent {
  /** What is running. */
  phase: Phase;
  /** Protocol round reached in this phase (0 when not a protocol phase). */
  round: number;
  /** Rounds of the phase (0 when not a protocol phase). */
  totalRounds: number;
  /** Progress of this phase, 0..100. */
  percent: number;
  /** Overall progress of the whole operation, 0..100. */
  overallPercent: number;
  /** Account the phase concerns, if any. */
  accountId?: string;
  /** Whether the phase finished. */
  finished: boolean;
  /** Short human-readable description. */
  message: string;
  /** Milliseconds since the operation started. */
  elapsedMs: number;
}

/** Progress listener. Exceptions it throws are ignored. */
export type OnProgress = (event: ProgressEvent) => void;

/** HD (BIP-32 children, full signing) or independent (root key only). */
export type AccountKind = "hd" | "independent";

/** An account of the wallet. */
export interface AccountInfo {
  accountId: string;
  kind: AccountKind;
  /** Compressed SEC1 public key of the account's root, hex. */
  publicKey: string;
  /** EIP-55 address of the root key. */
  ethereumAddress: Address;
  chainCode?: string;
  /** Seconds since the Unix epoch. */
  createdAt: number;
}

/** Options of {@link WalletClient.createWallet}. */
export interface CreateWalletOptions {
  /** Accounts to create (1..=100). Default 1. */
  accounts?: number;
  /** Default `hd`. */
  kind?: AccountKind;
  /** Label stored with the cosigner. */
  label?: string;
  /**
   * The registration credential (`wmreg1.…`) the cosigner's operator (your backend)
   * issued for this wallet: single use, expiring. Required unless the cosigner runs in
   * dev mode with open registration; without it creation fails with
   * `registration_required`.
   */
  registrationCredential?: string;
  onProgress?: OnProgress;
  /**
   * Cancels the creation: checked before each step that contacts the cosigner or the
   * recovery agent and before the key share is stored; a running protocol session
   * (aux info, key generation) finishes its step first. Once the key share is stored the
   * creation is completed (confirmed) regardless. The call then rejects with a
   * {@link WalletError} of code `aborted`.
   */
  signal?: AbortSignal;
  /**
   * Whether to create the wallet from this browser's stored device enrollment
   * ({@link WalletClient.enrollDevice}) when there is a usable one: only the key
   * generations run (`timings.auxInfoMs` is 0, no primes are used). Default `true`;
   * `false` runs the full creation (aux info and key generations) and leaves the
   * enrollment stored. An enrollment the cosigner no longer knows fails the call with an
   * {@link EnrollmentError} and the stale record is deleted: enroll again.
   */
  enrollment?: boolean;
}

/** Options of {@link WalletClient.enrollDevice}. */
export interface EnrollDeviceOptions {
  /**
   * The registration credential (`wmreg1.…`) the cosigner's operator issued: consumed
   * by the enrollment (the wallet created from it later needs none). Required unless
   * the cosigner runs in dev mode with open registration.
   */
  registrationCredential?: string;
  /** Phases `connect`, `primes`, `aux-info`, `agent`, `store`. */
  onProgress?: OnProgress;
  /**
   * Cancels the enrollment until it is stored (a running aux-info session finishes its
   * step first); the call rejects with code `aborted` and nothing is stored.
   */
  signal?: AbortSignal;
  /** Parallel prime searches if primes must be searched (default: the config's `primeWorkers`). */
  primeWorkers?: number;
}

/** Timings of a device enrollment, ms (all 0 when a stored enrollment was returned). */
export interface EnrollTimings {
  primesMs: number;
  auxInfoMs: number;
  /** Waiting for the recovery agent to store its enrollment after the device's aux info. */
  agentMs: number;
  totalMs: number;
}

/** A device enrollment stored in this browser (see {@link WalletClient.enrollDevice}). */
export interface EnrollmentInfo {
  /** The cosigner's enrollment id. */
  enrollmentId: string;
  /** The cosigner forgets the enrollment then (ms since the Unix epoch; 0: unknown). */
  expiresAtMs: number;
  /** Whether this call returned an enrollment stored earlier (no work done). */
  reused: boolean;
  timings: EnrollTimings;
}

/** {@link WalletClient.enrollmentStatus}: whether a usable enrollment is stored. */
export type EnrollmentStatus = { state: "none" } | { state: "ready"; enrollmentId: string; expiresAtMs: number };

/** Timings of a wallet creation, ms. */
export interface CreateTimings {
  primesMs: number;
  auxInfoMs: number;
  keygenMs: number;
  confirmMs: number;
  totalMs: number;
}

/** The created wallet. */
export interface WalletInfo {
  walletId: string;
  walletName: string;
  accounts: AccountInfo[];
  /** Whether the cosigner committed its shares. */
  committed: boolean;
  /** `webcrypto` (non-extractable AES-GCM key) or `passphrase` (Argon2id). */
  protection: "webcrypto" | "passphrase";
  /** Whether the device used the public test primes. */
  insecureDevPrimes: boolean;
  timings: CreateTimings;
}

/** A public key and its addresses. */
export interface PublicKeyInfo {
  accountId: string;
  derivationPath: string;
  publicKey: string;
  ethereumAddress: Address;
  /** Native SegWit (P2WPKH) address on {@link PublicKeyInfo.bitcoinNetwork}. */
  bitcoinAddress: string;
  /** The network of `bitcoinAddress`. */
  bitcoinNetwork: BitcoinNetwork;
}

/**
 * A Bitcoin network: addresses `bc1q…` (mainnet), `tb1q…` (testnet, signet), `bcrt1q…`
 * (regtest); extended keys `xpub…` (mainnet) or `tpub…`.
 */
export type BitcoinNetwork = "mainnet" | "testnet" | "signet" | "regtest";

/** What a watch-only wallet (Bitcoin Core `importdescriptors`, Sparrow) needs. */
export interface BitcoinWatchOnly {
  accountId: string;
  network: BitcoinNetwork;
  /** The account path, e.g. `m/84/0/0` (non-hardened: the threshold key has no private key). */
  accountPath: string;
  /** The root key's fingerprint, 8 hex digits (the descriptors' key origin). */
  fingerprint: string;
  /** The extended public key at `accountPath` (`tpub…` on the test networks). */
  xpub: string;
  /** `wpkh([fingerprint/accountPath]xpub/0/*)#checksum`: receive addresses. */
  receiveDescriptor: string;
  /** `wpkh([fingerprint/accountPath]xpub/1/*)#checksum`: change addresses. */
  changeDescriptor: string;
}

/** Options of {@link WalletClient.bitcoinWatchOnly}. */
export interface BitcoinWatchOnlyOptions {
  /** Account id (an HD account); default: the first. */
  accountId?: string;
  /** Default: `m/84/0/0` on mainnet, `m/84/1/0` on the test networks. */
  accountPath?: string;
  /** Default: the config's `bitcoinNetwork`, else mainnet. */
  network?: BitcoinNetwork;
}

/** Options of {@link WalletClient.signPsbt}. */
export interface SignPsbtOptions extends Omit<SignOptions, "derivationPath"> {
  /** The network the PSBT's addresses are read in; default: the config's `bitcoinNetwork`. */
  network?: BitcoinNetwork;
}

/** One signed input of a {@link SignedPsbtResult}. */
export interface SignedPsbtInput {
  /** The input's index in the transaction. */
  index: number;
  /** Its derivation path (from the PSBT's `bip32_derivation`), e.g. `m/84/1/0/0/3`. */
  derivationPath: string;
  /** The key at that path, compressed hex. */
  publicKey: string;
  /** The amount it spends, in satoshis. */
  amountSats: number;
  /** Its BIP-143 sighash (what was signed), hex. */
  sighash: string;
  /** Whether it was signed from the presignature pool of its path. */
  presigned: boolean;
  /** The cosigner's audit reference. */
  requestId: string;
}

/** A PSBT signed by every party it needs and finalized. */
export interface SignedPsbtResult {
  network: BitcoinNetwork;
  /** 0 (BIP-174) or 2 (BIP-370): the version it was given in. */
  psbtVersion: number;
  /** The finalized PSBT, base64 (bitcoinjs-lib `Psbt.fromBase64`). */
  psbtBase64: string;
  /** The network transaction, hex (`sendrawtransaction`). */
  txHex: string;
  txid: string;
  /** The fee, in satoshis. */
  feeSats: number;
  /** Every input, in order (a PSBT is signed whole or not at all). */
  inputs: SignedPsbtInput[];
  elapsedMs: number;
}

/** Digest algorithm of a signing request. */
export type DigestKind = "keccak256" | "double_sha256" | "sha256";

/**
 * What is being signed (cosigner policy and audit): `ethereum_typed_data` (EIP-712: the
 * cosigner receives the typed data's JSON, see {@link SignPreimageOptions.cosignerPayload})
 * and `ethereum_authorization` (EIP-7702: `0x05 || rlp([chain_id, address, nonce])`);
 * `bitcoin_psbt_input` is one input of a PSBT, signed only through `signPsbt`.
 */
export type PayloadKind = "raw" | "ethereum_transaction" | "ethereum_message" | "ethereum_typed_data" | "ethereum_authorization" | "bitcoin_psbt_input";

/** Common signing options. */
export interface SignOptions {
  /** Account id; default: the wallet's first account. */
  accountId?: string;
  /** BIP-32 path (non-hardened), e.g. `m/44/60/0/0/0`; default: the root key. */
  derivationPath?: string;
  onProgress?: OnProgress;
  /**
   * Presignature fast path (the pool of the account at this path: an independent
   * account's root, or an HD account's path, e.g. `m/44/60/0/0/0`): `auto` (default)
   * signs from the pool when a presignature is available and falls back to full
   * signing otherwise; `off` always runs full signing; `require` fails with a
   * `PresignatureError` (`presignature_unavailable`) instead of falling back.
   */
  presign?: PresignMode;
  /**
   * Cancels the call: checked before each step up to the request to the cosigner (wasm
   * load, opening the key shares, taking a presignature); once the cosigner has been asked
   * to sign, the signing completes in the core. An aborted call rejects at once with a
   * {@link WalletError} of code `aborted` (any signature still produced is discarded).
   */
  signal?: AbortSignal;
}

/** Options of {@link WalletClient.signPreimage}. */
export interface SignPreimageOptions extends SignOptions {
  /**
   * `ethereum_typed_data` only (required there, refused for every other kind): the
   * UTF-8 JSON of the typed data (`eth_signTypedData_v4` form), which the cosigner
   * receives in place of the preimage, decodes and hashes itself; the digests must
   * agree. `signTypedData` builds it.
   */
  cosignerPayload?: Uint8Array;
}

/**
 * A message for EIP-191 `personal_sign`: a string is ALWAYS signed as its UTF-8 text
 * (`"0x1234"` is six characters); bytes are a `Uint8Array` or viem's `{ raw }` form
 * (`raw`: a `Uint8Array` or `0x`-hex).
 */
export type SignableMessageInput = string | Uint8Array | { raw: Uint8Array | Hex };

/** Ethereum transaction types: `eip155` is a legacy transaction with a chain id. */
export type EthTxType = "legacy" | "eip155" | "eip2930" | "eip1559" | "eip4844" | "eip7702";

/** A verified signature. */
export interface SignatureResult {
  accountId: string;
  derivationPath: string;
  /** 32-byte hex, `0x`-prefixed. */
  r: Hex;
  /** 32-byte hex (low-s), `0x`-prefixed. */
  s: Hex;
  yParity: 0 | 1;
  /** Ethereum `v` (27/28 for messages, y parity for typed transactions, EIP-155 for legacy). */
  v: number;
  /** 65-byte r‖s‖v(27/28) hex (personal_sign / eth_signTypedData form), `0x`-prefixed. */
  rsv: Hex;
  /** DER (Bitcoin) hex, no prefix. */
  der: string;
  /** The signed digest, `0x`-prefixed. */
  digest: Hex;
  /** Compressed public key of the signing key. */
  publicKey: string;
  /** EIP-55 address of the signing key. */
  ethereumAddress: Address;
  /** Keygen indices of the signers. */
  signers: number[];
  /** Cosigner's audit reference. */
  requestId: string;
  /** Wall time, ms. */
  elapsedMs: number;
  /** Whether the signature came from the presignature pool (one round trip). */
  presigned: boolean;
  /**
   * Online time of a pooled signature, ms: take + partial + cosigner round trip +
   * combine + verify (`presign.timings` breaks it down). Absent for full signing.
   */
  onlineMs?: number;
  /** Presignature details when the account is eligible and `presign` was not `off`. */
  presign?: PresignSignInfo;
}

/** A signed Ethereum transaction. */
export interface SignedTransaction extends SignatureResult {
  /** `legacy`, `eip155` (legacy with chain id), `eip2930`, `eip1559`, `eip4844` or `eip7702`. */
  txType: EthTxType;
  /**
   * Serialized signed transaction, `0x`-prefixed (ready for `eth_sendRawTransaction`;
   * a blob transaction is its signed envelope: add the sidecars for the network form).
   */
  signedTransaction: Hex;
  /** keccak-256 of the signed transaction (the transaction hash). */
  transactionHash: Hex;
}

/**
 * An EIP-7702 authorization to sign (viem's `AuthorizationRequest`): the delegate
 * contract as `address` or its alias `contractAddress`, the chain id (0: every chain)
 * and the signing account's nonce when the authorization is applied (the account's
 * current nonce + 1 when the account itself sends the type-4 transaction carrying it).
 */
export type AuthorizationRequest =
  | { address: Address; contractAddress?: undefined; chainId: number; nonce: number }
  | { contractAddress: Address; address?: undefined; chainId: number; nonce: number };

/** A signed EIP-7702 authorization (viem's `SignedAuthorization`). */
export interface SignedAuthorization {
  /** The delegate contract (checksummed). */
  address: Address;
  chainId: number;
  nonce: number;
  r: Hex;
  s: Hex;
  yParity: 0 | 1;
  /** 27 + yParity (viem's deprecated `v`). */
  v: bigint;
}

/** A signed EIP-7702 authorization with the facts of its signature. */
export interface SignedAuthorizationResult extends Omit<SignatureResult, "v">, SignedAuthorization {}

/**
 * What the viem and ethers adapters need of a wallet: {@link WalletClient} (page,
 * Worker) and `WalletCore` (`@wallet-mpc/web/core`, same thread) both are one.
 */
export interface EvmWallet {
  getPublicKey(accountId?: string, derivationPath?: string): Promise<PublicKeyInfo>;
  signMessage(message: SignableMessageInput, options?: SignOptions): Promise<SignatureResult>;
  signTransaction(unsignedTx: Uint8Array | string, options?: SignOptions): Promise<SignedTransaction>;
  signTypedData(typedData: TypedDataDefinition, options?: SignOptions): Promise<SignatureResult>;
  signAuthorization(request: AuthorizationRequest, options?: SignOptions): Promise<SignedAuthorizationResult>;
}

/** Cosigner health. */
export interface CosignerHealth {
  status: string;
  version: string;
  backend: string;
  identity: string;
}

/** Facts about the stored wallet (no secrets). */
export interface StoredWalletInfo {
  walletName: string;
  walletId: string;
  accounts: AccountInfo[];
  protection: "webcrypto" | "passphrase";
  insecureDevPrimes: boolean;
  createdAtMs: number;
  cosignerUrl: string;
}

// ---------------------------------------------------------------------------------
// Prepared safe primes (the device's aux-info primes, searched ahead of time)

/** Progress of the parallel safe-prime search (see `primes.ts`). */
export interface PrimeSearchProgress {
  /** Safe primes found (0..=4). */
  found: number;
  /** 4. */
  needed: number;
  /** Candidates looked at so far over all workers and sessions (continues after a reload). */
  candidates: number;
  /** Candidates already looked at when this session started (from stored checkpoints). */
  resumedCandidates: number;
  /** Searches of this session that continue from a stored checkpoint. */
  resumedSearches: number;
  /** Searches running in parallel. */
  workers: number;
  /** `workers` (dedicated Web Workers) or `inline` (chunks in the calling context). */
  mode: "workers" | "inline";
  /** Candidates per second in this session. */
  ratePerSec: number;
  /** Rough expected remaining time, ms (high variance). */
  etaMs?: number;
  /** Wall time of this session, ms. */
  elapsedMs: number;
  /** Whether the set is complete. */
  done: boolean;
}

export interface ProgressEvent {
  /** Phase `primes`: the search's counters. */
  primes?: PrimeSearchProgress;
}

export interface WalletConfig {
  /** Parallel prime searches (Web Workers) when primes are searched; default `min(hardwareConcurrency, 4)`. */
  primeWorkers?: number;
  /** URL of the prime worker script (default: `./prime-worker.js` next to the package's worker). */
  primeWorkerUrl?: string | URL;
}

/** Options of {@link WalletClient.prepareDevice}. */
export interface PrepareDeviceOptions {
  /** Parallel searches (default: `primeWorkers` of the config, else `min(hardwareConcurrency, 4)`). */
  workers?: number;
  /** Progress (phase `primes`, with `event.primes`). */
  onProgress?: OnProgress;
}

/** Whether this browser holds prepared primes for the wallet name. */
export type PreparedStatus =
  | { state: "none" }
  | {
      state: "in_progress";
      /** Primes found so far (of 4). */
      found: number;
      needed: number;
      /** Candidates looked at so far (all sessions). */
      candidates: number;
      /** Whether a search is running now in this client. */
      running: boolean;
      /** Wall time searched so far, ms (all sessions). */
      searchMs: number;
      updatedAtMs: number;
    }
  | { state: "ready"; found: number; needed: number; candidates: number; searchMs: number; updatedAtMs: number };

export interface WalletInfo {
  /**
   * Where the device's primes came from: `prepared` (a complete prepared set, consumed),
   * `searched` (searched during this call, possibly resuming a partial preparation;
   * consumed too), `insecure-dev-fixture` (the PUBLIC test primes), `enrollment` (no
   * primes used: created from the stored device enrollment, whose aux info was run by
   * {@link WalletClient.enrollDevice}).
   */
  primesSource?: "prepared" | "searched" | "insecure-dev-fixture" | "enrollment";
  /** The device enrollment the wallet was created from, if any. */
  enrollmentId?: string;
}

export interface CreateWalletOptions {
  /** Parallel prime searches if primes must be searched (default: the config's `primeWorkers`). */
  primeWorkers?: number;
}
// presign-web: presignature pools

/** `auto` | `off` | `require` (see {@link SignOptions.presign}). */
export type PresignMode = "auto" | "off" | "require";

/** Presignature pool settings ({@link WalletConfig.presignPool}). */
export interface PresignPoolConfig {
  /** Presignatures to keep per pool, one pool per (account, path) (0..=32; default 2; 0 disables refills). */
  target?: number;
  /**
   * Background refill (worker mode only; default true): after a wallet is created (the
   * pool of its first account: the root of an independent account, the first address
   * `m/44/60/0/0/0` of an HD account) and after each signature that could use a pool
   * (an independent account at the root, an HD account at a path: that path's pool),
   * in the separate presign Worker. In inline mode refills run only when
   * {@link WalletClient.refillPresignatures} is called.
   */
  auto?: boolean;
  /** Presignature sessions run at once by one refill (1..=4; default 2). */
  concurrency?: number;
}

/** How a signature used (or could not use) the pool. */
export interface PresignSignInfo {
  /** Id of the presignature used (or discarded). */
  presignatureId?: string;
  /**
   * Why full signing ran instead: `empty` (no presignature), `unknown` / `used` (the
   * cosigner did not hold it / had used it: discarded), `disabled` (the cosigner has
   * presignatures off), `corrupt` (the stored presignature did not decrypt: discarded).
   */
  fallback?: "empty" | "unknown" | "used" | "disabled" | "corrupt";
  /** Breakdown of the online time, ms (pooled signatures only). */
  timings?: PresignTimings;
}

/** Breakdown of a pooled signature's online time, ms. */
export interface PresignTimings {
  /** The take-once: IndexedDB readwrite transaction (delete + tombstone, durability strict) until committed, and AES-GCM decryption. */
  takeMs: number;
  /** SignWithPresignature round trip (the cosigner's policy, audit log and store commit included). */
  rpcMs: number;
  /** wasm: this device's partial signature, the request signature, combining both partials and verifying against the account key. */
  computeMs: number;
  /** All of the above. */
  totalMs: number;
}

/** Options of {@link WalletClient.refillPresignatures}. */
export interface RefillOptions {
  /** Account (default: the first account). */
  accountId?: string;
  /**
   * The pool's path: an independent account has one pool, at its root (omit it, or
   * `m`); an HD account one per non-hardened BIP-44 path (default `m/44/60/0/0/0`). A
   * presignature signs only at the path it was generated for.
   */
  derivationPath?: string;
  /** Fill up to this many (default: `presignPool.target`). */
  target?: number;
  /** Progress (phase `presign`: `round` = presignatures done, `totalRounds` = asked for). */
  onProgress?: OnProgress;
}

/** State of one presignature pool: one account at one path. */
export interface PresignPoolStatus {
  accountId: string;
  /** The pool's path: `""` for an independent account's root, e.g. `m/44/60/0/0/0` for an HD account. */
  derivationPath: string;
  /** Signer pair of the pool (device and cosigner): `[0, 1]`. */
  signers: number[];
  /** Presignatures stored (encrypted) in this browser. */
  device: number;
  /** Presignatures the cosigner holds for this pair (`null` when not asked). */
  cosigner: number | null;
  /** Held by both sides (usable), `null` when the cosigner was not asked. */
  usable: number | null;
  /** Sessions the cosigner still runs. */
  cosignerRunning: number;
  /** The cosigner's per-account cap. */
  cosignerCap: number;
  /** Whether a refill of this account runs in this client. */
  running: boolean;
  /** Configured target. */
  target: number;
  /** Refill results (refills only). */
  generated?: number;
  failed?: number;
  /**
   * Presignatures only one side held: dropped here, or released at the cosigner (ids
   * this device no longer holds), while reconciling.
   */
  discarded?: number;
  elapsedMs?: number;
}

/** Events of background refills ({@link WalletClient.onPresignPool}). */
export type PresignPoolEvent =
  | { type: "progress"; accountId: string; event: ProgressEvent }
  | { type: "status"; accountId: string; status: PresignPoolStatus }
  | { type: "error"; accountId: string; derivationPath?: string; error: { code: string; message: string } };

// ---------------------------------------------------------------------------------
// Backup and restore (exportBackup / importBackup)

/** Options of {@link WalletClient.exportBackup}. */
export interface ExportBackupOptions {
  /**
   * The backup passphrase (its own, not the wallet's): at least 12 characters with 6
   * different ones unless `WalletConfig.allowWeakPassphrase` (or `insecureFastKdf`).
   * Needed again to import the backup.
   */
  passphrase: string;
  /** Progress: phase `backup` (Argon2id runs in the protocol Worker). */
  onProgress?: OnProgress;
}

/**
 * An encrypted backup of the device's key share: the native client's backup file
 * (the key-share file, Argon2id + XChaCha20-Poly1305, with a `wallet` metadata member),
 * so `client backup import FILE` restores it, and {@link WalletClient.importBackup}
 * restores a native `client backup export` file. It holds no plaintext key material.
 */
export interface BackupFile {
  /** The file's bytes (JSON text). */
  bytes: Uint8Array;
  /** The bytes as a `Blob` (`application/json`) for a download, where `Blob` exists. */
  blob?: Blob;
  /** A file name suggestion for the download, e.g. `wallet-mpc-<walletId>-device.backup`. */
  filename: string;
  /** `application/json`. */
  mimeType: string;
  /** The wallet of the share. */
  walletId: string;
  /** The party of the share (0: the device). */
  partyIndex: number;
}

/** Options of {@link WalletClient.importBackup}. */
export interface ImportBackupOptions {
  /** The backup passphrase chosen at export. */
  passphrase: string;
  /** Progress: phase `backup` (Argon2id runs in the protocol Worker). */
  onProgress?: OnProgress;
}

/**
 * What {@link WalletClient.importBackup} did. The restored share is stored under this
 * client's `walletName` with this client's protection (`WalletConfig.passphrase` /
 * `protection`), like a created wallet.
 */
export interface BackupImportResult {
  walletName: string;
  walletId: string;
  /** 0 (the device). */
  partyIndex: number;
  /** `true` when this browser already held the identical share (nothing was written). */
  alreadyPresent: boolean;
  accounts: AccountInfo[];
  protection: "webcrypto" | "passphrase";
}

/** An action of {@link WalletClient.walletControl}. */
export type WalletControlAction = "status" | "freeze" | "unfreeze" | "revokeDevice";

/**
 * An action of {@link WalletClient.requestRecoveryControl}: sent to the cosigner by the
 * recovery agent, signed with the recovery identity, after the user confirms it on the
 * agent's machine.
 */
export type RecoveryControlAction = "unfreeze" | "revokeDevice" | "freeze";

/** Options of {@link WalletClient.requestRecoveryControl}. */
export interface RecoveryControlOptions {
  /** Why (at most 200 characters, no control characters): the cosigner's audit log. */
  reason?: string;
  /**
   * Progress: one `agent` event (`finished: false`) with `requestId` and `confirmByMs`
   * once the agent holds the request (show the user "confirm request <id> on your
   * recovery agent"), one with `finished: true` when it ran.
   */
  onProgress?: OnProgress;
  signal?: AbortSignal;
  /** How long to wait for the user's confirmation and the cosigner; default 10 minutes (the agent's own limit). */
  timeoutMs?: number;
}

/** Options of {@link WalletClient.signMessageWithRecovery}. */
export interface RecoverySignOptions {
  /** Account id; default: the wallet's first account. */
  accountId?: string;
  /** BIP-32 path (non-hardened); default: the root key. */
  derivationPath?: string;
  /** Progress: `agent` (with `requestId` while the agent waits for its user), then `sign`. */
  onProgress?: OnProgress;
  signal?: AbortSignal;
  /** How long to wait for the user's confirmation on the agent; default 10 minutes. */
  timeoutMs?: number;
}

export interface ProgressEvent {
  /** Phase `agent` of {@link WalletClient.requestRecoveryControl}: the agent's request id. */
  requestId?: string;
  /** Until when the agent accepts the user's confirmation (ms since the Unix epoch). */
  confirmByMs?: number;
}

/**
 * A wallet's controls at the cosigner (lost or stolen device): whether it is frozen
 * (nothing signs), a pending unfreeze, the revoked identities. A frozen wallet's
 * signatures fail with `wallet_not_ready` and `details.walletRefusal === "frozen"`
 * (`details.unfreezeAtMs` when pending); a revoked device's requests with
 * `unauthorized` and `details.walletRefusal === "identity_revoked"`.
 */
export interface WalletControls {
  frozen: boolean;
  /** When the freeze began (ms since the Unix epoch). */
  frozenAtMs?: number;
  /** When a requested unfreeze takes effect (ms since the Unix epoch). */
  unfreezeAtMs?: number;
  /** Keygen indices whose identities are revoked (0: the device). */
  revokedParties: number[];
}

/**
 * The `details.reason` of a failed import (always with one of these codes):
 * `wrong_passphrase` (code `wrong_passphrase`: the passphrase does not open the backup,
 * or it was modified), `not_a_backup` (code `storage`: not a backup, another party's or
 * an unusable share), `other_wallet` (code `wallet_exists`: this wallet name holds
 * another wallet; `details.existingWalletId`, `details.backupWalletId`),
 * `different_share` (code `wallet_exists`: it holds a different share of the same
 * wallet). Nothing is stored in any of these cases.
 */
export type BackupErrorReason = "wrong_passphrase" | "not_a_backup" | "other_wallet" | "different_share";

export type { RefreshSharesOptions, ReplaceDeviceOptions, LifecycleResult } from "./lifecycle-types.js";
