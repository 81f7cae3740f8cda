//! Request authentication. Every check runs on the exact raw bytes received, before any parsing,
//! and every secret comparison is constant-time.

use curve25519_dalek::Scalar;
use curve25519_dalek::edwards::CompressedEdwardsY;
use curve25519_dalek::traits::Identity;
use ed25519_dalek::{Signature, VerifyingKey};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Why a signature was refused. Deliberately coarse: callers answer 401 either way and log the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signature header missing")]
    Missing,
    #[error("signature is not well-formed hex of the right length")]
    Malformed,
    #[error("signature does not match")]
    Mismatch,
    #[error("timestamp header is missing or not a unix time")]
    BadTimestamp,
    #[error("timestamp is outside the replay window")]
    Stale,
}

/// A configured public key is unusable (wrong length, not hex, or not a curve point).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("public key must be 64 hex characters encoding a valid Ed25519 point")]
pub struct BadPublicKey;

/// The Discord application's public key, parsed once per isolate.
///
/// See <https://discord.com/developers/docs/interactions/overview#setting-up-an-endpoint-validating-security-request-headers>.
#[derive(Debug, Clone)]
pub struct DiscordKey {
    key: VerifyingKey,
    /// Of small order: `verify_strict` refuses every signature under it.
    weak: bool,
    /// In the prime-order subgroup (a key made the usual way is), so every point the equation yields
    /// is too ([`Prechecked::settle`]).
    torsion_free: bool,
}

impl DiscordKey {
    pub fn from_hex(hex_key: &str) -> Result<Self, BadPublicKey> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_key.trim(), &mut bytes).map_err(|_| BadPublicKey)?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| BadPublicKey)?;
        Ok(Self { weak: key.is_weak(), torsion_free: key.to_edwards().is_torsion_free(), key })
    }

    /// Verifies `X-Signature-Ed25519` over `X-Signature-Timestamp || raw body`.
    pub fn verify(&self, timestamp: &str, body: &[u8], signature_hex: &str) -> Result<(), SignatureError> {
        let signature = parse_signature(signature_hex)?;
        let mut message = Vec::with_capacity(timestamp.len() + body.len());
        message.extend_from_slice(timestamp.as_bytes());
        message.extend_from_slice(body);
        self.key.verify_strict(&message, &signature).map_err(|_| SignatureError::Mismatch)
    }

    /// The key's 32 bytes as configured (what the signer hashes, and what WebCrypto imports).
    pub fn public_bytes(&self) -> &[u8; 32] {
        self.key.as_bytes()
    }

    /// The checks [`verify_strict`](VerifyingKey::verify_strict) makes besides the Ed25519 equation,
    /// so that the equation can be checked elsewhere (the gateway: WebCrypto, which checks `S < L` and
    /// compares the recomputed `R` with the given bytes, but does not refuse small-order points) with
    /// the same verdict in the end. Before the equation: the key is not of small order (weak) and `S`
    /// is canonical (`S < L`); after it, [`Prechecked::settle`]: `R` is not of small order. A signature
    /// that passes is returned with the signed message (`timestamp || body`); one that fails gets the
    /// error [`Self::verify`] gives.
    pub fn precheck(&self, timestamp: &str, body: &[u8], signature_hex: &str) -> Result<Prechecked, SignatureError> {
        let signature = parse_signature_bytes(signature_hex)?;
        let s: [u8; 32] = signature[32..].try_into().expect("32 bytes");
        if self.weak || !bool::from(Scalar::from_canonical_bytes(s).is_some()) {
            return Err(SignatureError::Mismatch);
        }
        let mut message = Vec::with_capacity(timestamp.len() + body.len());
        message.extend_from_slice(timestamp.as_bytes());
        message.extend_from_slice(body);
        Ok(Prechecked { message, signature, torsion_free_key: self.torsion_free })
    }
}

/// A Discord signature that passed [`DiscordKey::precheck`]: the Ed25519 equation is left to check
/// elsewhere, and its answer to [`Self::settle`].
#[derive(Debug)]
pub struct Prechecked {
    message: Vec<u8>,
    signature: [u8; 64],
    torsion_free_key: bool,
}

impl Prechecked {
    /// What was signed: `X-Signature-Timestamp || raw body`.
    pub fn message(&self) -> &[u8] {
        &self.message
    }

    /// The 64 signature bytes (`R || S`).
    pub fn signature(&self) -> &[u8; 64] {
        &self.signature
    }

    /// The verdict, given whether the equation holds (the encoding of `[S]B − [k]A` is `R`'s bytes):
    /// `verify_strict`'s last refusal is an `R` of small order. When the equation holds, `R` is the
    /// canonical encoding of `[S]B − [k]A`; under a torsion-free key that point is in the prime-order
    /// subgroup, where the only point of small order is the identity, so comparing `R` with the
    /// identity's encoding is the whole check (no square root). Under another key, `R` is decoded.
    pub fn settle(&self, equation_holds: bool) -> Result<(), SignatureError> {
        let r = CompressedEdwardsY(self.signature[..32].try_into().expect("32 bytes"));
        let small_r = if self.torsion_free_key {
            // The identity's encoding as a constant (`EdwardsPoint::identity().compress()` would
            // invert a field element: a few µs of wasm per request for bytes known in advance).
            r == CompressedEdwardsY::identity()
        } else {
            r.decompress().is_none_or(|point| point.is_small_order())
        };
        if equation_holds && !small_r { Ok(()) } else { Err(SignatureError::Mismatch) }
    }
}

