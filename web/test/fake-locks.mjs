// A small Web Locks `LockManager` for node tests (Node < 24 has no navigator.locks):
// `request(name, [options,] callback)` with exclusive, FIFO-granted locks per name,
// `options.signal` aborting a wait that was not granted yet (AbortError DOMException). The lock is released when the
// callback's promise settles; `request` resolves or rejects with it.
export function testLockManager() {
  const queues = new Map();
  return {
    request(name, options, callback) {
      if (typeof options === "function") {
        callback = options;
        options = {};
      }
      const signal = options?.signal;
      return new Promise((resolve, reject) => {
        if (signal?.aborted) return reject(new DOMException("the lock request was aborted", "AbortError"));
        const q = queues.get(name) ?? [];
        queues.set(name, q);
        const entry = {};
        const onAbort = () => {
          const i = q.indexOf(entry);
          if (i > 0) {
            q.splice(i, 1);
            reject(new DOMException("the lock request was aborted", "AbortError"));
          }
        };
        entry.grant = () => {
          signal?.removeEventListener("abort", onAbort);
          Promise.resolve()
            .then(() => callback({ name, mode: "exclusive" }))
            .then(resolve, reject)
            .finally(() => {
              q.shift();
              if (q.length > 0) q[0].grant();
              else queues.delete(name);
            });
        };
        q.push(entry);
        signal?.addEventListener("abort", onAbort, { once: true });
        if (q.length === 1) entry.grant();
      });
    },
  };
}
