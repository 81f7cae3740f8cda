// The reference consumer for `make bench`: takes the jobs the reference gateway queues (and acks
// them), and answers the gateway's /health over the service binding.
export default {
  async fetch(request, env) {
    if (new URL(request.url).pathname !== "/health") return new Response("not found", { status: 404 });
    const set = (...names) => names.every((n) => Boolean(env[n]));
    const integrations = {
      linear: set("LINEAR_API_KEY", "LINEAR_TEAM_ID"),
      github: set("GITHUB_TOKEN", "GITHUB_REPO"),
      discord_bot: set("DISCORD_BOT_TOKEN", "DISCORD_APPLICATION_ID"),
      admin: set("ADMIN_TOKEN"),
    };
    return new Response(JSON.stringify({ integrations }), { headers: { "content-type": "application/json" } });
  },
  async queue(batch) {
    for (const message of batch.messages) {
      JSON.parse(message.body);
      message.ack();
    }
  },
};
