/**
 * Dedicated Worker entry: hosts {@link WalletCore}s and answers {@link CallMessage}s.
 * Started by `WalletClient` with `new Worker(new URL("./worker.js", import.meta.url),
 * { type: "module" })`.
 */

import { serveCalls } from "./worker-host.js";

serveCalls();
