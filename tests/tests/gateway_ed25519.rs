//! The gateway checks Discord signatures with WebCrypto's Ed25519 (BoringSSL, in workerd) after the
//! strict checks of its own (`gateway/src/signature.rs`). This proves, inside workerd, that the
//! verdict is `verify_strict`'s on every vector of `fixtures/ed25519` (RFC 8032 §7.1, Wycheproof v1
//! and legacy v0: non-canonical `S`, small-order keys and `R`, non-canonical encodings) and on the
//! attacks spelled out below, and that WebCrypto, not the `verify_strict` fallback, gave the verdicts.

use bugbot_e2e::workers::{WorkerVars, Workers, fixture};
use bugbot_shared::verify::DiscordKey;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha512};

/// One vector: the key as `DISCORD_PUBLIC_KEY` would hold it, the message (the body, under an empty
/// timestamp) and the signature header, all hex.
struct Case {
    name: String,
    key: String,
    message: String,
    signature: String,
}

fn json_fixture(name: &str) -> Value {
    serde_json::from_slice(&fixture(&format!("ed25519/{name}"))).expect("a JSON fixture")
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("`{key}` missing in {v}"))
}

fn wycheproof(file: &str, key_of: fn(&Value) -> &Value) -> Vec<Case> {
    let doc = json_fixture(file);
    let mut cases = Vec::new();
    for group in doc["testGroups"].as_array().expect("testGroups") {
        for test in group["tests"].as_array().expect("tests") {
            cases.push(Case {
                name: format!("{file} tcId {} ({})", test["tcId"], text(test, "comment")),
                key: text(key_of(group), "pk").to_owned(),
                message: text(test, "msg").to_owned(),
                signature: text(test, "sig").to_owned(),
            });
        }
    }
    assert_eq!(cases.len() as u64, doc["numberOfTests"].as_u64().expect("numberOfTests"), "{file}");
    cases
}

/// The attacks `verify_strict` exists for, built on one good signature: `S + L`, the identity as key
/// and `R`, a non-canonical `R`, every small-order `R` with the good `S`, and single flipped bits.
fn attacks() -> Vec<Case> {
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let signing = SigningKey::from_bytes(&[0x42; 32]);
    let key = hex::encode(signing.verifying_key().as_bytes());
    let message = b"strict".to_vec();
    let sig = signing.sign(&message).to_bytes();
    let case = |name: &str, key: &str, sig: &[u8]| Case {
        name: name.to_owned(),
        key: key.to_owned(),
        message: hex::encode(&message),
        signature: hex::encode(sig),
    };
    let mut cases = vec![case("the good signature", &key, &sig)];
    let mut s_plus_l = sig;
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(sig[32 + i]) + u16::from(L[i]) + carry;
        s_plus_l[32 + i] = sum.to_le_bytes()[0];
        carry = sum >> 8;
    }
    cases.push(case("S + L", &key, &s_plus_l));
    let mut identity = [0u8; 32];
    identity[0] = 1;
    cases.push(case("identity key, R = identity, S = 0", &hex::encode(identity), &[identity, [0; 32]].concat()));
    // The eight points of small order (their canonical encodings) and y = p + 1 (non-canonical).
    let small_order = [
        "0100000000000000000000000000000000000000000000000000000000000000",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000080",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    ];
    for r in small_order {
        let mut bad = sig;
        bad[..32].copy_from_slice(&hex::decode(r).expect("hex"));
        cases.push(case(&format!("R = {r}"), &key, &bad));
        // A small-order key with R = identity and S = 0, and with the good signature.
        cases.push(case(&format!("key {r}, R = identity, S = 0"), r, &[identity, [0; 32]].concat()));
        cases.push(case(&format!("key {r}, the good signature"), r, &sig));
    }
    for bit in [0, 7, 255, 256, 511] {
        let mut bad = sig;
        bad[bit / 8] ^= 1 << (bit % 8);
        cases.push(case(&format!("signature bit {bit} flipped"), &key, &bad));
    }
    cases.push(case("63-byte signature", &key, &sig[..63]));
    // R = identity, S = k·a (k = SHA-512(R ‖ A ‖ M)): the bare equation holds, as only the key's owner
    // can make it hold; verify_strict refuses it (R is of small order), so the gateway must too.
    let k = curve25519_dalek::Scalar::from_hash(
        Sha512::new().chain_update(identity).chain_update(signing.verifying_key().as_bytes()).chain_update(&message),
    );
    let by_owner = [identity, (k * signing.to_scalar()).to_bytes()].concat();
    cases.push(case("R = identity, S = k·a (the bare equation holds)", &key, &by_owner));
    cases
}

