// The reference for bugbot's gateway floor (`make bench`): a plain JavaScript Worker doing the
// same ingress job the usual way — discord-interactions' verifyKey (WebCrypto Ed25519), a WebCrypto
// HMAC for Sentry, one queue send per job, a JSON reply, and /health answering which integrations
// are configured (its own, and the consumer's over the CONSUMER service binding when there is one).
// It runs in the same workerd, with the same bindings, under the same load as bugbot's gateway.
import { verifyKey } from "discord-interactions";

const MAX_BODY_BYTES = 262144;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function json(status, body) {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
}

function hexToBytes(hex) {
  if (typeof hex !== "string" || hex.length % 2 !== 0 || /[^0-9a-fA-F]/.test(hex)) return null;
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
  return out;
}

function bytesToHex(bytes) {
  return [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

let hmacKey = null;
async function sentryKey(secret) {
  hmacKey ??= await crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [
    "verify",
  ]);
  return hmacKey;
}

function fresh(timestamp, windowSecs) {
  const ts = Number(timestamp);
  return Number.isInteger(ts) && Math.abs(Date.now() / 1000 - ts) <= windowSecs;
}

async function readBody(request) {
  const declared = Number(request.headers.get("content-length"));
  if (declared > MAX_BODY_BYTES) return null;
  const body = await request.arrayBuffer();
  return body.byteLength > MAX_BODY_BYTES ? null : body;
}

async function health(env) {
  const integrations = {
    discord_interactions: Boolean(env.DISCORD_PUBLIC_KEY),
    sentry: Boolean(env.SENTRY_CLIENT_SECRET),
    sentry_legacy: Boolean(env.SENTRY_LEGACY_WEBHOOK_TOKEN),
    glitchtip: Boolean(env.GLITCHTIP_WEBHOOK_TOKEN),
    executor_callback: Boolean(env.EXECUTOR_SECRET),
  };
  let consumer = "unreachable: no CONSUMER service binding";
  if (env.CONSUMER) {
    try {
      const answer = await env.CONSUMER.fetch("https://consumer/health");
      const theirs = answer.ok ? await answer.json() : null;
      for (const [name, configured] of Object.entries(theirs?.integrations ?? {})) {
        if (typeof configured === "boolean" && !(name in integrations)) integrations[name] = configured;
      }
      consumer = theirs ? "ok" : "unreachable: it answered with an error";
    } catch {
      consumer = "unreachable: the call failed";
    }
  }
  return json(200, { ok: consumer === "ok", service: "reference-gateway", version: "0", consumer, integrations });
}

async function discord(request, env) {
  const signature = request.headers.get("x-signature-ed25519");
  const timestamp = request.headers.get("x-signature-timestamp");
  const body = await readBody(request);
  if (body === null) return json(413, { error: "body too large" });
  if (!signature || !timestamp) return json(401, { error: "signature header missing" });
  if (!(await verifyKey(body, signature, timestamp, env.DISCORD_PUBLIC_KEY))) {
    return json(401, { error: "signature does not match" });
  }
  if (!fresh(timestamp, 300)) return json(401, { error: "timestamp is outside the replay window" });
  const interaction = JSON.parse(decoder.decode(body));
  if (interaction.type === 1) return json(200, { type: 1 });
  const job = {
    v: 1,
    id: `discord:${interaction.id}`,
    received_at_ms: Date.now(),
    kind: "discord_command",
    interaction: {
      interaction_id: interaction.id,
      application_id: interaction.application_id,
      token: interaction.token,
      guild_id: interaction.guild_id,
      channel_id: interaction.channel_id,
      user: interaction.member?.user ?? interaction.user,
      roles: interaction.member?.roles ?? [],
    },
    command: interaction.data,
  };
  await env.JOBS.send(JSON.stringify(job), { contentType: "text" });
  return json(200, { type: 5 });
}

async function sentry(request, env) {
  const signature = request.headers.get("sentry-hook-signature") ?? request.headers.get("sentry-app-signature");
  const body = await readBody(request);
  if (body === null) return json(413, { error: "body too large" });
  const mac = hexToBytes(signature);
  if (!mac) return json(401, { error: "signature header missing" });
  const key = await sentryKey(env.SENTRY_CLIENT_SECRET);
  if (!(await crypto.subtle.verify("HMAC", key, mac, body))) return json(401, { error: "signature does not match" });
  const timestamp = request.headers.get("sentry-hook-timestamp");
  if (timestamp && !fresh(timestamp, 600)) return json(401, { error: "timestamp is outside the replay window" });
  const payload = decoder.decode(body);
  const envelope = JSON.parse(payload);
  const id = `sentry:${bytesToHex(await crypto.subtle.digest("SHA-256", mac)).slice(0, 32)}:0`;
  const resource = request.headers.get("sentry-hook-resource");
  const job = { v: 1, id, received_at_ms: Date.now(), kind: "sentry_webhook", resource, action: envelope.action, payload };
  await env.JOBS.send(JSON.stringify(job), { contentType: "text" });
  return json(202, { ok: true, jobs: [id] });
}

export default {
  async fetch(request, env) {
    const { pathname } = new URL(request.url);
    if (pathname === "/health" && request.method === "GET") return health(env);
    if (pathname === "/discord/interactions" && request.method === "POST") return discord(request, env);
    if (pathname === "/webhooks/sentry" && request.method === "POST") return sentry(request, env);
    return json(404, { error: "not found" });
  },
};
