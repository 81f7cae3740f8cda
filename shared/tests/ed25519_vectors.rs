//! Every Ed25519 vector in `fixtures/ed25519` gets its expected verdict from the strict verifier
//! (RFC 8032 §7.1, Wycheproof `testvectors_v1` and the legacy v0 Wycheproof file).
//!
//! Strict means: `S` must be canonical (`S < L`), `R` and `A` must be canonical encodings of points
//! that are not of small order, and nothing may trail the 64 signature bytes.

use std::fmt::Write as _;

use bugbot_shared::verify::{DiscordKey, SignatureError, ed25519_verify_strict};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = format!("{}/../fixtures/ed25519/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("`{key}` missing in {v}"))
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap_or_else(|e| panic!("fixture hex {s:?}: {e}"))
}

/// One Wycheproof case, from either file format.
struct Case {
    tc_id: u64,
    comment: String,
    flags: String,
    public_key_hex: String,
    msg: Vec<u8>,
    sig_hex: String,
    valid: bool,
}

/// Reads the cases of a Wycheproof `EddsaVerify` file; `key_of` finds a group's public key hex
/// (`publicKey.pk` in v1, `key.pk` in the legacy v0 format).
fn wycheproof_cases(doc: &Value, key_of: fn(&Value) -> &str) -> Vec<Case> {
    let groups = doc["testGroups"].as_array().expect("testGroups");
    let mut cases = Vec::new();
    for group in groups {
        assert_eq!(str_field(group, "type"), "EddsaVerify");
        let public_key_hex = key_of(group).to_owned();
        for test in group["tests"].as_array().expect("tests") {
            let result = str_field(test, "result");
            // Wycheproof also has "acceptable"; none of these files uses it for Ed25519, and a
            // strict verifier has no leeway to give, so it is treated as a fixture error.
            let valid = match result {
                "valid" => true,
                "invalid" => false,
                other => panic!("tcId {}: unexpected result {other:?}", test["tcId"]),
            };
            cases.push(Case {
                tc_id: test["tcId"].as_u64().expect("tcId"),
                comment: str_field(test, "comment").to_owned(),
                flags: test["flags"].to_string(),
                public_key_hex: public_key_hex.clone(),
                msg: unhex(str_field(test, "msg")),
                sig_hex: str_field(test, "sig").to_owned(),
                valid,
            });
        }
    }
    cases
}

/// Runs every case through `ed25519_verify_strict` and through `DiscordKey` (message as the body,
/// empty timestamp). Returns the number of cases checked; panics listing every disagreement.
fn check_all(file: &str, cases: &[Case]) -> usize {
    let mut disagreements = String::new();
    for case in cases {
        let key = unhex(&case.public_key_hex);
        let sig = unhex(&case.sig_hex);
        let strict = ed25519_verify_strict(&key, &case.msg, &sig);

        // The Discord path parses the key first (a bad key is a configuration error there) and
        // demands exactly 128 hex characters of signature.
        let discord = match DiscordKey::from_hex(&case.public_key_hex) {
            Ok(k) => match k.verify("", &case.msg, &case.sig_hex) {
                Ok(()) => true,
                Err(SignatureError::Malformed) => {
                    assert_ne!(sig.len(), 64, "{file} tcId {}: 64-byte signature called malformed", case.tc_id);
                    false
                }
                Err(_) => false,
            },
            Err(_) => false,
        };

        // The gateway's split: `DiscordKey::precheck` (the point and scalar checks), then the bare
        // Ed25519 equation elsewhere (WebCrypto in workerd; here ed25519-dalek's non-strict `verify`,
        // the same cofactorless equation over the same hash). Together they must give the strict verdict.
        let split = match DiscordKey::from_hex(&case.public_key_hex) {
            Ok(k) => k.precheck("", &case.msg, &case.sig_hex).is_ok_and(|p| {
                let key = VerifyingKey::from_bytes(k.public_bytes()).expect("a parsed key");
                p.settle(key.verify(p.message(), &Signature::from_bytes(p.signature())).is_ok()).is_ok()
            }),
            Err(_) => false,
        };

        for (path, got) in
            [("ed25519_verify_strict", strict), ("DiscordKey::verify", discord), ("precheck + equation", split)]
        {
            if got != case.valid {
                writeln!(
                    disagreements,
                    "{file} tcId {} via {path}: expected {}, got {} (flags {}, comment {:?}, sig {} bytes)",
                    case.tc_id,
                    verdict(case.valid),
                    verdict(got),
                    case.flags,
                    case.comment,
                    sig.len(),
                )
                .unwrap();
            }
        }
    }
    assert!(disagreements.is_empty(), "verdicts that disagree with the vectors:\n{disagreements}");
    cases.len()
}

