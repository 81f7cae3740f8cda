//! Arbitrary bodies, validly signed inside the target, through `ingress::handle` on the Discord
//! interactions route, so every parser behind the signature check is reached. Must never panic;
//! every reply is one Discord understands; every job can be queued and read back.
#![no_main]

use std::sync::LazyLock;

use bugbot_fuzz::{FuzzHeaders, NOW_MS, amplify, check_accepted, check_refused};
use bugbot_shared::ingress::{self, IngressConfig, IngressRequest, Route};
use bugbot_shared::job::JobKind;
use bugbot_shared::verify::DiscordKey;
use ed25519_dalek::{Signer, SigningKey};
use libfuzzer_sys::fuzz_target;

static SIGNER: LazyLock<SigningKey> = LazyLock::new(|| SigningKey::from_bytes(&[0x5a; 32]));
static CONFIG: LazyLock<IngressConfig> = LazyLock::new(|| IngressConfig {
    discord_key: Some(DiscordKey::from_hex(&hex::encode(SIGNER.verifying_key().as_bytes())).unwrap()),
    ..IngressConfig::default()
});

fuzz_target!(|data: &[u8]| {
    let body = amplify(data);
    let timestamp = (NOW_MS / 1000).to_string();
    let signature = SIGNER.sign(&[timestamp.as_bytes(), &body].concat());
    let headers = FuzzHeaders::default()
        .with("X-Signature-Ed25519", hex::encode(signature.to_bytes()))
        .with("X-Signature-Timestamp", timestamp);
    let request = IngressRequest { headers: &headers, body: &body, now_ms: NOW_MS, request_id: "fuzz" };
    match ingress::handle(&CONFIG, &Route::DiscordInteractions, request) {
        Ok(accepted) => {
            check_accepted(&accepted);
            assert_eq!(accepted.status, 200, "Discord only reads 200 replies");
            let reply: serde_json::Value = serde_json::from_str(&accepted.body).unwrap();
            let kind = reply["type"].as_u64().expect("reply has a type");
            match kind {
                5 => {
                    assert_eq!(accepted.jobs.len(), 1, "a deferred reply promises exactly one job");
                    assert!(matches!(accepted.jobs[0].kind, JobKind::DiscordCommand(_) | JobKind::DiscordComponent(_)));
                }
                1 | 8 => assert!(accepted.jobs.is_empty()),
                4 => {
                    assert!(accepted.jobs.is_empty());
                    assert_eq!(reply["data"]["flags"], 64, "errors are ephemeral");
                    assert!(reply["data"]["content"].as_str().is_some_and(|c| !c.is_empty()));
                }
                other => panic!("unexpected reply type {other}"),
            }
        }
        Err(e) => check_refused(&e),
    }
});