fn parse_signature_bytes(signature_hex: &str) -> Result<[u8; 64], SignatureError> {
    let mut bytes = [0u8; 64];
    hex::decode_to_slice(signature_hex, &mut bytes).map_err(|_| SignatureError::Malformed)?;
    Ok(bytes)
}

fn parse_signature(signature_hex: &str) -> Result<Signature, SignatureError> {
    parse_signature_bytes(signature_hex).map(|bytes| Signature::from_bytes(&bytes))
}

/// Strict Ed25519 verification of arbitrary bytes: rejects non-canonical `S` (malleability),
/// non-canonical point encodings and small-order keys. Returns `false` for any malformed input.
pub fn ed25519_verify_strict(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let Ok(key_bytes) = <[u8; 32]>::try_from(public_key) else {
        return false;
    };
    let Ok(sig_bytes) = <[u8; 64]>::try_from(signature) else {
        return false;
    };
    let Ok(key) = VerifyingKey::from_bytes(&key_bytes) else {
        return false;
    };
    key.verify_strict(message, &Signature::from_bytes(&sig_bytes)).is_ok()
}

/// Checks a lowercase- or uppercase-hex HMAC-SHA256 of `body` under `secret`, in constant time.
///
/// This is Sentry's `Sentry-Hook-Signature`
/// (<https://docs.sentry.io/organization/integrations/integration-platform/webhooks/#sentry-hook-signature>).
pub fn hmac_sha256_hex_matches(secret: &[u8], body: &[u8], signature_hex: &str) -> Result<(), SignatureError> {
    let expected = hmac_sha256_hex_decode(signature_hex)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&expected).map_err(|_| SignatureError::Mismatch)
}

/// [`hmac_sha256_hex_matches`], returning the verified MAC (a keyed hash of `body`, for ids).
pub fn hmac_sha256_hex_verified(secret: &[u8], body: &[u8], signature_hex: &str) -> Result<[u8; 32], SignatureError> {
    hmac_sha256_hex_matches(secret, body, signature_hex)?;
    hmac_sha256_hex_decode(signature_hex)
}

/// The 32 bytes of a hex HMAC-SHA256 header (surrounding blanks ignored), or `Malformed`.
pub fn hmac_sha256_hex_decode(signature_hex: &str) -> Result<[u8; 32], SignatureError> {
    let mut mac = [0u8; 32];
    hex::decode_to_slice(signature_hex.trim(), &mut mac).map_err(|_| SignatureError::Malformed)?;
    Ok(mac)
}

/// Lowercase hex HMAC-SHA256 of `body` — what a sender computes.
pub fn hmac_sha256_hex(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Compares a presented token with the configured one without leaking where they differ or
/// (by hashing both first) how long the configured one is.
pub fn token_matches(presented: &str, configured: &str) -> bool {
    if configured.is_empty() {
        return false;
    }
    let a = Sha256::digest(presented.as_bytes());
    let b = Sha256::digest(configured.as_bytes());
    a.ct_eq(&b).into()
}

/// Lowercase hex SHA-256 — used for deterministic ids of unsigned deliveries.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Checks a unix-seconds timestamp header against `now_secs`. A `window_secs` of 0 disables the check.
pub fn check_fresh(timestamp: &str, now_secs: u64, window_secs: u64) -> Result<u64, SignatureError> {
    let ts: u64 = timestamp.trim().parse().map_err(|_| SignatureError::BadTimestamp)?;
    if window_secs != 0 && ts.abs_diff(now_secs) > window_secs {
        return Err(SignatureError::Stale);
    }
    Ok(ts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison_is_exact() {
        assert!(token_matches("s3cret", "s3cret"));
        assert!(!token_matches("s3cre", "s3cret"));
        assert!(!token_matches("s3cret ", "s3cret"));
        assert!(!token_matches("", ""));
    }

    #[test]
    fn freshness_window() {
        assert_eq!(check_fresh("1000", 1000, 300), Ok(1000));
        assert_eq!(check_fresh("700", 1000, 300), Ok(700));
        assert_eq!(check_fresh("699", 1000, 300), Err(SignatureError::Stale));
        assert_eq!(check_fresh("1301", 1000, 300), Err(SignatureError::Stale));
        assert_eq!(check_fresh("1", 1000, 0), Ok(1));
        assert_eq!(check_fresh("12a", 1000, 0), Err(SignatureError::BadTimestamp));
        assert_eq!(check_fresh("", 1000, 0), Err(SignatureError::BadTimestamp));
    }

    #[test]
    fn hmac_roundtrip_and_case() {
        let sig = hmac_sha256_hex(b"k", b"body");
        assert!(hmac_sha256_hex_matches(b"k", b"body", &sig).is_ok());
        assert!(hmac_sha256_hex_matches(b"k", b"body", &sig.to_uppercase()).is_ok());
        assert_eq!(hmac_sha256_hex_matches(b"k", b"bodY", &sig), Err(SignatureError::Mismatch));
        assert_eq!(hmac_sha256_hex_matches(b"k", b"body", "zz"), Err(SignatureError::Malformed));
        assert_eq!(hmac_sha256_hex_matches(b"k", b"body", &sig[..62]), Err(SignatureError::Malformed));
    }
}
