/**
 * The presign Worker: a dedicated Worker, separate from the protocol Worker that signs,
 * that runs presignature refills (seconds of wasm CPU per presignature) so that online
 * signing from the pool never waits behind them. Started by `WalletClient` with
 * `new Worker(new URL("./pool-worker.js", import.meta.url), { type: "module" })`; it
 * answers only the pool methods (`refillPresignatures`, `presignPoolStatus`) with the
 * same messages as `worker.ts`.
 */

import type { CoreMethod } from "./rpc.js";
import { serveCalls } from "./worker-host.js";

serveCalls({
  what: "presign worker",
  methods: new Set<CoreMethod>(["refillPresignatures", "presignPoolStatus"]),
});
