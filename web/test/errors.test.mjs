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
