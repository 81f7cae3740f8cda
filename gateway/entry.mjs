// The gateway's entry module. scripts/build-workers puts it at gateway/build/worker/shim.mjs (the
// `main` of wrangler.toml) after worker-build. worker-build's default export wraps the entrypoint
// class in a Proxy whose traps build a new Proxy per request and another per method call (panic
// recovery for Durable Objects and RPC methods); the gateway has neither, so this calls the same
// generated exports (gateway/src/lib.rs) directly. A panic still aborts the wasm instance, and
// wasm-bindgen's glue re-instantiates it on the next call (worker's abort handler schedules it).
//
// Every decision is made in the wasm, by synchronous exports; this module only makes the awaits
// between them, as a JavaScript Worker would, because an `async` Rust export costs a promise, a task
// and two closures per await (docs/GATEWAY_FLOOR.md):
// - `fetchNow` answers what needs no await (an unknown route, /health with no consumer to ask), or
//   starts a delivery to an ingress route whose body has a Content-Length within the limit
//   (gateway/src/delivery.rs), which `deliver` drives: the body, then WebCrypto's verdict on its
//   signature, then the queue send, each answer handed back to the wasm, which says what comes next;
// - the `async` export `fetch` does the rest (/health asking the consumer, /admin, a chunked body).
import Gateway from "../index.js";

const { fetch: fetchGateway, fetchNow } = Gateway.prototype;

// Read by the runtime only.
const TEXT = { contentType: "text" };

async function deliver(delivery, request, env) {
  try {
    let body;
    try {
      body = await request.arrayBuffer();
    } catch {
      return delivery.unreadable();
    }
    // A Response (the delivery is over), a signature to check, or the jobs to send.
    let next = delivery.received(new Uint8Array(body));
    if (next instanceof Response) return next;
    if (!Array.isArray(next)) {
      let holds;
      try {
        holds = await crypto.subtle.verify(next.algorithm, await next.key, next.signature, next.data ?? body);
      } catch {
        // No verdict: the wasm verifies the signature itself.
      }
      next = delivery.verified(holds);
      if (next instanceof Response) return next;
    }
    try {
      await (next.length === 1
        ? env.JOBS.send(next[0], TEXT)
        : env.JOBS.sendBatch(next.map((text) => ({ body: text, contentType: "text" }))));
    } catch (error) {
      return delivery.unsent(error);
    }
    return delivery.sent();
  } finally {
    delivery.free();
  }
}

export default {
  fetch(request, env, ctx) {
    // A Response, a delivery to drive, or undefined.
    const now = fetchNow(request, env);
    if (now instanceof Response) return now;
    return now === undefined ? fetchGateway.call({ env, ctx }, request) : deliver(now, request, env);
  },
};
