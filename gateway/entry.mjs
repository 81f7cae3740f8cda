// The gateway's entry module. scripts/build-workers puts it at gateway/build/worker/shim.mjs (the
// `main` of wrangler.toml) after worker-build. worker-build's default export wraps the entrypoint
// class in a Proxy whose traps build a new Proxy per request and another per method call (panic
// recovery for Durable Objects and RPC methods); the gateway has neither, so this calls the same
// generated `fetch` (gateway/src/lib.rs) directly. A panic still aborts the wasm instance, and
// wasm-bindgen's glue re-instantiates it on the next call (worker's abort handler schedules it).
import Gateway from "../index.js";

const fetchGateway = Gateway.prototype.fetch;

export default {
  fetch(request, env, ctx) {
    return fetchGateway.call({ env, ctx }, request);
  },
};