fn verdict(valid: bool) -> &'static str {
    if valid { "valid" } else { "invalid" }
}

#[test]
fn rfc8032_section_7_1() {
    let doc = fixture("rfc8032_section7.1_ed25519_vectors.json");
    let vectors = doc["vectors"].as_array().expect("vectors");
    let mut checked = 0;
    for v in vectors {
        let name = str_field(v, "name");
        let seed: [u8; 32] = unhex(str_field(v, "secret_key_hex")).try_into().expect("32-byte seed");
        let public_key = unhex(str_field(v, "public_key_hex"));
        let msg = unhex(str_field(v, "message_hex"));
        let sig = unhex(str_field(v, "signature_hex"));
        assert_eq!(msg.len() as u64, v["message_len"].as_u64().unwrap(), "{name}: message_len");

        // The vector is self-consistent: key and (deterministic) signature derive from the seed.
        let signing = SigningKey::from_bytes(&seed);
        assert_eq!(signing.verifying_key().as_bytes().as_slice(), public_key.as_slice(), "{name}: public key");
        assert_eq!(signing.sign(&msg).to_bytes().as_slice(), sig.as_slice(), "{name}: signature");

        assert!(ed25519_verify_strict(&public_key, &msg, &sig), "{name}: valid signature refused");
        let key = DiscordKey::from_hex(str_field(v, "public_key_hex")).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(key.verify("", &msg, str_field(v, "signature_hex")), Ok(()), "{name}: DiscordKey");
        // Splitting the message between "timestamp" and "body" signs the same bytes.
        if let Ok(text) = std::str::from_utf8(&msg)
            && let Some((head, tail)) = text.split_at_checked(text.len() / 2)
        {
            assert_eq!(key.verify(head, tail.as_bytes(), str_field(v, "signature_hex")), Ok(()), "{name}: split");
        }

        // Any single flipped bit anywhere (signature, message, key) must fail.
        for bit in [0, 7, 255, 256, 511] {
            let mut bad = sig.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(!ed25519_verify_strict(&public_key, &msg, &bad), "{name}: sig bit {bit} flipped still verifies");
            assert_eq!(key.verify("", &msg, &hex::encode(&bad)), Err(SignatureError::Mismatch), "{name}: bit {bit}");
        }
        let mut longer = msg.clone();
        longer.push(0);
        assert!(!ed25519_verify_strict(&public_key, &longer, &sig), "{name}: extra message byte still verifies");
        let mut bad_key = public_key.clone();
        bad_key[0] ^= 1;
        assert!(!ed25519_verify_strict(&bad_key, &msg, &sig), "{name}: other key still verifies");
        // Wrong lengths are refused, not truncated or padded.
        assert!(!ed25519_verify_strict(&public_key, &msg, &sig[..63]), "{name}: 63-byte signature");
        assert!(!ed25519_verify_strict(&public_key, &msg, &[sig.as_slice(), &[0]].concat()), "{name}: 65 bytes");
        assert!(!ed25519_verify_strict(&public_key[..31], &msg, &sig), "{name}: 31-byte key");
        checked += 1;
    }
    assert_eq!(checked, 5, "RFC 8032 §7.1 has TEST 1, 2, 3, 1024 and SHA(abc)");
}

#[test]
fn wycheproof_v1_every_test_case() {
    let doc = fixture("wycheproof_ed25519_test.json");
    let cases = wycheproof_cases(&doc, |g| str_field(&g["publicKey"], "pk"));
    let declared = doc["numberOfTests"].as_u64().unwrap();
    assert_eq!(check_all("wycheproof_ed25519_test.json", &cases), 151);
    assert_eq!(cases.len() as u64, declared);
    assert_eq!(cases.iter().filter(|c| c.valid).count(), 88, "valid cases");
    // tcIds are unique, so a failure message points at exactly one case.
    let mut ids: Vec<u64> = cases.iter().map(|c| c.tc_id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), cases.len());
}

#[test]
fn wycheproof_legacy_v0_every_test_case() {
    let doc = fixture("wycheproof_legacy_testvectors_eddsa_test.json");
    let cases = wycheproof_cases(&doc, |g| str_field(&g["key"], "pk"));
    assert_eq!(check_all("wycheproof_legacy_testvectors_eddsa_test.json", &cases), 145);
    assert_eq!(cases.len() as u64, doc["numberOfTests"].as_u64().unwrap());
    assert_eq!(cases.iter().filter(|c| c.valid).count(), 84, "valid cases");
}

