// Front Worker for the executor container. It authenticates nothing itself: every request is signed
// (X-Bugbot-Timestamp / X-Bugbot-Signature) and verified by the executor on the raw body.
// Jobs are sent in the request body (env passing into containers from workers-rs is unreliable), and
// the container's own configuration comes from this Worker's secrets, passed once at start.

const PORT = 8080;
const PASSED = [
  "EXECUTOR_SECRET", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "GIT_TOKEN", "GIT_USERNAME",
  "GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "CLAUDE_MODEL", "MAX_CONCURRENT_JOBS", "MAX_QUEUED_JOBS",
];

export class ExecutorContainer {
  constructor(ctx, env) {
    this.ctx = ctx;
    this.env = env;
  }

  async fetch(request) {
    const container = this.ctx.container;
    if (!container.running) {
      const env = {};
      for (const name of PASSED) if (this.env[name]) env[name] = String(this.env[name]);
      container.start({ env, enableInternet: true });
    }
    const port = container.getTcpPort(PORT);
    // The service needs a moment after a cold start; retry the connection, not the job.
    for (let attempt = 0; ; attempt++) {
      try {
        return await port.fetch(request.clone());
      } catch (error) {
        if (attempt >= 20) return new Response(`executor unavailable: ${error}`, { status: 503 });
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
  }
}

export default {
  async fetch(request, env) {
    // One executor instance: it queues jobs itself and keeps their status.
    const stub = env.EXECUTOR.get(env.EXECUTOR.idFromName("executor"));
    return stub.fetch(request);
  },
};
