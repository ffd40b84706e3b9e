// The package's error codes are the wallet's one vocabulary: the table in docs/errors.md
// (which a Rust test keeps equal to wallet_types::ErrorCode), plus `wasm`.
// Run: npm test (after npm run build).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { ERROR_CODES, deserializeError, CosignerError } from "../dist/errors.js";

test("ERROR_CODES equals the documented table plus wasm", () => {
  const table = readFileSync(new URL("../../docs/errors.md", import.meta.url), "utf8");
  const documented = [...table.matchAll(/^\| `([a-z_]+)` \|/gm)].map((m) => m[1]);
  assert.ok(documented.length > 20, `found ${documented.length} codes in docs/errors.md`);
  assert.deepEqual([...ERROR_CODES].sort(), [...documented, "wasm"].sort());
});

test("a cosigner error keeps its code and rule across the Worker boundary", () => {
  const e = new CosignerError("policy_denied", "refused", { rule: "allowed_destinations" });
  const back = deserializeError(JSON.parse(JSON.stringify(e)));
  assert.equal(back.code, "policy_denied");
  assert.equal(back.details.rule, "allowed_destinations");
  assert.ok(back instanceof CosignerError);
});

test("EIP-1193 codes: every wallet code maps to one of 4001, 4100, 4200, -32602, -32603", async () => {
  const { EIP1193_CODES, eip1193CodeOf, errorForCode, AbortedError, WalletError } = await import("../dist/errors.js");
  const expected = {
    aborted: 4001,
    policy_denied: 4001,
    unauthorized: 4100,
    registration_required: 4100,
    no_wallet: 4100,
    unknown_account: 4100,
    wrong_passphrase: 4100,
    wallet_not_ready: 4100,
    agent_unauthorized: 4100,
    unsupported: 4200,
    invalid_input: -32602,
  };
  assert.deepEqual({ ...EIP1193_CODES }, expected);
  for (const code of ERROR_CODES) {
    const want = expected[code] ?? -32603;
    assert.equal(eip1193CodeOf(code), want, code);
    const e = errorForCode(code, `m ${code}`, { rule: "r" });
    assert.equal(e.eip1193Code, want, code);
    assert.deepEqual(e.toProviderRpcError(), { code: want, message: `m ${code}`, data: { walletCode: code, details: { rule: "r" } } });
  }
  // `aborted` is an AbortedError on both sides of the Worker boundary
  const a = deserializeError(JSON.parse(JSON.stringify(new AbortedError("stop"))));
  assert.ok(a instanceof AbortedError && a instanceof WalletError);
  assert.equal(a.eip1193Code, 4001);
  assert.ok(errorForCode("aborted", "x") instanceof AbortedError);
  // a signal's reason is kept
  const ctl = new AbortController();
  ctl.abort(new Error("closed"));
  const f = AbortedError.fromSignal(ctl.signal, "signing");
  assert.equal(f.message, "signing was aborted: closed");
  assert.deepEqual(f.details, { reason: "closed" });
});

test("the EIP-1193 table of README.md equals EIP1193_CODES", async () => {
  const { EIP1193_CODES } = await import("../dist/errors.js");
  const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
  const documented = {};
  for (const m of readme.matchAll(/^\| `(4001|4100|4200|-32602)` \|[^|]*\|([^\n]*)\|$/gm)) {
    for (const c of m[2].matchAll(/`([a-z_]+)`/g)) documented[c[1]] = Number(m[1]);
  }
  assert.ok(Object.keys(documented).length >= 10, "EIP-1193 table not found in README.md");
  assert.deepEqual(documented, { ...EIP1193_CODES });
});
