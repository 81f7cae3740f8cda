// The gateway's entry module. scripts/build-workers puts it at gateway/build/worker/shim.mjs (the
// `main` of wrangler.toml) after worker-build. worker-build's default export wraps the entrypoint
// class in a Proxy whose traps build a new Proxy per request and another per method call (panic
// recovery for Durable Objects and RPC methods); the gateway has neither, so this calls the same
// generated exports (gateway/src/lib.rs) directly. A panic still aborts the wasm instance, and
// wasm-bindgen's glue re-instantiates it on the next call (worker's abort handler schedules it).
//
// `fetchNow` answers synchronously what needs no await (an unknown route, /health with no consumer
// to ask) and returns undefined for the rest, which the `async` export `fetch` handles: an async
// export costs a promise and a task per request (docs/GATEWAY_FLOOR.md).
import Gateway from "../index.js";

const { fetch: fetchGateway, fetchNow } = Gateway.prototype;

export default {
  fetch(request, env, ctx) {
    return fetchNow(request, env) ?? fetchGateway.call({ env, ctx }, request);
  },
};