fn rfc8032() -> Vec<Case> {
    let doc = json_fixture("rfc8032_section7.1_ed25519_vectors.json");
    doc["vectors"]
        .as_array()
        .expect("vectors")
        .iter()
        .map(|v| Case {
            name: format!("RFC 8032 {}", text(v, "name")),
            key: text(v, "public_key_hex").to_owned(),
            message: text(v, "message_hex").to_owned(),
            signature: text(v, "signature_hex").to_owned(),
        })
        .collect()
}

/// `verify_strict`'s verdict, as the gateway reached it before (the key parsed as the configuration
/// parses `DISCORD_PUBLIC_KEY`).
fn strict(case: &Case) -> bool {
    let message = hex::decode(&case.message).expect("hex");
    DiscordKey::from_hex(&case.key).is_ok_and(|k| k.verify("", &message, &case.signature).is_ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn webcrypto_verdicts_equal_verify_strict_on_every_vector() {
    let workers = Workers::start_with(&WorkerVars::default(), &json!({"gatewayOnly": true, "ed25519Probe": true}))
        .expect("workers start");
    let mut cases = rfc8032();
    cases.extend(wycheproof("wycheproof_ed25519_test.json", |g| &g["publicKey"]));
    cases.extend(wycheproof("wycheproof_legacy_testvectors_eddsa_test.json", |g| &g["key"]));
    cases.extend(attacks());
    assert_eq!(cases.len(), 5 + 151 + 145 + 1 + 1 + 1 + 9 * 3 + 5 + 1 + 1);

    let batch: Vec<[&str; 3]> =
        cases.iter().map(|c| [c.key.as_str(), c.message.as_str(), c.signature.as_str()]).collect();
    let answer = reqwest::Client::new()
        .post(format!("{}/__test/ed25519", workers.url))
        .json(&batch)
        .send()
        .await
        .expect("the probe answers");
    assert_eq!(answer.status(), 200, "{}", workers.logs().join("\n"));
    let verdicts: Vec<String> = answer.json().await.expect("a list of verdicts");
    assert_eq!(verdicts.len(), cases.len());

    let mut disagreements = Vec::new();
    let mut via = std::collections::BTreeMap::<String, usize>::new();
    for (case, verdict) in cases.iter().zip(&verdicts) {
        let (valid, how) = verdict.split_once(' ').expect("\"<verdict> <via>\"");
        *via.entry(verdict.clone()).or_default() += 1;
        let expected = strict(case);
        if (valid == "valid") != expected {
            disagreements.push(format!("{}: verify_strict says {expected}, the gateway {verdict}", case.name));
        }
        // Every signature that reached the equation was checked by WebCrypto, not the fallback.
        assert_ne!(how, "fallback", "{}: WebCrypto gave no answer in workerd", case.name);
    }
    assert!(disagreements.is_empty(), "verdicts that differ from verify_strict:\n{}", disagreements.join("\n"));
    // The equation really went to WebCrypto: every valid signature, and some invalid ones.
    let valid = cases.iter().filter(|c| strict(c)).count();
    assert_eq!(via.get("valid webcrypto").copied().unwrap_or_default(), valid, "{via:?}");
    assert!(via.get("invalid webcrypto").copied().unwrap_or_default() > 0, "{via:?}");
    assert!(via.get("invalid precheck").copied().unwrap_or_default() > 0, "{via:?}");
    println!("verdicts: {via:?}");
}
