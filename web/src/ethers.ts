/**
 * `@wallet-mpc/web/ethers`: the wallet as an ethers v6 `Signer` ({@link WalletMpcSigner},
 * an `AbstractSigner`). ethers is an optional peer dependency: only this entry needs it.
 *
 * ```ts
 * import { JsonRpcProvider } from "ethers";
 * import { WalletMpcSigner } from "@wallet-mpc/web/ethers";
 * const signer = new WalletMpcSigner(wallet, new JsonRpcProvider(rpcUrl));
 * const tx = await signer.sendTransaction({ to, value }); // populated by the provider, co-signed
 * ```
 */

import {
  AbstractSigner,
  copyRequest,
  getAddress,
  getBigInt,
  getBytes,
  hexlify,
  resolveAddress,
  Signature,
  Transaction,
  TypedDataEncoder,
  type Authorization,
  type AuthorizationRequest as EthersAuthorizationRequest,
  type Provider,
  type TransactionLike,
  type TransactionRequest,
  type TypedDataDomain,
  type TypedDataField,
} from "ethers";
import type { TypedDataDefinition } from "viem";
import { InvalidInputError } from "./errors.js";
import type { Address, EvmWallet, SignOptions } from "./types.js";

/** Options of {@link WalletMpcSigner}. */
export interface EthersSignerOptions {
  /** Account id (default: the wallet's first account). */
  accountId?: string;
  /** BIP-32 path (non-hardened), e.g. `m/44/60/0/0/0` (default: the root key). */
  derivationPath?: string;
  /** Presignature mode of every signature (see {@link SignOptions.presign}). */
  presign?: SignOptions["presign"];
  /** Progress of every signature. */
  onProgress?: SignOptions["onProgress"];
}

/** A typed-data value in the form viem hashes: integers as bigint, bytes as hex, checksummed addresses. */
function normalizeField(type: string, value: unknown): unknown {
  if (/^u?int\d*$/.test(type)) return getBigInt(value as bigint | string | number);
  if (/^bytes\d*$/.test(type)) return hexlify(getBytes(value as string | Uint8Array));
  switch (type) {
    case "address":
      return getAddress(value as string);
    case "bool":
      return !!value;
    case "string":
      if (typeof value !== "string") throw new InvalidInputError(`typed data: a string field holds ${typeof value}`);
      return value;
  }
  throw new InvalidInputError(`typed data: unsupported field type ${JSON.stringify(type)}`);
}

function normalizeDomain(d: TypedDataDomain): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (d.name != null) out.name = d.name;
  if (d.version != null) out.version = d.version;
  if (d.chainId != null) out.chainId = getBigInt(d.chainId);
  if (d.verifyingContract != null) out.verifyingContract = getAddress(d.verifyingContract);
  if (d.salt != null) out.salt = hexlify(getBytes(d.salt));
  return out;
}

/**
 * An ethers v6 signer backed by the 2-of-3 wallet (device + cosigner): `getAddress`,
 * `signMessage` (a string is its UTF-8 text, as in ethers), `signTransaction`
 * (populated through the provider when connected: nonce, gas, fees, chain id),
 * `signTypedData`, `authorize` (EIP-7702) and `connect`. `sendTransaction` and the
 * other `AbstractSigner` helpers work on top of them when connected to a provider.
 * Wallet failures reject with {@link WalletError}s.
 */
export class WalletMpcSigner extends AbstractSigner {
  readonly #wallet: EvmWallet;
  readonly #options: EthersSignerOptions;
  #address: Promise<Address> | undefined;

  constructor(wallet: EvmWallet, provider?: Provider | null, options: EthersSignerOptions = {}) {
    super(provider ?? null);
    this.#wallet = wallet;
    this.#options = { ...options };
  }

