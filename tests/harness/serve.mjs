// Runs bugbot's two Workers in workerd through Miniflare, with the bindings of the real wrangler
// configs (wrangler's own config reader, so tests cannot drift from what deploys) plus test vars.
//
//   node tests/harness/serve.mjs <options.json>
//
// options: { port?: number, persist?: string|false, vars?: { gateway?: {...}, consumer?: {...} },
//            consumerQueue?: {...overrides of the consumer's queue settings}, gatewayOnly?: boolean,
//            root?: string (a checkout whose built Workers to run, e.g. a benchmark baseline),
//            reference?: boolean (bench/reference's JavaScript pair instead of bugbot's Workers),
//            countCalls?: boolean (count the consumer's Durable Object calls and KV writes; read them
//                                  with GET /__bench/counts and `MF-Route-Override: bugbot-consumer`;
//                                  POST /__test/object?binding=B&name=N&path=P is a request to path P of
//                                  object N of B; P = /__test/put with {key, value} writes into its
//                                  storage, as an earlier version would have left it,
//                                  P = /__test/get with {key} answers {value} as stored, and
//                                  P = /__test/alarm runs its alarm now),
//            ed25519Probe?: boolean (POST /__test/ed25519 answers the gateway's Ed25519 verdicts on
//                                    vectors: tests/tests/gateway_ed25519.rs) }
// Prints one JSON line `{"ready": "<url>", "pid": <workerd pid|null>}` on stdout when serving, then the
// Workers' console output. Exits when stdin closes or on SIGTERM/SIGINT.
import { readFileSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Log, LogLevel, Miniflare } from "miniflare";
import { unstable_getMiniflareWorkerOptions, unstable_readConfig } from "wrangler";

const here = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const options = process.argv[2] ? JSON.parse(readFileSync(process.argv[2], "utf8")) : {};
const root = options.root ? path.resolve(options.root) : here;

function worker(name, configPath, vars, queueOverrides) {
  const { workerOptions, main } = unstable_getMiniflareWorkerOptions(path.join(root, configPath));
  const buildDir = path.resolve(path.dirname(main), "..");
  const opts = {
    ...workerOptions,
    name,
    modules: true,
    scriptPath: main,
    modulesRoot: buildDir,
    modulesRules: [
      { type: "ESModule", include: ["**/*.js", "**/*.mjs"] },
      { type: "CompiledWasm", include: ["**/*.wasm"] },
    ],
    // The config's [vars] and the test's values only: never a developer's .dev.vars, which wrangler's
    // reader merges in (a local LINEAR_API_KEY must not change what a test sees).
    bindings: { ...(unstable_readConfig({ config: path.join(root, configPath) }).vars ?? {}), ...(vars ?? {}) },
  };
  if (queueOverrides && opts.queueConsumers) {
    for (const q of Object.keys(opts.queueConsumers)) {
      opts.queueConsumers[q] = { ...opts.queueConsumers[q], ...queueOverrides };
    }
  }
  return opts;
}

// Runs `script` (an ES module, bundled with esbuild) in place of the Worker's own build, with the
// same bindings. The Durable Object classes and containers of bugbot's consumer are left out.
function asReference(opts, script) {
  const bundled = path.join(here, "bench/build", path.basename(script));
  execFileSync(path.join(here, "node_modules/.bin/esbuild"), [path.join(here, script), "--bundle", "--format=esm",
    "--platform=browser", "--log-level=warning", `--outfile=${bundled}`]);
  const { durableObjects, containers, ...rest } = opts;
  return { ...rest, scriptPath: bundled, modulesRoot: path.dirname(bundled),
    modulesRules: [{ type: "ESModule", include: ["**/*.mjs"] }] };
}

