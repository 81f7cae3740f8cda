//! Discord: the alert message, one compact embed edited as the issue's state changes.

#[allow(clippy::wildcard_imports)]
use super::*;

/// The state a Discord alert shows; the same message is edited as it changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertState {
    Open,
    Resolved,
    Regressed,
}

/// A Discord "create message" (or "edit message") body with one compact embed linking the tracked
/// issue (<https://discord.com/developers/docs/resources/message#create-message>). Mentions are
/// disabled (`allowed_mentions.parse = []`) and neutralized in the text, so an error message can
/// never ping anyone.
pub fn discord_alert_message(event: &ErrorEvent, issue_url: &str, state: AlertState) -> Value {
    let prefix = match state {
        AlertState::Open => "",
        AlertState::Resolved => "Resolved: ",
        AlertState::Regressed => "Regressed: ",
    };
    let title = clip(&format!("{prefix}{}", discord_mentions(&one_line(&event.title))), EMBED_TITLE_MAX);

    let mut description = String::new();
    if let Some(exception) = &event.exception
        && let Some(kind) = &exception.kind
    {
        let _ = write!(description, "**{}**", discord_text(kind));
        if let Some(value) = &exception.value {
            let _ = write!(description, ": {}", discord_text(&clip(&one_line(value), 300)));
        }
        description.push('\n');
    }
    let frame = event.top_in_app_frames(1).first().copied();
    match (frame, &event.culprit) {
        (Some(frame), _) => {
            description.push_str(&discord_code(&frame.location()));
            if let Some(function) = &frame.function {
                let _ = write!(description, " in {}", discord_code(function));
            }
        }
        (None, Some(culprit)) => description.push_str(&discord_code(culprit)),
        (None, None) => {}
    }
    let description = clip(description.trim_end(), 1_000.min(EMBED_DESCRIPTION_MAX));

    // Field values stay well under 1024 so the whole embed stays under 6000 characters.
    let mut fields = Vec::new();
    let mut field = |name: &str, value: Option<String>| {
        if let Some(value) = value.filter(|v| !v.trim().is_empty()) {
            fields.push(json!({"name": name, "value": clip(&value, 256.min(EMBED_FIELD_VALUE_MAX)), "inline": true}));
        }
    };
    field("Project", event.project.as_deref().map(discord_text));
    field("Environment", event.environment.as_deref().map(discord_text));
    field("Release", event.release.as_deref().map(discord_code));
    field("Events", event.count.map(|c| c.to_string()));
    field("Level", Some(event.level.to_string()));
    field("Source", event.link.as_deref().and_then(safe_url).map(|u| format!("[{}]({u})", event.source.product())));

    let mut embed = json!({
        "title": title,
        "description": description,
        "color": color(event.level, state),
        "fields": fields,
        "footer": {"text": clip(&format!("bugbot · {}", event.fingerprint), EMBED_FOOTER_MAX)},
        "timestamp": format_rfc3339_ms(event.last_seen_ms),
    });
    if let Some(url) = safe_url(issue_url) {
        embed["url"] = Value::String(url);
    }
    if description.is_empty() {
        embed.as_object_mut().expect("an object").remove("description");
    }
    // The card's buttons (issue 19): what applies in this state; a mute or a running fix is
    // shown when the card is edited by a click (`chatops`), which reads them back from state.
    let view = crate::chatops::CardView {
        issue_url: safe_url(issue_url).as_deref().map(|_| issue_url),
        resolved: state == AlertState::Resolved,
        ..crate::chatops::CardView::default()
    };
    let components = crate::chatops::card_components(&event.fingerprint, &view, 0);
    json!({ "embeds": [embed], "components": components, "allowed_mentions": {"parse": []} })
}

/// Embed colour: green when resolved, magenta when regressed, else by level.
pub(super) fn color(level: Level, state: AlertState) -> u32 {
    match (state, level) {
        (AlertState::Resolved, _) => 0x2E_CC_71,
        (AlertState::Regressed, _) => 0xE9_1E_63,
        (AlertState::Open, Level::Fatal) => 0x99_2D_22,
        (AlertState::Open, Level::Error) => 0xE7_4C_3C,
        (AlertState::Open, Level::Warning) => 0xF1_C4_0F,
        (AlertState::Open, Level::Info) => 0x34_98_DB,
        (AlertState::Open, Level::Debug) => 0x95_A5_A6,
    }
}

/// Makes a create-message body safe to send twice: Discord answers a second create carrying the same
/// `nonce` (from the same bot, within a few minutes) with the message the first one made, rather
/// than posting another (`enforce_nonce`). So when a post's answer is lost (a timeout, a 5xx after the
/// message was made) and the job is retried, the channel still gets one alert card. The nonce is 25
/// hex digits (Discord's limit) of a hash of `key`, which names the message (the card of one issue).
pub fn with_nonce(message: &mut Value, key: &str) {
    let nonce = &crate::verify::sha256_hex(key.as_bytes())[..25];
    message["nonce"] = json!(nonce);
    message["enforce_nonce"] = json!(true);
}

/// Adds the confidence breakdown (issue 16.3, one line of bugbot's own words) to an alert card as a
/// full-width field.
pub fn with_confidence(message: &mut Value, line: &str) {
    if let Some(fields) = message.pointer_mut("/embeds/0/fields").and_then(Value::as_array_mut) {
        fields.push(json!({"name": "Confidence", "value": clip(&discord_text(line), 256), "inline": false}));
    }
}
