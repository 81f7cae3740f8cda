//! Test credentials and the signing a real sender would do. Values are generated per run, so no
//! secret-looking string is committed.

use std::time::{SystemTime, UNIX_EPOCH};

use ed25519_dalek::{Signer, SigningKey};

/// Credentials for one test run.
#[derive(Debug, Clone)]
pub struct TestKeys {
    discord: SigningKey,
    pub sentry_secret: String,
    pub legacy_token: String,
    pub glitchtip_token: String,
    pub executor_secret: String,
    pub admin_token: String,
    pub slack_signing_secret: String,
}

/// `bytes` random bytes, hex-encoded (a fresh secret or token per run).
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("OS randomness");
    hex::encode(buf)
}

impl Default for TestKeys {
    fn default() -> Self {
        Self::new()
    }
}

impl TestKeys {
    pub fn new() -> Self {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).expect("OS randomness");
        Self {
            discord: SigningKey::from_bytes(&seed),
            sentry_secret: random_hex(32),
            legacy_token: random_hex(16),
            glitchtip_token: random_hex(16),
            executor_secret: random_hex(32),
            admin_token: random_hex(16),
            slack_signing_secret: random_hex(16),
        }
    }

    /// From a fixed Discord seed (the local demo: `.dev.vars` keeps the seed).
    #[must_use]
    pub fn with_discord_seed(mut self, seed: [u8; 32]) -> Self {
        self.discord = SigningKey::from_bytes(&seed);
        self
    }

    pub fn discord_public_hex(&self) -> String {
        hex::encode(self.discord.verifying_key().to_bytes())
    }

    pub fn discord_seed_hex(&self) -> String {
        hex::encode(self.discord.to_bytes())
    }

    /// `X-Signature-Ed25519` and `X-Signature-Timestamp` for `body`, signed now.
    pub fn sign_discord(&self, body: &[u8]) -> [(&'static str, String); 2] {
        self.sign_discord_at(body, now_secs())
    }

    pub fn sign_discord_at(&self, body: &[u8], timestamp: u64) -> [(&'static str, String); 2] {
        let ts = timestamp.to_string();
        let mut msg = ts.as_bytes().to_vec();
        msg.extend_from_slice(body);
        let sig = self.discord.sign(&msg);
        [("x-signature-ed25519", hex::encode(sig.to_bytes())), ("x-signature-timestamp", ts)]
    }

    /// `X-Slack-Request-Timestamp` and `X-Slack-Signature` for `body`, signed at `timestamp`.
    pub fn sign_slack_at(&self, body: &[u8], timestamp: u64) -> [(&'static str, String); 2] {
        let ts = timestamp.to_string();
        let sig = bugbot_shared::slack::sign(self.slack_signing_secret.as_bytes(), &ts, body);
        [("x-slack-request-timestamp", ts), ("x-slack-signature", sig)]
    }

    /// `Sentry-Hook-Signature` for `body`.
    pub fn sign_sentry(&self, body: &[u8]) -> String {
        bugbot_shared::verify::hmac_sha256_hex(self.sentry_secret.as_bytes(), body)
    }
}

/// Wall-clock seconds (native test code; the Workers read their own clock).
pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs()
}