// The consumer's Durable Object calls and KV writes, counted where they arrive: a module around its
// build that subclasses each Durable Object class (one `fetch` = one call) and hands every handler
// an `env` whose STATE namespace counts `put` and `delete`; and the queue messages whose batch
// handler has finished. GET /__bench/counts answers the totals.
function counting(opts) {
  const main = opts.scriptPath;
  const classes = Object.values(opts.durableObjects ?? {})
    .filter((d) => typeof d === "string" || !d.scriptName)
    .map((d) => (typeof d === "string" ? d : d.className));
  const wrapper = path.join(path.dirname(main), "..", "bench-counting.mjs");
  const rel = "./" + path.relative(path.dirname(wrapper), main).split(path.sep).join("/");
  writeFileSync(wrapper, `import * as shim from ${JSON.stringify(rel)};
export * from ${JSON.stringify(rel)};
const counts = { durable_object_calls: 0, by_class: {}, kv_writes: 0, kv_deletes: 0, messages_settled: 0 };
const wrapped = new WeakMap();
function countingKv(kv) {
  return {
    get: (...a) => kv.get(...a),
    getWithMetadata: (...a) => kv.getWithMetadata(...a),
    list: (...a) => kv.list(...a),
    put: (...a) => { counts.kv_writes++; return kv.put(...a); },
    delete: (...a) => { counts.kv_deletes++; return kv.delete(...a); },
  };
}
function countingEnv(env) {
  if (!env || typeof env !== "object") return env;
  if (!wrapped.has(env)) {
    const kv = env.STATE ? countingKv(env.STATE) : undefined;
    wrapped.set(env, new Proxy(env, { get: (t, p) => (p === "STATE" && kv ? kv : Reflect.get(t, p)) }));
  }
  return wrapped.get(env);
}
${classes.map((c) => `export class ${c} extends shim.${c} {
  constructor(ctx, env) { super(ctx, countingEnv(env)); this.testStorage = ctx.storage; }
  async fetch(request) {
    // Tests: what an earlier version left in this object's storage, written as it wrote it.
    if (new URL(request.url).pathname === "/__test/put") {
      const { key, value } = await request.json();
      await this.testStorage.put(key, value);
      return new Response("ok");
    }
    // Tests: what this object's storage holds under a key, as stored ({"value": …}; absent: null).
    if (new URL(request.url).pathname === "/__test/get") {
      const { key } = await request.json();
      return Response.json({ value: (await this.testStorage.get(key)) ?? null });
    }
    // Tests: the object's alarm, now (what the platform runs when it is due).
    if (new URL(request.url).pathname === "/__test/alarm") {
      await super.alarm();
      return new Response("ok");
    }
    counts.durable_object_calls++; counts.by_class.${c} = (counts.by_class.${c} ?? 0) + 1; return super.fetch(request);
  }
}`).join("\n")}
export default class extends shim.default {
  constructor(ctx, env) { super(ctx, countingEnv(env)); this.testEnv = env; }
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === "/__bench/counts") return Response.json(counts);
    // Tests: POST /__test/object?binding=CLAIMS&name=fp:x&path=/p → that object's fetch (path
    // /__test/put: {key, value} into its storage).
    if (url.pathname === "/__test/object") {
      const ns = this.testEnv[url.searchParams.get("binding")];
      const stub = ns.get(ns.idFromName(url.searchParams.get("name")));
      return stub.fetch("https://object" + url.searchParams.get("path"), { method: "POST", body: await request.text() });
    }
    return super.fetch(request);
  }
  // The messages of each batch whose handler has finished (acked, retried or failed): the work an
  // alert causes (its issue, card, write-back, the batch's ledger call) is done within it.
  async queue(batch) {
    try {
      return await super.queue(batch);
    } finally {
      counts.messages_settled += batch.messages.length;
    }
  }
}
`);
  return { ...opts, scriptPath: wrapper };
}

// The Ed25519 parity test's route, in a module around the gateway's build (never in a deploy):
// POST /__test/ed25519 with [[publicKeyHex, messageHex, signatureHex], ...] answers the gateway's
// verdict on each, from the wasm export gateway/src/signature.rs makes for it (`ed25519Probe`: the
// same code path as a Discord request, in this workerd). Every other request goes to the gateway.
function ed25519Probe(opts) {
  const wrapper = path.join(path.dirname(opts.scriptPath), "ed25519-probe.mjs");
  writeFileSync(wrapper, `import Gateway from "../index.js";
import entry from "./${path.basename(opts.scriptPath)}";
const probe = Gateway.prototype.ed25519Probe;
const bytes = (hex) => Uint8Array.from(hex.match(/../g) ?? [], (b) => parseInt(b, 16));
export default {
  async fetch(request, env, ctx) {
    if (new URL(request.url).pathname !== "/__test/ed25519") return entry.fetch(request, env, ctx);
    const verdicts = [];
    for (const [key, message, signature] of await request.json()) {
      verdicts.push(await probe(key, bytes(message), signature));
    }
    return Response.json(verdicts);
  },
};
`);
  return { ...opts, scriptPath: wrapper };
}