  /** The signing options of every call. */
  #signOptions(): SignOptions {
    const o: SignOptions = {};
    const { accountId, derivationPath, presign, onProgress } = this.#options;
    if (accountId !== undefined) o.accountId = accountId;
    if (derivationPath !== undefined) o.derivationPath = derivationPath;
    if (presign !== undefined) o.presign = presign;
    if (onProgress !== undefined) o.onProgress = onProgress;
    return o;
  }

  /** The account's EIP-55 address (asked once). */
  override getAddress(): Promise<string> {
    if (!this.#address) {
      const p = this.#wallet.getPublicKey(this.#options.accountId, this.#options.derivationPath).then((i) => i.ethereumAddress);
      p.catch(() => (this.#address = undefined));
      this.#address = p;
    }
    return this.#address;
  }

  /** The same account connected to `provider`. */
  override connect(provider: Provider | null): WalletMpcSigner {
    return new WalletMpcSigner(this.#wallet, provider, this.#options);
  }

  /** EIP-191 `personal_sign`: a string is signed as its UTF-8 text, bytes as bytes. */
  override async signMessage(message: string | Uint8Array): Promise<string> {
    return (await this.#wallet.signMessage(message, this.#signOptions())).rsv;
  }

  /**
   * Signs a transaction request (types 0–4). Connected to a provider, the request is
   * populated first (`populateTransaction`: nonce, gas limit, fees, chain id);
   * otherwise it must be complete. Returns the serialized signed transaction.
   */
  override async signTransaction(tx: TransactionRequest): Promise<string> {
    let req: TransactionLike<string>;
    if (this.provider) {
      req = await this.populateTransaction(tx);
    } else {
      const c = copyRequest(tx);
      req = c as TransactionLike<string>;
      if (c.to != null) req.to = await resolveAddress(c.to, this);
      if (c.from != null) req.from = await resolveAddress(c.from, this);
    }
    if (req.from != null) {
      const me = await this.getAddress();
      if (getAddress(req.from) !== me) {
        throw new InvalidInputError(`transaction from ${req.from} is not this signer's address ${me}`, { from: req.from, address: me });
      }
      delete req.from;
    }
    const btx = Transaction.from(req);
    const sig = await this.#wallet.signTransaction(btx.unsignedSerialized, this.#signOptions());
    btx.signature = Signature.from({ r: sig.r, s: sig.s, yParity: sig.yParity });
    return btx.serialized;
  }

  /**
   * EIP-712 (`eth_signTypedData_v4`) in ethers' form: `types` without `EIP712Domain`
   * (the primary type is inferred). ENS names in address fields are resolved through the
   * provider when connected.
   */
  override async signTypedData(domain: TypedDataDomain, types: Record<string, TypedDataField[]>, value: Record<string, unknown>): Promise<string> {
    const populated = await TypedDataEncoder.resolveNames(domain, types, value, async (name: string) => {
      if (!this.provider) throw new InvalidInputError(`typed data: cannot resolve the ENS name ${JSON.stringify(name)} without a provider`);
      const address = await this.provider.resolveName(name);
      if (address == null) throw new InvalidInputError(`typed data: the ENS name ${JSON.stringify(name)} is not configured`);
      return address;
    });
    const encoder = TypedDataEncoder.from(types);
    const typedData = {
      types: encoder.types,
      primaryType: encoder.primaryType,
      domain: normalizeDomain(populated.domain),
      message: encoder.visit(populated.value, normalizeField) as Record<string, unknown>,
    } as unknown as TypedDataDefinition;
    return (await this.#wallet.signTypedData(typedData, this.#signOptions())).rsv;
  }

  /**
   * Signs an EIP-7702 authorization. Connected to a provider, a missing chain id and
   * nonce are filled in (`populateAuthorization`: the network's chain id and the
   * account's current nonce); otherwise they default to 0.
   */
  override async authorize(request: EthersAuthorizationRequest): Promise<Authorization> {
    let auth: EthersAuthorizationRequest = { ...request, address: await resolveAddress(request.address, this) };
    if (this.provider) auth = await this.populateAuthorization(auth);
    const chainId = getBigInt(auth.chainId ?? 0);
    const nonce = getBigInt(auth.nonce ?? 0);
    if (chainId > BigInt(Number.MAX_SAFE_INTEGER) || nonce > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new InvalidInputError("authorization chain id and nonce must be below 2^53");
    }
    const signed = await this.#wallet.signAuthorization(
      { address: auth.address as Address, chainId: Number(chainId), nonce: Number(nonce) },
      this.#signOptions(),
    );
    return {
      address: signed.address,
      chainId,
      nonce,
      signature: Signature.from({ r: signed.r, s: signed.s, yParity: signed.yParity }),
    };
  }
}
