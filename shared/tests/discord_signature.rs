//! Discord request authentication and interaction handling, end to end through `ingress::handle`.
//!
//! The real PING captured from Discord (and its invalid twin) pins the signature scheme; bodies
//! signed here with a fixed-seed key exercise every interaction kind the gateway answers.

use bugbot_shared::command::{Command, IssueMention, MENU_CONTEXTUALIZE, MENU_FIX, RepoSlug};
use bugbot_shared::ingress::{self, Accepted, Headers, IngressConfig, IngressError, IngressRequest, Route};
use bugbot_shared::job::{Job, JobKind};
use bugbot_shared::source::discord::Snowflake;
use bugbot_shared::verify::{DiscordKey, SignatureError};
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Value, json};

/// 2026-11-22T00:00:00Z: "today" for the replay-window check (time is passed in, never read).
const TODAY_MS: u64 = 1_795_305_600_000;

/// Request headers as a test builds them.
struct TestHeaders(Vec<(String, String)>);

impl Headers for TestHeaders {
    fn get(&self, name: &str) -> Option<String> {
        self.0.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
    }
}

fn fixture_text(path: &str) -> String {
    let path = format!("{}/../fixtures/discord/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn fixture(path: &str) -> Value {
    serde_json::from_str(&fixture_text(path)).unwrap()
}

/// The captured PING and its twin, as recorded.
struct Capture {
    public_key: String,
    valid: (String, String, String),
    invalid: (String, String, String),
}

fn capture() -> Capture {
    let v = fixture("ssmmiles_signed_ping_valid_and_invalid.json");
    let s = |k: &str| v[k].as_str().unwrap_or_else(|| panic!("{k}")).to_owned();
    Capture {
        public_key: s("PUBLIC_KEY"),
        valid: (s("TIMESTAMP_VALID"), s("BODY_VALID"), s("SIGNATURE_VALID")),
        invalid: (s("TIMESTAMP_INVALID"), s("BODY_INVALID"), s("SIGNATURE_INVALID")),
    }
}

fn config(key: DiscordKey, replay_window_secs: u64) -> IngressConfig {
    IngressConfig { discord_key: Some(key), replay_window_secs, ..IngressConfig::default() }
}

/// Posts to the interactions route with the given signature headers (`None` leaves one out).
fn post(
    cfg: &IngressConfig,
    timestamp: Option<&str>,
    body: &[u8],
    signature: Option<&str>,
    now_ms: u64,
) -> Result<Accepted, IngressError> {
    let mut headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
    if let Some(sig) = signature {
        headers.push(("X-Signature-Ed25519".to_owned(), sig.to_owned()));
    }
    if let Some(ts) = timestamp {
        headers.push(("X-Signature-Timestamp".to_owned(), ts.to_owned()));
    }
    let headers = TestHeaders(headers);
    let route = ingress::route("POST", "/discord/interactions").unwrap();
    assert_eq!(route, Route::DiscordInteractions);
    ingress::handle(cfg, &route, IngressRequest { headers: &headers, body, now_ms, request_id: "req-1" })
}

fn assert_unauthorized(result: Result<Accepted, IngressError>, expected: SignatureError, what: &str) {
    match result {
        Err(e @ IngressError::Unauthorized(reason)) => {
            assert_eq!(reason, expected, "{what}: wrong reason");
            assert_eq!(e.status(), 401, "{what}");
            let body: Value = serde_json::from_str(&e.body()).unwrap();
            assert!(body["error"].is_string(), "{what}: error body {body}");
        }
        other => panic!("{what}: expected 401 {expected:?}, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The captured PING

#[test]
fn captured_ping_verifies_with_discord_key() {
    let c = capture();
    let key = DiscordKey::from_hex(&c.public_key).unwrap();
    let (ts, body, sig) = &c.valid;
    assert_eq!(key.verify(ts, body.as_bytes(), sig), Ok(()));
}

#[test]
fn captured_invalid_twin_does_not_verify() {
    let c = capture();
    let key = DiscordKey::from_hex(&c.public_key).unwrap();
    let (ts, body, sig) = &c.invalid;
    assert_eq!(key.verify(ts, body.as_bytes(), sig), Err(SignatureError::Mismatch));
    // Nor does any mix of the twin's parts with the valid capture's.
    let (vts, vbody, vsig) = &c.valid;
    assert_eq!(key.verify(vts, vbody.as_bytes(), sig), Err(SignatureError::Mismatch));
    assert_eq!(key.verify(ts, vbody.as_bytes(), vsig), Err(SignatureError::Mismatch));
    assert_eq!(key.verify(vts, body.as_bytes(), vsig), Err(SignatureError::Mismatch));
}

#[test]
fn captured_ping_through_ingress_gets_pong() {
    let c = capture();
    // The capture is from July 2022: switch the replay window off to test the signature alone.
    let cfg = config(DiscordKey::from_hex(&c.public_key).unwrap(), 0);
    let (ts, body, sig) = &c.valid;
    let accepted = post(&cfg, Some(ts), body.as_bytes(), Some(sig), TODAY_MS).unwrap();
    assert_eq!(accepted.status, 200);
    assert_eq!(serde_json::from_str::<Value>(&accepted.body).unwrap(), json!({"type": 1}));
    assert!(accepted.jobs.is_empty());
    assert_eq!(accepted.note, Some("ping"));

    let (ts, body, sig) = &c.invalid;
    assert_unauthorized(post(&cfg, Some(ts), body.as_bytes(), Some(sig), TODAY_MS), SignatureError::Mismatch, "twin");
}

#[test]
fn replay_window_rejects_the_old_capture_but_not_a_fresh_one() {
    let c = capture();
    let cfg = config(DiscordKey::from_hex(&c.public_key).unwrap(), ingress::DEFAULT_REPLAY_WINDOW_SECS);
    let (ts, body, sig) = &c.valid;
    assert_unauthorized(post(&cfg, Some(ts), body.as_bytes(), Some(sig), TODAY_MS), SignatureError::Stale, "2022 PING");

    // The same request at the time it was sent, and at the window's edges.
    let sent_ms = ts.parse::<u64>().unwrap() * 1000;
    assert_eq!(post(&cfg, Some(ts), body.as_bytes(), Some(sig), sent_ms).unwrap().status, 200);
    let window_ms = ingress::DEFAULT_REPLAY_WINDOW_SECS * 1000;
    assert_eq!(post(&cfg, Some(ts), body.as_bytes(), Some(sig), sent_ms + window_ms).unwrap().status, 200);
    assert_eq!(post(&cfg, Some(ts), body.as_bytes(), Some(sig), sent_ms - window_ms).unwrap().status, 200);
    assert_unauthorized(
        post(&cfg, Some(ts), body.as_bytes(), Some(sig), sent_ms + window_ms + 1000),
        SignatureError::Stale,
        "one second past the window",
    );
}

#[test]
fn every_forgery_of_the_captured_ping_is_401() {
    let c = capture();
    let cfg = config(DiscordKey::from_hex(&c.public_key).unwrap(), 0);
    let (ts, body, sig) = &c.valid;
    let body = body.as_bytes();
    let send = |ts: Option<&str>, body: &[u8], sig: Option<&str>| post(&cfg, ts, body, sig, TODAY_MS);

    // Tampered body: one character of the user name, then re-serialized JSON (same meaning).
    let tampered = String::from_utf8(body.to_vec()).unwrap().replace("\"miles\"", "\"niles\"");
    assert_ne!(tampered.as_bytes(), body);
    assert_unauthorized(send(Some(ts), tampered.as_bytes(), Some(sig)), SignatureError::Mismatch, "tampered body");
    let reserialized = serde_json::to_string_pretty(&serde_json::from_slice::<Value>(body).unwrap()).unwrap();
    assert_unauthorized(send(Some(ts), reserialized.as_bytes(), Some(sig)), SignatureError::Mismatch, "re-serialized");
    let mut trailing = body.to_vec();
    trailing.push(b'\n');
    assert_unauthorized(send(Some(ts), &trailing, Some(sig)), SignatureError::Mismatch, "trailing newline");
    assert_unauthorized(send(Some(ts), b"", Some(sig)), SignatureError::Mismatch, "empty body");

    // Other timestamp (one second later), and the same digits padded.
    let later = (ts.parse::<u64>().unwrap() + 1).to_string();
    assert_unauthorized(send(Some(&later), body, Some(sig)), SignatureError::Mismatch, "other timestamp");
    assert_unauthorized(send(Some(&format!("0{ts}")), body, Some(sig)), SignatureError::Mismatch, "padded timestamp");

    // Every single flipped bit of the signature.
    let sig_bytes = hex::decode(sig).unwrap();
    for bit in 0..512 {
        let mut flipped = sig_bytes.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        assert_unauthorized(
            send(Some(ts), body, Some(&hex::encode(&flipped))),
            SignatureError::Mismatch,
            &format!("signature bit {bit} flipped"),
        );
    }

    // Truncated, extended, non-hex, empty signatures are malformed.
    for (what, bad) in [
        ("truncated by one byte", sig[..126].to_owned()),
        ("truncated by one nibble", sig[..127].to_owned()),
        ("half", sig[..64].to_owned()),
        ("one byte too long", format!("{sig}00")),
        ("non-hex", format!("{}zz", &sig[..126])),
        ("0x prefix", format!("0x{}", &sig[..126])),
        ("empty", String::new()),
        ("space inside", format!("{} {}", &sig[..64], &sig[65..])),
    ] {
        assert_unauthorized(send(Some(ts), body, Some(&bad)), SignatureError::Malformed, what);
    }

    // Missing headers.
    assert_unauthorized(send(Some(ts), body, None), SignatureError::Missing, "no signature header");
    assert_unauthorized(send(None, body, Some(sig)), SignatureError::Missing, "no timestamp header");
    assert_unauthorized(send(None, body, None), SignatureError::Missing, "no headers");
}

#[test]
fn header_names_are_case_insensitive_and_key_is_required() {
    let c = capture();
    let (ts, body, sig) = &c.valid;
    let headers = TestHeaders(vec![
        ("x-signature-ed25519".to_owned(), sig.clone()),
        ("X-SIGNATURE-TIMESTAMP".to_owned(), ts.clone()),
    ]);
    let req = IngressRequest { headers: &headers, body: body.as_bytes(), now_ms: TODAY_MS, request_id: "r" };
    let cfg = config(DiscordKey::from_hex(&c.public_key).unwrap(), 0);
    assert_eq!(ingress::handle(&cfg, &Route::DiscordInteractions, req).unwrap().status, 200);

    let unconfigured = IngressConfig::default();
    let err = ingress::handle(&unconfigured, &Route::DiscordInteractions, req).unwrap_err();
    assert_eq!(err, IngressError::NotConfigured("DISCORD_PUBLIC_KEY"));
    assert_eq!(err.status(), 503);

    // Another application's key does not accept Discord's signature for this one.
    let other = config(DiscordKey::from_hex(&hex::encode(signer().verifying_key().as_bytes())).unwrap(), 0);
    assert_unauthorized(
        ingress::handle(&other, &Route::DiscordInteractions, req),
        SignatureError::Mismatch,
        "other key",
    );
}

#[test]
fn public_key_parsing() {
    let c = capture();
    assert!(DiscordKey::from_hex(&format!("  {}\n", c.public_key)).is_ok(), "surrounding whitespace is trimmed");
    assert!(DiscordKey::from_hex(&c.public_key.to_uppercase()).is_ok());
    assert!(DiscordKey::from_hex(&c.public_key[..62]).is_err());
    assert!(DiscordKey::from_hex(&format!("{}00", c.public_key)).is_err());
    assert!(DiscordKey::from_hex("").is_err());
    assert!(DiscordKey::from_hex(&"g".repeat(64)).is_err());
}

// ---------------------------------------------------------------------------------------------
// Interactions signed here

const SEED: [u8; 32] = *b"bugbot test key, not for prod!!!";
const INTERACTION_ID: u64 = 1_300_000_000_000_000_001;
const APPLICATION_ID: u64 = 1_200_000_000_000_000_002;

fn signer() -> SigningKey {
    SigningKey::from_bytes(&SEED)
}

fn own_config() -> IngressConfig {
    config(DiscordKey::from_hex(&hex::encode(signer().verifying_key().as_bytes())).unwrap(), 300)
}

/// Signs `body` as Discord would at `TODAY_MS` and sends it.
fn send_signed(body: &Value) -> Result<Accepted, IngressError> {
    let body = serde_json::to_vec(body).unwrap();
    let ts = (TODAY_MS / 1000).to_string();
    let sig = signer().sign(&[ts.as_bytes(), &body].concat());
    post(&own_config(), Some(&ts), &body, Some(&hex::encode(sig.to_bytes())), TODAY_MS)
}

/// A docs example completed with what a real delivery always carries.
fn complete(mut interaction: Value) -> Value {
    let base = fixture("api_docs_examples/interaction_slash_command_with_string_option.json");
    for key in ["member", "guild_id", "channel_id", "token"] {
        if interaction.get(key).is_none() {
            interaction[key] = base[key].clone();
        }
    }
    interaction["id"] = json!(INTERACTION_ID.to_string());
    interaction["application_id"] = json!(APPLICATION_ID.to_string());
    interaction
}

fn slash(subcommand: &str, options: &Value) -> Value {
    let mut i = fixture("api_docs_examples/interaction_slash_command_with_string_option.json");
    i["data"] = json!({"id": "771825006014889984", "name": "bugbot", "type": 1,
        "options": [{"name": subcommand, "type": 1, "options": options}]});
    complete(i)
}

fn reply(accepted: &Accepted) -> Value {
    assert_eq!(accepted.status, 200);
    serde_json::from_str(&accepted.body).unwrap()
}

/// A deferred reply (type 5) with exactly one job, which must survive the queue.
fn deferred_job(accepted: &Accepted) -> Job {
    deferred_as(accepted, 5)
}

/// A click or modal submit: a deferred update of the message it was on (type 6), one job.
fn updated_job(accepted: &Accepted) -> Job {
    deferred_as(accepted, 6)
}

fn deferred_as(accepted: &Accepted, kind: u8) -> Job {
    assert_eq!(reply(accepted), json!({"type": kind}), "reply");
    let [job] = accepted.jobs.as_slice() else { panic!("expected one job, got {:?}", accepted.jobs) };
    assert_eq!(job.id.as_str(), format!("discord:{INTERACTION_ID}"));
    assert_eq!(job.received_at_ms, TODAY_MS);
    assert_eq!(job.request_id.as_deref(), Some("req-1"));
    assert_eq!(Job::from_message(&job.to_message().unwrap()).unwrap(), *job);
    job.clone()
}

/// An ephemeral error message (type 4, flags 64) and no job.
fn ephemeral_refusal(accepted: &Accepted) -> String {
    let r = reply(accepted);
    assert_eq!(r["type"], 4, "{r}");
    assert_eq!(r["data"]["flags"], 64, "{r}");
    assert!(accepted.jobs.is_empty(), "a refused command enqueued {:?}", accepted.jobs);
    assert_eq!(accepted.note, Some("invalid command"));
    r["data"]["content"].as_str().unwrap().to_owned()
}

fn command_of(job: &Job) -> &Command {
    let JobKind::DiscordCommand(c) = &job.kind else {
        panic!("expected a discord_command job, got {}", job.kind.name())
    };
    assert_eq!(c.interaction.interaction_id, Snowflake(INTERACTION_ID));
    assert_eq!(c.interaction.application_id, Snowflake(APPLICATION_ID));
    assert_eq!(c.interaction.token, "A_UNIQUE_TOKEN");
    assert_eq!(c.interaction.guild_id, Some(Snowflake(290_926_798_626_357_999)));
    assert_eq!(c.interaction.channel_id, Some(Snowflake(645_027_906_669_510_667)));
    assert_eq!(c.interaction.user.as_ref().map(|u| u.username.as_str()), Some("Mason"));
    assert_eq!(c.interaction.roles, vec![Snowflake(539_082_325_061_836_999)]);
    &c.command
}

#[test]
fn every_bugbot_subcommand_is_deferred_with_one_job() {
    let cases: [(&str, Value); 7] = [
        (
            "contextualize",
            json!([{"name": "issue", "type": 3, "value": "ENG-12"}, {"name": "note", "type": 3, "value": "é 🐛"}]),
        ),
        (
            "fix",
            json!([{"name": "issue", "type": 3, "value": "#42"}, {"name": "repo", "type": 3, "value": "acme/web"}]),
        ),
        ("status", json!([])),
        ("errors", json!([{"name": "project", "type": 3, "value": "web"}, {"name": "hours", "type": 4, "value": 6}])),
        ("stats", json!([{"name": "period", "type": 3, "value": "month"}])),
        ("resolve", json!([{"name": "issue", "type": 3, "value": "ENG-7"}])),
        ("investigate", json!([{"name": "issue", "type": 3, "value": "https://sentry.io/issues/1/"}])),
    ];
    for (sub, options) in cases {
        let accepted = send_signed(&slash(sub, &options)).unwrap_or_else(|e| panic!("{sub}: {e}"));
        let job = deferred_job(&accepted);
        let command = command_of(&job);
        assert_eq!(command.name(), sub);
        match (sub, command) {
            ("contextualize", Command::Contextualize { issue, note }) => {
                assert_eq!(issue.as_ref().map(IssueMention::as_str), Some("ENG-12"));
                assert_eq!(note.as_deref(), Some("é 🐛"));
            }
            ("fix", Command::Fix { issue, repo }) => {
                assert_eq!(issue.as_ref().map(IssueMention::as_str), Some("#42"));
                assert_eq!(repo.as_ref().map(RepoSlug::as_str), Some("acme/web"));
            }
            ("errors", Command::Errors { project, hours }) => {
                assert_eq!((project.as_deref(), *hours), (Some("web"), Some(6)));
            }
            ("status" | "stats" | "resolve" | "investigate", _) => {}
            (sub, other) => panic!("{sub} parsed as {other:?}"),
        }
    }
}

#[test]
fn bad_commands_get_an_ephemeral_answer_and_no_job() {
    let cases = [
        ("unknown subcommand", slash("deploy", &json!([])), "not a subcommand"),
        ("missing option", slash("resolve", &json!([])), "needs the `issue` option"),
        ("bad option", slash("errors", &json!([{"name": "hours", "type": 4, "value": 100_000}])), "hours"),
        ("bad repo", slash("fix", &json!([{"name": "repo", "type": 3, "value": "../etc"}])), "owner/name"),
        (
            "another app's command (docs example as-is)",
            complete(fixture("api_docs_examples/interaction_slash_command_with_string_option.json")),
            "not a bugbot command",
        ),
        ("user command", complete(fixture("api_docs_examples/interaction_user_command.json")), "not a bugbot command"),
    ];
    for (what, body, needle) in cases {
        let accepted = send_signed(&body).unwrap_or_else(|e| panic!("{what}: {e}"));
        let content = ephemeral_refusal(&accepted);
        assert!(content.contains(needle), "{what}: {content:?} does not mention {needle:?}");
    }
}

#[test]
fn real_captured_commands_of_another_app_are_refused_politely() {
    let all = fixture("ssmmiles_real_interactions.json");
    for name in ["testCommandInteraction", "test2CommandInteraction"] {
        let accepted = send_signed(&all[name]).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(ephemeral_refusal(&accepted).contains("not a bugbot command"), "{name}");
    }
}

#[test]
fn message_context_commands() {
    let original = complete(fixture("api_docs_examples/interaction_message_context_command.json"));
    // As registered in the docs example ("context-menu-message-2") it is not ours.
    assert!(ephemeral_refusal(&send_signed(&original).unwrap()).contains("context-menu-message-2"));

    for (menu, want_fix) in [(MENU_FIX, true), (MENU_CONTEXTUALIZE, false)] {
        let mut body = original.clone();
        body["data"]["name"] = json!(menu);
        let job = deferred_job(&send_signed(&body).unwrap());
        let JobKind::DiscordCommand(c) = &job.kind else { panic!("{menu}: {:?}", job.kind) };
        assert_eq!(c.interaction.user.as_ref().unwrap().username, "ian", "{menu}");
        assert_eq!(c.interaction.roles, vec![Snowflake(785_609_923_542_777_878)]);
        let message = match (&c.command, want_fix) {
            (Command::FixMessage { message }, true) | (Command::ContextualizeMessage { message }, false) => message,
            (other, _) => panic!("{menu} parsed as {other:?}"),
        };
        assert_eq!(message.id, Snowflake(867_793_854_505_943_041));
        assert_eq!(message.content, "some message");
        assert_eq!(message.author.as_ref().unwrap().username, "ian");
    }

    // The target message missing from `resolved` is refused, not queued.
    let mut body = original;
    body["data"]["name"] = json!(MENU_FIX);
    body["data"]["resolved"] = json!({"messages": {}});
    assert!(ephemeral_refusal(&send_signed(&body).unwrap()).contains("target message"));
}

fn component_of(job: &Job) -> &bugbot_shared::job::DiscordComponentJob {
    let JobKind::DiscordComponent(c) = &job.kind else { panic!("expected discord_component, got {}", job.kind.name()) };
    c
}

#[test]
fn components_are_deferred_with_one_job() {
    let mut button = complete(fixture("api_docs_examples/interaction_button_data_partial.json"));
    button["message"] = json!({"id": "1100000000000000003", "channel_id": "645027906669510667", "content": "ENG-12"});
    let job = updated_job(&send_signed(&button).unwrap());
    let c = component_of(&job);
    assert_eq!(c.custom_id, "click_me");
    assert!(c.values.is_empty() && c.fields.is_empty());
    assert_eq!(c.message_id, Some(Snowflake(1_100_000_000_000_000_003)));

    let select = complete(fixture("api_docs_examples/interaction_string_select_data_partial.json"));
    let job = updated_job(&send_signed(&select).unwrap());
    let c = component_of(&job);
    assert_eq!((c.custom_id.as_str(), c.values.as_slice()), ("favorite_bug", ["butterfly".to_owned()].as_slice()));
    assert_eq!(c.message_id, None);

    // A real button press, captured from Discord (another app's, but the gateway does not care).
    let mut real = fixture("ssmmiles_real_interactions.json")["buttonInteraction"].clone();
    real["id"] = json!(INTERACTION_ID.to_string());
    let job = updated_job(&send_signed(&real).unwrap());
    let c = component_of(&job);
    assert_eq!(c.custom_id, "testButton|{}");
    assert_eq!(c.message_id, Some(Snowflake(960_775_653_731_500_053)));
    assert_eq!(c.interaction.user.as_ref().unwrap().username, "miles");

    // A component without custom_id is a malformed delivery.
    let mut bad = button;
    bad["data"].as_object_mut().unwrap().remove("custom_id");
    let err = send_signed(&bad).unwrap_err();
    assert!(matches!(&err, IngressError::BadRequest(m) if m.contains("custom_id")), "{err:?}");
    assert_eq!(err.status(), 400);
}

#[test]
fn modal_submits_carry_their_fields() {
    let text = complete(fixture("api_docs_examples/interaction_modal_submit_text_input_partial.json"));
    let job = updated_job(&send_signed(&text).unwrap());
    let c = component_of(&job);
    assert_eq!(c.custom_id, "game_feedback_modal");
    assert_eq!(c.fields.len(), 1);
    assert_eq!(c.fields[0].0, "game_feedback");
    assert!(c.fields[0].1.starts_with("The recent changes to acceleration"));

    let select = complete(fixture("api_docs_examples/interaction_modal_submit_string_select_partial.json"));
    let job = updated_job(&send_signed(&select).unwrap());
    let c = component_of(&job);
    assert_eq!(c.custom_id, "bug_modal");
    assert_eq!(c.fields, vec![("favorite_bug".to_owned(), "butterfly".to_owned())]);
}

/// "Fix with instructions" is answered with its modal at once (a modal can only be the first
/// answer), and nothing is queued; the modal's submit then comes back as a job like any click.
#[test]
fn the_fix_with_instructions_button_opens_a_modal_without_a_job() {
    let mut button = complete(fixture("api_docs_examples/interaction_button_data_partial.json"));
    button["data"]["custom_id"] = json!("bb1:fixi:sentry:42");
    button["message"] = json!({"id": "1100000000000000003", "channel_id": "645027906669510667", "content": ""});
    let accepted = send_signed(&button).unwrap();
    assert!(accepted.jobs.is_empty() && accepted.messages.is_empty());
    let modal = reply(&accepted);
    assert_eq!(modal["type"], 9);
    assert_eq!(modal["data"]["custom_id"], "bb1:fixm:sentry:42");
    assert_eq!(modal["data"]["components"][0]["component"]["custom_id"], "instructions");

    // Its submit is queued (the consumer authorizes it), answered with a deferred update.
    let mut submit = complete(fixture("api_docs_examples/interaction_modal_submit_text_input_partial.json"));
    submit["data"]["custom_id"] = json!("bb1:fixm:sentry:42");
    submit["data"]["components"][0]["component"]["custom_id"] = json!("instructions");
    let job = updated_job(&send_signed(&submit).unwrap());
    let c = component_of(&job);
    assert_eq!(c.custom_id, "bb1:fixm:sentry:42");
    assert_eq!(c.fields[0].0, "instructions");

    // Another version's (or a malformed) custom_id is not answered with a modal: it is queued,
    // and the consumer says the button is out of date.
    for other in ["bb0:fixi:sentry:42", "bb1:fixi:Not A Fingerprint"] {
        button["data"]["custom_id"] = json!(other);
        let job = updated_job(&send_signed(&button).unwrap());
        assert_eq!(component_of(&job).custom_id, other);
    }
}

#[test]
fn autocomplete_answers_at_once_without_a_job() {
    let body = complete(fixture("api_docs_examples/interaction_autocomplete.json"));
    let accepted = send_signed(&body).unwrap();
    assert_eq!(reply(&accepted), json!({"type": 8, "data": {"choices": []}}));
    assert!(accepted.jobs.is_empty());
    assert_eq!(accepted.note, Some("autocomplete"));
}

#[test]
fn signed_but_unusable_bodies_are_400_not_401() {
    let not_json = b"{\"type\":1,";
    let ts = (TODAY_MS / 1000).to_string();
    let sig = hex::encode(signer().sign(&[ts.as_bytes(), not_json.as_slice()].concat()).to_bytes());
    let err = post(&own_config(), Some(&ts), not_json, Some(&sig), TODAY_MS).unwrap_err();
    assert!(matches!(&err, IngressError::BadRequest(m) if m.contains("not valid JSON")), "{err:?}");
    assert_eq!(err.status(), 400);

    let err = send_signed(&complete(json!({"type": 42}))).unwrap_err();
    assert_eq!(err, IngressError::BadRequest("unsupported interaction type 42".into()));

    let err = send_signed(&json!({"type": 1})).unwrap_err();
    assert!(matches!(&err, IngressError::BadRequest(_)), "a PING without id: {err:?}");

    // A signed, non-numeric timestamp is refused even with the window off.
    let cfg = config(DiscordKey::from_hex(&hex::encode(signer().verifying_key().as_bytes())).unwrap(), 0);
    let body = br#"{"type":1}"#;
    let sig = hex::encode(signer().sign(&[b"soon".as_slice(), body].concat()).to_bytes());
    assert_unauthorized(post(&cfg, Some("soon"), body, Some(&sig), TODAY_MS), SignatureError::BadTimestamp, "ts");
}

/// Regression: an interaction whose job cannot be queued (here a 130 KB token) used to be
/// answered "deferred" and then fail at the queue. It is refused at ingress instead.
#[test]
fn an_interaction_too_large_to_queue_is_refused() {
    let mut body = slash("status", &json!([]));
    body["token"] = json!("t".repeat(130 * 1024));
    let err = send_signed(&body).unwrap_err();
    assert_eq!(err, IngressError::PayloadTooLarge { limit: bugbot_shared::job::MAX_JOB_BYTES });
    assert_eq!(err.status(), 413);
}
