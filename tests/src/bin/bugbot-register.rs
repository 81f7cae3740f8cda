//! Registers bugbot's Discord commands (`shared::commands_def`): the `/bugbot` slash command and
//! the two message context-menu commands. A bulk overwrite, so running it again is harmless.
//!
//! ```text
//! DISCORD_APPLICATION_ID=… DISCORD_BOT_TOKEN=… cargo run -p bugbot-e2e --bin bugbot-register [-- --guild ID]
//! ```
//! Guild commands appear at once (use them while developing); global ones can take up to an hour.

use anyhow::{Context, bail};
use clap::Parser;

#[derive(Parser)]
#[command(about = "Register bugbot's Discord commands")]
struct Args {
    /// Register for this guild only (instant) instead of globally.
    #[arg(long)]
    guild: Option<String>,
    /// The Discord API base.
    #[arg(long, default_value = "https://discord.com/api/v10")]
    api_base: String,
    /// Print the definitions and exit.
    #[arg(long)]
    print: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let definitions = bugbot_shared::commands_def::definitions();
    if args.print {
        println!("{}", serde_json::to_string_pretty(&definitions)?);
        return Ok(());
    }
    let app = std::env::var("DISCORD_APPLICATION_ID").context("DISCORD_APPLICATION_ID is not set")?;
    let token = std::env::var("DISCORD_BOT_TOKEN").context("DISCORD_BOT_TOKEN is not set")?;
    if !app.bytes().all(|b| b.is_ascii_digit())
        || args.guild.as_deref().is_some_and(|g| !g.bytes().all(|b| b.is_ascii_digit()))
    {
        bail!("application and guild ids are numeric snowflakes");
    }
    let base = args.api_base.trim_end_matches('/');
    let url = match &args.guild {
        Some(guild) => format!("{base}/applications/{app}/guilds/{guild}/commands"),
        None => format!("{base}/applications/{app}/commands"),
    };
    let response = reqwest::Client::new()
        .put(&url)
        .header("authorization", format!("Bot {token}"))
        .header(
            "user-agent",
            concat!("DiscordBot (https://github.com/bugbot-dev/bugbot, ", env!("CARGO_PKG_VERSION"), ")"),
        )
        .json(&definitions)
        .send()
        .await
        .context("PUT commands")?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!("Discord answered {status}: {}", body.replace(&token, "[redacted]"));
    }
    let registered: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let names: Vec<&str> = registered.as_array().into_iter().flatten().filter_map(|c| c["name"].as_str()).collect();
    let scope = args.guild.map_or_else(|| "globally".to_owned(), |g| format!("in guild {g}"));
    println!("registered {} commands {scope}: {}", names.len(), names.join(", "));
    Ok(())
}
