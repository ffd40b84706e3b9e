// Shared fixtures of the unit tests: transactions of every type, typed data.
const base = {
  to: "0x000000000000000000000000000000000000dEaD",
  value: 12300000000000000n,
  gas: 21000n,
  nonce: 7,
  data: "0x",
};
const fees = { maxFeePerGas: 30_000_000_000n, maxPriorityFeePerGas: 1_500_000_000n };
const access = [{ address: "0x000000000000000000000000000000000000bEEF", storageKeys: ["0x" + "11".repeat(32)] }];

/** Transactions of every type, as viem's TransactionSerializable. */
export const TX_CASES = {
  legacy: { ...base, type: "legacy", gasPrice: 20_000_000_000n },
  eip155: { ...base, type: "legacy", chainId: 1, gasPrice: 20_000_000_000n },
  eip2930: { ...base, type: "eip2930", chainId: 1, gasPrice: 20_000_000_000n, accessList: access },
  eip1559: { ...base, type: "eip1559", chainId: 11155111, ...fees },
  eip1559Erc20: {
    ...base,
    type: "eip1559",
    chainId: 8453,
    ...fees,
    value: 0n,
    gas: 65_000n,
    data: "0xa9059cbb" + "00".repeat(64),
    accessList: access,
  },
  eip4844: {
    ...base,
    type: "eip4844",
    chainId: 1,
    ...fees,
    maxFeePerBlobGas: 3_000_000_000n,
    blobVersionedHashes: ["0x01" + "ab".repeat(31), "0x01" + "cd".repeat(31)],
  },
  eip7702: {
    ...base,
    type: "eip7702",
    chainId: 31337,
    ...fees,
    gas: 100_000n,
    authorizationList: [
      {
        address: "0x000000000000000000000000000000000000bEEF",
        chainId: 31337,
        nonce: 8,
        r: "0x" + "12".repeat(32),
        s: "0x" + "34".repeat(32),
        yParity: 1,
      },
    ],
  },
};


/** EIP-2612 Permit, the canonical typed data. */
export const PERMIT = {
  domain: { name: "Test Token", version: "1", chainId: 31337, verifyingContract: "0x5FbDB2315678afecb367f032d93F642f64180aa3" },
  types: {
    Permit: [
      { name: "owner", type: "address" },
      { name: "spender", type: "address" },
      { name: "value", type: "uint256" },
      { name: "nonce", type: "uint256" },
      { name: "deadline", type: "uint256" },
    ],
  },
  primaryType: "Permit",
  message: {
    owner: "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23",
    spender: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    value: 10n ** 24n,
    nonce: 0n,
    deadline: 2n ** 64n,
  },
};

/** Nested structs, arrays, bytes, bool, string and a salt. */
export const MAIL = {
  domain: { name: "Ether Mail", version: "1", chainId: 1n, verifyingContract: "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC", salt: "0x" + "aa".repeat(32) },
  types: {
    Person: [
      { name: "name", type: "string" },
      { name: "wallets", type: "address[]" },
    ],
    Mail: [
      { name: "from", type: "Person" },
      { name: "to", type: "Person[]" },
      { name: "contents", type: "string" },
      { name: "urgent", type: "bool" },
      { name: "attachment", type: "bytes" },
      { name: "tag", type: "bytes4" },
      { name: "delta", type: "int64" },
    ],
  },
  primaryType: "Mail",
  message: {
    from: { name: "Cow", wallets: ["0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826", "0xDeaDbeefdEAdbeefdEadbEEFdeadbeEFdEaDbeeF"] },
    to: [{ name: "Bob", wallets: ["0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"] }],
    contents: "Hello, Bob! ✓",
    urgent: true,
    attachment: Uint8Array.of(1, 2, 3),
    tag: "0xdeadbeef",
    delta: -5n,
  },
};