// A JOBS queue that refuses every send, in a module around the gateway's build (never in a deploy):
// the gateway's only server error, 503, on each of its paths (gateway/src/delivery.rs).
function queueRefuses(opts) {
  const wrapper = path.join(path.dirname(opts.scriptPath), "queue-refuses.mjs");
  writeFileSync(wrapper, `import entry from "./${path.basename(opts.scriptPath)}";
const refuse = () => Promise.reject(new Error("Queue send failed: refused by the test harness"));
const JOBS = { send: refuse, sendBatch: refuse };
const envs = new WeakMap();
export default {
  fetch(request, env, ctx) {
    if (!envs.has(env)) envs.set(env, new Proxy(env, { get: (t, p) => (p === "JOBS" ? JOBS : Reflect.get(t, p)) }));
    return entry.fetch(request, envs.get(env), ctx);
  },
};
`);
  return { ...opts, scriptPath: wrapper };
}

// Without the consumer there is nothing behind the gateway's CONSUMER binding (/admin/* and /health use it).
function gatewayOptions() {
  let opts = worker("bugbot-gateway", "wrangler.toml", options.vars?.gateway);
  if (options.gatewayOnly && opts.serviceBindings) delete opts.serviceBindings.CONSUMER;
  if (options.reference) opts = asReference(opts, "bench/reference/gateway.mjs");
  else if (options.ed25519Probe) opts = ed25519Probe(opts);
  else if (options.queueRefuses) opts = queueRefuses(opts);
  return opts;
}

function consumerOptions() {
  let opts = worker("bugbot-consumer", "consumer/wrangler.toml", options.vars?.consumer, options.consumerQueue);
  if (options.reference) opts = asReference(opts, "bench/reference/consumer.mjs");
  else if (options.countCalls) opts = counting(opts);
  return opts;
}

const persist = options.persist ?? false;
const mf = new Miniflare({
  host: "127.0.0.1",
  port: options.port ?? 0,
  log: new Log(options.verbose ? LogLevel.DEBUG : LogLevel.WARN),
  kvPersist: persist ? path.join(persist, "kv") : false,
  durableObjectsPersist: persist ? path.join(persist, "do") : false,
  cachePersist: false,
  // No network here or in CI: never fetch the `Request.cf` object from Cloudflare.
  cf: false,
  // Cron triggers for tests (digest): GET /cdn-cgi/handler/scheduled?time=<ms> with the header
  // `MF-Route-Override: bugbot-consumer` runs the consumer's scheduled handler.
  unsafeTriggerHandlers: true,
  // Profiling (not for tests): the V8 inspector on this port, for every Worker (docs/CLAIMS.md, "Profiling the Workers").
  ...(process.env.BUGBOT_INSPECTOR_PORT ? { inspectorPort: Number(process.env.BUGBOT_INSPECTOR_PORT) } : {}),
  // `gatewayOnly` (benchmarks): no consumer, so workerd's CPU is the gateway's alone.
  workers: [
    gatewayOptions(),
    ...(options.gatewayOnly ? [] : [consumerOptions()]),
  ],
});

const url = await mf.ready;
process.stdout.write(JSON.stringify({ ready: url.href.replace(/\/$/, "") }) + "\n");

let closing = false;
async function close() {
  if (closing) return;
  closing = true;
  try {
    await mf.dispose();
  } finally {
    process.exit(0);
  }
}
process.on("SIGTERM", close);
process.on("SIGINT", close);
process.stdin.on("end", close);
process.stdin.on("close", close);
process.stdin.resume();