/// The properties strictness is about, spelled out on one known-good signature (RFC 8032 TEST 1)
/// so a regression names the property instead of a tcId.
#[test]
fn strictness_properties() {
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let seed = [0x42; 32];
    let signing = SigningKey::from_bytes(&seed);
    let key = signing.verifying_key().to_bytes();
    let msg = b"strict";
    let sig = signing.sign(msg).to_bytes();
    assert!(ed25519_verify_strict(&key, msg, &sig));

    // Malleability: S + L verifies under a lenient reduction, never here.
    let mut s_plus_l = sig;
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(sig[32 + i]) + u16::from(L[i]) + carry;
        s_plus_l[32 + i] = sum.to_le_bytes()[0];
        carry = sum >> 8;
    }
    assert_eq!(carry, 0, "S + L fits in 256 bits");
    assert!(!ed25519_verify_strict(&key, msg, &s_plus_l), "S + L accepted: signatures are malleable");

    // Small-order public key (the identity, y = 1) with R = identity and S = 0 "verifies" any
    // message under cofactored or lenient verification.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let forged = [identity, [0; 32]].concat();
    assert!(!ed25519_verify_strict(&identity, msg, &forged), "small-order key accepted");
    assert!(
        DiscordKey::from_hex(&hex::encode(identity))
            .map_or(true, |k| k.verify("", msg, &hex::encode(&forged)).is_err())
    );

    // Non-canonical encoding of the identity (y = p + 1) as R.
    let mut non_canonical = [0xff; 32];
    non_canonical[0] = 0xee;
    non_canonical[31] = 0x7f;
    let mut bad_r = sig;
    bad_r[..32].copy_from_slice(&non_canonical);
    assert!(!ed25519_verify_strict(&key, msg, &bad_r));

    // The gateway's precheck refuses each of these before the bare equation (which WebCrypto checks,
    // and which the identity key "satisfies" for any message), and lets the good signature through.
    let good = DiscordKey::from_hex(&hex::encode(key)).expect("a key");
    assert!(good.precheck("", msg, &hex::encode(sig)).is_ok());
    assert_eq!(good.precheck("", msg, &hex::encode(s_plus_l)).err(), Some(SignatureError::Mismatch), "S + L");
    let bare =
        |sig: &[u8]| signing.verifying_key().verify(msg, &Signature::from_bytes(sig.try_into().unwrap())).is_ok();
    assert_eq!(
        good.precheck("", msg, &hex::encode(bad_r)).and_then(|p| p.settle(bare(&bad_r))),
        Err(SignatureError::Mismatch),
        "R = p + 1"
    );
    // R = identity and S = k·a: the bare equation holds (the signer knows a), verify_strict refuses it.
    let (owner_r, by_owner) = identity_r_forgery(&signing, msg);
    assert!(bare(&by_owner), "the bare equation holds for {}", hex::encode(owner_r));
    assert!(!ed25519_verify_strict(&key, msg, &by_owner));
    let p = good.precheck("", msg, &hex::encode(by_owner)).expect("S is canonical and the key strong");
    assert_eq!(p.settle(true), Err(SignatureError::Mismatch), "R = identity");
    assert_eq!(good.precheck("", msg, "zz").err(), Some(SignatureError::Malformed));
    for weak in [identity, non_canonical] {
        let weak_key = DiscordKey::from_hex(&hex::encode(weak)).expect("decodes, so the configuration takes it");
        assert!(
            VerifyingKey::from_bytes(&weak)
                .expect("a point")
                .verify(msg, &Signature::from_bytes(&forged.clone().try_into().unwrap()))
                .is_ok(),
            "the bare equation holds"
        );
        assert_eq!(weak_key.precheck("", msg, &hex::encode(&forged)).err(), Some(SignatureError::Mismatch), "weak key");
    }
}

/// A signature with `R` = the identity that satisfies the bare (cofactorless) equation: `S = k·a` with
/// `k = SHA-512(R ‖ A ‖ M)`, so `[S]B − [k]A` is the identity. Only the key's owner can make one;
/// `verify_strict` refuses it (`R` is of small order).
pub fn identity_r_forgery(signing: &SigningKey, msg: &[u8]) -> ([u8; 32], [u8; 64]) {
    use sha2::{Digest, Sha512};
    let mut r = [0u8; 32];
    r[0] = 1;
    let k = curve25519_dalek::Scalar::from_hash(
        Sha512::new().chain_update(r).chain_update(signing.verifying_key().as_bytes()).chain_update(msg),
    );
    let s = k * signing.to_scalar();
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&r);
    sig[32..].copy_from_slice(s.as_bytes());
    (r, sig)
}
