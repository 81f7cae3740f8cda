//! Delivery of a signed [`FixReport`] to the job's callback URL (the gateway's `/executor/callback`),
//! retried with exponential backoff on network errors, 429 and 5xx.

use std::time::Duration;

use bugbot_shared::executor::{self, FixReport, SIGNATURE_HEADER, TIMESTAMP_HEADER};

use crate::config::{Config, Secret};

#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error("no EXECUTOR_SECRET configured to sign the callback")]
    NoSecret,
    #[error("callback refused with HTTP {0}")]
    Refused(u16),
    #[error("callback failed after {attempts} attempts: {last}")]
    GaveUp { attempts: u32, last: String },
}

/// Posts signed reports.
#[derive(Debug, Clone)]
pub struct Callback {
    client: reqwest::Client,
    secret: Option<Secret>,
    attempts: u32,
    backoff: Duration,
}

impl Callback {
    pub fn new(config: &Config) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("bugbot-executor/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a TLS backend is compiled in");
        Self {
            client,
            secret: config.secret.clone(),
            attempts: config.callback_attempts,
            backoff: config.callback_backoff,
        }
    }

    /// POSTs `report` (already redacted) to `url`, signing each attempt afresh.
    pub async fn deliver(&self, url: &str, report: &FixReport) -> Result<(), CallbackError> {
        let secret = self.secret.as_ref().ok_or(CallbackError::NoSecret)?;
        let body = serde_json::to_vec(report).expect("reports serialize");
        let mut delay = self.backoff;
        let mut last = String::new();
        for attempt in 1..=self.attempts {
            let timestamp = crate::unix_now();
            let signature = executor::sign(secret.expose().as_bytes(), timestamp, &body);
            let sent = self
                .client
                .post(url)
                .header("content-type", "application/json")
                .header(TIMESTAMP_HEADER, timestamp.to_string())
                .header(SIGNATURE_HEADER, signature)
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(response) if response.status().is_success() => return Ok(()),
                Ok(response) => {
                    let status = response.status().as_u16();
                    if status != 429 && status != 408 && status < 500 {
                        return Err(CallbackError::Refused(status));
                    }
                    last = format!("HTTP {status}");
                }
                // Without the URL: it is ours, but errors are logged.
                Err(e) => last = e.without_url().to_string(),
            }
            if attempt < self.attempts {
                tracing::warn!(job_id = %report.job_id, attempt, error = %last, "callback failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_mins(1));
            }
        }
        Err(CallbackError::GaveUp { attempts: self.attempts, last })
    }
}
