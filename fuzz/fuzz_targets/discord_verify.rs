//! Arbitrary keys, timestamps, bodies and signatures into the Discord verifier, the raw strict
//! Ed25519 check and the other request-authentication primitives. Must never panic; the two
//! Ed25519 entry points must agree; nothing but our own signature may verify under our key.
#![no_main]

use std::sync::LazyLock;

use arbitrary::Arbitrary;
use bugbot_shared::verify::{self, DiscordKey, SignatureError};
use ed25519_dalek::{Signer, SigningKey};
use libfuzzer_sys::fuzz_target;

static SIGNER: LazyLock<SigningKey> = LazyLock::new(|| SigningKey::from_bytes(&[0x5a; 32]));
static OURS: LazyLock<DiscordKey> =
    LazyLock::new(|| DiscordKey::from_hex(&hex::encode(SIGNER.verifying_key().as_bytes())).unwrap());

/// The group order L, little-endian: `S + L` is the classic malleated twin of a signature.
const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    key: &'a [u8],
    key_text: &'a str,
    timestamp: &'a str,
    body: &'a [u8],
    signature: &'a [u8],
    signature_text: &'a str,
    now_secs: u64,
    window_secs: u32,
}

fuzz_target!(|input: Input<'_>| {
    let mut message = input.timestamp.as_bytes().to_vec();
    message.extend_from_slice(input.body);

    // Raw bytes of any length, and the hex path Discord requests take: same verdict.
    let strict = verify::ed25519_verify_strict(input.key, &message, input.signature);
    if let Ok(key) = DiscordKey::from_hex(&hex::encode(input.key)) {
        let via_discord = key.verify(input.timestamp, input.body, &hex::encode(input.signature));
        if input.signature.len() == 64 {
            assert_eq!(via_discord.is_ok(), strict, "DiscordKey and ed25519_verify_strict disagree");
        } else {
            assert_eq!(via_discord, Err(SignatureError::Malformed));
        }
    } else {
        assert!(!strict, "a key DiscordKey refuses verified a signature");
    }
    if strict {
        // A valid signature (which fuzzing can only stumble on via our own key below) is
        // invalidated by any single flipped bit.
        let mut flipped = input.signature.to_vec();
        flipped[0] ^= 1;
        assert!(!verify::ed25519_verify_strict(input.key, &message, &flipped));
    }

    // Free-form text where hex is expected.
    if let Ok(key) = DiscordKey::from_hex(input.key_text) {
        let _ = key.verify(input.timestamp, input.body, input.signature_text);
    }

    // Under our key, only the signature we make verifies; its S + L twin never does.
    let ours = SIGNER.sign(&message).to_bytes();
    let ours_hex = hex::encode(ours);
    assert_eq!(OURS.verify(input.timestamp, input.body, &ours_hex), Ok(()));
    let forged = OURS.verify(input.timestamp, input.body, input.signature_text);
    if forged.is_ok() {
        assert!(input.signature_text.eq_ignore_ascii_case(&ours_hex), "forged: {:?}", input.signature_text);
    }
    if input.signature.len() == 64 && input.signature != ours {
        assert!(!verify::ed25519_verify_strict(SIGNER.verifying_key().as_bytes(), &message, input.signature));
    }
    let mut malleated = ours;
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(ours[32 + i]) + u16::from(L[i]) + carry;
        malleated[32 + i] = sum.to_le_bytes()[0];
        carry = sum >> 8;
    }
    assert!(!verify::ed25519_verify_strict(SIGNER.verifying_key().as_bytes(), &message, &malleated));

    // The replay window.
    let window = u64::from(input.window_secs);
    if let Ok(ts) = verify::check_fresh(input.timestamp, input.now_secs, window) {
        assert!(window == 0 || ts.abs_diff(input.now_secs) <= window);
    }

    // Sentry's HMAC and the URL tokens.
    let _ = verify::hmac_sha256_hex_matches(input.key, input.body, input.signature_text);
    let mac = verify::hmac_sha256_hex(input.key, input.body);
    assert_eq!(verify::hmac_sha256_hex_matches(input.key, input.body, &mac), Ok(()));
    assert_eq!(verify::hmac_sha256_hex_matches(input.key, input.body, &mac.to_uppercase()), Ok(()));
    assert_eq!(verify::token_matches(input.key_text, input.key_text), !input.key_text.is_empty());
    if verify::token_matches(input.key_text, input.signature_text) {
        assert_eq!(input.key_text, input.signature_text);
    }
});
