// Runs bugbot's two Workers in workerd through Miniflare, with the bindings of the real wrangler
// configs (wrangler's own config reader, so tests cannot drift from what deploys) plus test vars.
//
//   node tests/harness/serve.mjs <options.json>
//
// options: { port?: number, persist?: string|false, vars?: { gateway?: {...}, consumer?: {...} },
//            consumerQueue?: {...overrides of the consumer's queue settings}, gatewayOnly?: boolean }
// Prints one JSON line `{"ready": "<url>", "pid": <workerd pid|null>}` on stdout when serving, then the
// Workers' console output. Exits when stdin closes or on SIGTERM/SIGINT.
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Log, LogLevel, Miniflare } from "miniflare";
import { unstable_getMiniflareWorkerOptions, unstable_readConfig } from "wrangler";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const options = process.argv[2] ? JSON.parse(readFileSync(process.argv[2], "utf8")) : {};

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

// Without the consumer there is nothing behind the gateway's CONSUMER binding (only /admin/* uses it).
function gatewayOptions() {
  const opts = worker("bugbot-gateway", "wrangler.toml", options.vars?.gateway);
  if (options.gatewayOnly && opts.serviceBindings) delete opts.serviceBindings.CONSUMER;
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
  // `gatewayOnly` (benchmarks): no consumer, so workerd's CPU is the gateway's alone.
  workers: [
    gatewayOptions(),
    ...(options.gatewayOnly
      ? []
      : [worker("bugbot-consumer", "consumer/wrangler.toml", options.vars?.consumer, options.consumerQueue)]),
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
