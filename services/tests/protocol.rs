//! The platform protocol envelope: sealing, signing, verification and every refusal, with
//! injected time (nothing here sleeps).

// Fixture helpers outside #[test] functions unwrap like the tests do: a failure is a test failure.
#![allow(clippy::unwrap_used)]
use base64::Engine as _;
use fapiao_services::platform::protocol::*;

/// The same base64 flavour the protocol uses, to build tampered inputs.
const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const NOW: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z
const PATH: &str = "/access/v2/invoke/202007/QDFPSC";
const SM4_KEY: [u8; 16] = *b"sm4-secret-key!!";
const HMAC_KEY: &[u8] = b"hmac-secret-key-0123456789";
const BODY: &[u8] = br#"{"lysl":50,"nsrsbh":"91310000MA1FL8XQ3C"}"#;

fn credentials() -> Credentials {
    Credentials::new("JR0001", "SY0001", SM4_KEY, HMAC_KEY.to_vec()).unwrap()
}

fn verifier(config: VerifierConfig) -> Verifier {
    let mut verifier = Verifier::new(config);
    verifier.register(credentials());
    verifier
}

fn signed(sealed: &str, timestamp: u64, nonce: &str) -> SignedHeaders {
    let nonce = nonce.to_owned();
    sign_request_with_nonce(
        &credentials(),
        "POST",
        PATH,
        sealed.as_bytes(),
        timestamp,
        nonce,
    )
}

fn flip_framed_byte(sealed: &str, index: usize) -> String {
    let mut framed = BASE64.decode(sealed).unwrap();
    framed[index] ^= 0x01;
    BASE64.encode(framed)
}

#[test]
fn sm3_and_sm4_match_the_published_test_vectors() {
    // GB/T 32905 example 1 and GB/T 32907 example 1 (CBC with a zero IV = ECB on block one).
    assert_eq!(
        body_digest_hex(b"abc"),
        "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    );
    let key = [
        0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32,
        0x10,
    ];
    let creds = Credentials::new("u", "u", key, HMAC_KEY.to_vec()).unwrap();
    let framed = BASE64.decode(seal_with_iv(&creds, &[0; 16], &key)).unwrap();
    assert_eq!(hex(&framed[16..32]), "681edf34d206965e86b3e94f536e4246");
    assert_eq!(framed.len(), 48, "iv, one block, one full padding block");
}

#[test]
fn sealed_body_round_trips_and_uses_a_fresh_iv() {
    let creds = credentials();
    let first = seal(&creds, BODY).unwrap();
    let second = seal(&creds, BODY).unwrap();
    assert_ne!(first, second);
    assert_eq!(open(&creds, &first).unwrap().as_bytes(), BODY);
    let value: serde_json::Value = open_json(&creds, &second).unwrap();
    assert_eq!(value["lysl"], 50);
    let sealed = seal_json(&creds, &serde_json::json!({"fphm": "中文"})).unwrap();
    assert_eq!(open(&creds, sealed).unwrap(), r#"{"fphm":"中文"}"#);
}

#[test]
fn signed_request_verifies_and_opens() {
    let sealed = seal(&credentials(), BODY).unwrap();
    let headers = sign_request(&credentials(), "post", PATH, sealed.as_bytes(), NOW).unwrap();
    assert_eq!(headers.signature.len(), 64);
    let opened = verifier(VerifierConfig::default())
        .verify_and_open("POST", PATH, &headers, sealed.as_bytes(), NOW)
        .unwrap();
    assert_eq!(opened.unit_id, "JR0001");
    assert_eq!(opened.user_id, "SY0001");
    assert_eq!(opened.body.as_bytes(), BODY);
}

#[test]
fn every_tampered_byte_is_refused_by_the_signature_and_never_opens_to_the_original() {
    let creds = credentials();
    let sealed = seal_with_iv(&creds, &[7; 16], BODY);
    let headers = signed(&sealed, NOW, "nonce-tamper-0001");
    let framed_len = BASE64.decode(&sealed).unwrap().len();
    let mut open_errors = 0;
    for index in 0..framed_len {
        let tampered = flip_framed_byte(&sealed, index);
        let refusal = verifier(VerifierConfig::default())
            .verify_and_open("POST", PATH, &headers, tampered.as_bytes(), NOW)
            .unwrap_err();
        assert_eq!(refusal, Refusal::SignatureInvalid, "byte {index}");
        match open(&creds, &tampered) {
            Ok(text) => assert_ne!(text.as_bytes(), BODY, "byte {index}"),
            Err(_) => open_errors += 1,
        }
    }
    // Every ciphertext byte garbles a block or the padding; only IV flips can survive opening.
    assert!(
        open_errors >= framed_len - 16,
        "{open_errors} of {framed_len}"
    );
}

#[test]
fn opening_alone_is_malleable_which_is_why_the_signature_covers_the_body() {
    let creds = credentials();
    let sealed = seal_with_iv(&creds, &[7; 16], br#"{"je":"100"}"#);
    let mut framed = BASE64.decode(&sealed).unwrap();
    framed[7] ^= b'1' ^ b'9'; // the IV byte above the first digit of "100"
    let forged = BASE64.encode(framed);
    assert_eq!(open(&creds, &forged).unwrap(), r#"{"je":"900"}"#);
    let headers = signed(&sealed, NOW, "nonce-malleable-01");
    let refusal = verifier(VerifierConfig::default())
        .verify("POST", PATH, &headers, forged.as_bytes(), NOW)
        .unwrap_err();
    assert_eq!(refusal.code(), "SIGNATURE_INVALID");
}

#[test]
fn wrong_keys_are_refused() {
    let sealed = seal(&credentials(), BODY).unwrap();
    let other_sm4 = Credentials::new("JR0001", "SY0001", [9; 16], HMAC_KEY.to_vec()).unwrap();
    assert!(open(&other_sm4, &sealed).is_err());
    let other_hmac = Credentials::new("JR0001", "SY0001", SM4_KEY, vec![1; 32]).unwrap();
    let headers = sign_request_with_nonce(
        &other_hmac,
        "POST",
        PATH,
        sealed.as_bytes(),
        NOW,
        "n".repeat(16),
    );
    let refusal = verifier(VerifierConfig::default())
        .verify("POST", PATH, &headers, sealed.as_bytes(), NOW)
        .unwrap_err();
    assert_eq!(refusal, Refusal::SignatureInvalid);
}

#[test]
fn signature_binds_method_and_path() {
    let sealed = seal(&credentials(), BODY).unwrap();
    let headers = signed(&sealed, NOW, "nonce-binding-001");
    let mut verifier = verifier(VerifierConfig::default());
    let other_path = verifier.verify(
        "POST",
        "/access/v2/invoke/202007/QDFPPLFM",
        &headers,
        sealed.as_bytes(),
        NOW,
    );
    assert_eq!(other_path.unwrap_err(), Refusal::SignatureInvalid);
    let other_method = verifier.verify("GET", PATH, &headers, sealed.as_bytes(), NOW);
    assert_eq!(other_method.unwrap_err(), Refusal::SignatureInvalid);
    assert_eq!(
        verifier.tracked_nonces(),
        0,
        "refused requests must not burn nonces"
    );
    assert!(
        verifier
            .verify("POST", PATH, &headers, sealed.as_bytes(), NOW)
            .is_ok()
    );
}

#[test]
fn unknown_units_and_forged_signatures_are_refused() {
    let sealed = seal(&credentials(), BODY).unwrap();
    let mut verifier = verifier(VerifierConfig::default());
    let mut headers = signed(&sealed, NOW, "nonce-unit-00001");
    headers.unit_id = "JR9999".into();
    assert_eq!(
        verifier
            .verify("POST", PATH, &headers, sealed.as_bytes(), NOW)
            .unwrap_err(),
        Refusal::UnitUnknown
    );
    let mut headers = signed(&sealed, NOW, "nonce-unit-00002");
    headers.user_id = "SY9999".into();
    assert_eq!(
        verifier
            .verify("POST", PATH, &headers, sealed.as_bytes(), NOW)
            .unwrap_err(),
        Refusal::UserUnknown
    );
    for forged in [
        "",
        "00",
        &"0".repeat(64),
        &signed(&sealed, NOW, "x").signature.to_uppercase(),
    ] {
        let mut headers = signed(&sealed, NOW, "nonce-unit-00003");
        headers.signature = forged.to_owned();
        let refusal = verifier
            .verify("POST", PATH, &headers, sealed.as_bytes(), NOW)
            .unwrap_err();
        assert_eq!(refusal, Refusal::SignatureInvalid);
    }
}

#[test]
fn timestamps_outside_the_window_are_stale() {
    let sealed = seal(&credentials(), BODY).unwrap();
    let mut verifier = verifier(VerifierConfig::default());
    let mut check = |timestamp: u64, nonce: &str| {
        verifier
            .verify(
                "POST",
                PATH,
                &signed(&sealed, timestamp, nonce),
                sealed.as_bytes(),
                NOW,
            )
            .map(|_| ())
    };
    assert_eq!(
        check(NOW - 301, "nonce-time-00001"),
        Err(Refusal::TimestampStale)
    );
    assert_eq!(
        check(NOW + 301, "nonce-time-00002"),
        Err(Refusal::TimestampStale)
    );
    assert_eq!(check(NOW - 299, "nonce-time-00003"), Ok(()));
    assert_eq!(check(NOW + 299, "nonce-time-00004"), Ok(()));
    assert_eq!(check(NOW - 300, "nonce-time-00005"), Ok(()));
    let mut strict = Verifier::new(VerifierConfig {
        max_skew_secs: 10,
        ..VerifierConfig::default()
    });
    strict.register(credentials());
    let headers = signed(&sealed, NOW - 11, "nonce-time-00006");
    let refusal = strict
        .verify("POST", PATH, &headers, sealed.as_bytes(), NOW)
        .unwrap_err();
    assert_eq!(refusal, Refusal::TimestampStale);
}

#[test]
fn replayed_nonce_is_refused_and_a_fresh_one_passes() {
    let sealed = seal(&credentials(), BODY).unwrap();
    let mut verifier = verifier(VerifierConfig::default());
    let headers = signed(&sealed, NOW, "nonce-replay-0001");
    assert!(
        verifier
            .verify("POST", PATH, &headers, sealed.as_bytes(), NOW)
            .is_ok()
    );
    let replay = verifier.verify("POST", PATH, &headers, sealed.as_bytes(), NOW + 5);
    assert_eq!(replay.unwrap_err(), Refusal::NonceReplayed);
    let fresh = signed(&sealed, NOW + 5, "nonce-replay-0002");
    assert!(
        verifier
            .verify("POST", PATH, &fresh, sealed.as_bytes(), NOW + 5)
            .is_ok()
    );
}

#[test]
fn nonce_cache_forgets_expired_nonces_and_stays_bounded() {
    let sealed = seal(&credentials(), BODY).unwrap();
    let config = VerifierConfig {
        max_skew_secs: 300,
        max_tracked_nonces: 3,
    };
    let mut verifier = verifier(config);
    for i in 0..3 {
        let headers = signed(&sealed, NOW, &format!("nonce-bound-{i:05}"));
        assert!(
            verifier
                .verify("POST", PATH, &headers, sealed.as_bytes(), NOW)
                .is_ok()
        );
    }
    assert_eq!(verifier.tracked_nonces(), 3);
    let overflow = signed(&sealed, NOW, "nonce-bound-00003");
    let refusal = verifier
        .verify("POST", PATH, &overflow, sealed.as_bytes(), NOW)
        .unwrap_err();
    assert_eq!(refusal, Refusal::ReplayCacheFull);
    assert!(refusal.is_retryable());
    // At NOW + 301 the three nonces (stamped NOW) could no longer pass the window: forgotten.
    let later = NOW + 301;
    let next = signed(&sealed, later, "nonce-bound-00004");
    assert!(
        verifier
            .verify("POST", PATH, &next, sealed.as_bytes(), later)
            .is_ok()
    );
    assert_eq!(verifier.tracked_nonces(), 1);
    for step in 1..=50 {
        let now = later + step * 400;
        let headers = signed(&sealed, now, &format!("nonce-steady-{step:05}"));
        assert!(
            verifier
                .verify("POST", PATH, &headers, sealed.as_bytes(), now)
                .is_ok()
        );
        assert_eq!(verifier.tracked_nonces(), 1, "step {step}");
    }
}

#[test]
fn a_clock_stepping_back_cannot_reopen_a_forgotten_nonce() {
    let sealed = seal(&credentials(), BODY).unwrap();
    let mut verifier = verifier(VerifierConfig::default());
    let headers = signed(&sealed, NOW, "nonce-clock-00001");
    assert!(
        verifier
            .verify("POST", PATH, &headers, sealed.as_bytes(), NOW)
            .is_ok()
    );
    let fresh = signed(&sealed, NOW + 301, "nonce-clock-00002");
    assert!(
        verifier
            .verify("POST", PATH, &fresh, sealed.as_bytes(), NOW + 301)
            .is_ok()
    );
    assert_eq!(verifier.tracked_nonces(), 1);
    let replay = verifier.verify("POST", PATH, &headers, sealed.as_bytes(), NOW + 10);
    assert_eq!(replay.unwrap_err(), Refusal::TimestampStale);
}

#[test]
fn secrets_never_reach_debug_or_error_text() {
    let creds = credentials();
    let mut verifier = verifier(VerifierConfig::default());
    let mut texts = vec![
        format!("{creds:?}"),
        format!("{:#?}", creds.clone()),
        format!("{verifier:?}"),
    ];
    let sealed = seal(&creds, BODY).unwrap();
    let mut headers = signed(&sealed, NOW, "nonce-secret-0001");
    headers.signature = "0".repeat(64);
    let refusal = verifier
        .verify("POST", PATH, &headers, sealed.as_bytes(), NOW)
        .unwrap_err();
    texts.push(refusal.to_string());
    texts.push(format!("{refusal:?}"));
    texts.push(format!("{:?}", refusal.to_envelope()));
    let other = Credentials::new("JR0001", "SY0001", [9; 16], HMAC_KEY.to_vec()).unwrap();
    let open_error = open(&other, &sealed).unwrap_err();
    texts.push(open_error.to_string());
    texts.push(Refusal::from(open_error).to_string());
    texts.push(CredentialsError::HmacKeyTooShort.to_string());
    assert!(texts[0].contains("JR0001") && texts[0].contains("***"));
    let sm4_bytes = format!("{:?}", SM4_KEY);
    let hmac_bytes = format!("{HMAC_KEY:?}");
    let needles = [
        "sm4-secret",
        "hmac-secret",
        &sm4_bytes[1..20],
        &hmac_bytes[1..20],
        &hex(&SM4_KEY),
        &hex(HMAC_KEY),
    ];
    for text in &texts {
        for needle in needles {
            assert!(!text.contains(needle), "{needle:?} leaked in {text:?}");
        }
    }
}

#[test]
fn each_malformed_body_has_its_own_open_error() {
    let creds = credentials();
    assert_eq!(open(&creds, "not base64!"), Err(OpenError::Base64));
    assert_eq!(open(&creds, ""), Err(OpenError::TooShort));
    assert_eq!(
        open(&creds, BASE64.encode([0u8; 31])),
        Err(OpenError::TooShort)
    );
    assert_eq!(
        open(&creds, BASE64.encode([0u8; 33])),
        Err(OpenError::NotBlockAligned)
    );
    let mut framed = BASE64.decode(seal(&creds, BODY).unwrap()).unwrap();
    // Flipping the block before the last one flips the last plaintext byte: the pad length.
    let pad_byte_above = framed.len() - 1 - BLOCK_LEN;
    framed[pad_byte_above] ^= 0xff;
    assert_eq!(
        open(&creds, BASE64.encode(&framed)),
        Err(OpenError::Padding)
    );
    assert_eq!(
        open(&creds, seal(&creds, &[0xff, 0xfe]).unwrap()),
        Err(OpenError::NotUtf8)
    );
    assert_eq!(
        open(&creds, seal(&creds, b"not json").unwrap()),
        Err(OpenError::Json)
    );
    let wrong_shape: Result<Vec<u32>, _> = open_json(&creds, seal(&creds, BODY).unwrap());
    assert_eq!(wrong_shape, Err(OpenError::Json));
    assert_eq!(Refusal::from(OpenError::Padding).code(), "BODY_UNREADABLE");
}

#[test]
fn opening_random_bytes_never_panics() {
    let creds = credentials();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..3000 {
        let len = usize::try_from(next() % 96).unwrap();
        let bytes: Vec<u8> = (0..len).map(|_| next().to_le_bytes()[0]).collect();
        assert!(open(&creds, &bytes).is_err());
        assert!(open(&creds, BASE64.encode(&bytes)).is_err());
        assert!(ResponseEnvelope::from_json(&bytes).is_err());
    }
}

#[test]
fn headers_round_trip_through_a_lookup() {
    let headers = signed("c2VhbGVk", NOW, "nonce-headers-001");
    let pairs = headers.to_pairs();
    let lookup = |name: &str| {
        pairs
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(SignedHeaders::from_lookup(lookup).unwrap(), headers);
    let missing = SignedHeaders::from_lookup(|name| {
        if name == HEADER_NONCE {
            None
        } else {
            lookup(name)
        }
    });
    assert_eq!(missing.unwrap_err().code(), "HEADER_MISSING");
    let bad_time = SignedHeaders::from_lookup(|name| {
        if name == HEADER_TIMESTAMP {
            Some("-1")
        } else {
            lookup(name)
        }
    });
    assert_eq!(
        bad_time.unwrap_err(),
        Refusal::HeaderMalformed(HEADER_TIMESTAMP)
    );
    let mut bad_nonce = headers;
    bad_nonce.nonce = "short\nnonce".into();
    let mut verifier = verifier(VerifierConfig::default());
    let refusal = verifier.verify("POST", PATH, &bad_nonce, b"c2VhbGVk", NOW);
    assert_eq!(refusal.unwrap_err(), Refusal::HeaderMalformed(HEADER_NONCE));
}

#[test]
fn refusal_codes_are_distinct_upper_snake() {
    let all = [
        Refusal::HeaderMissing(HEADER_NONCE),
        Refusal::HeaderMalformed(HEADER_NONCE),
        Refusal::UnitUnknown,
        Refusal::UserUnknown,
        Refusal::TimestampStale,
        Refusal::SignatureInvalid,
        Refusal::NonceReplayed,
        Refusal::ReplayCacheFull,
        Refusal::BodyUnreadable(OpenError::Json),
    ];
    let codes: std::collections::HashSet<_> = all.iter().map(Refusal::code).collect();
    assert_eq!(codes.len(), all.len());
    assert!(
        codes
            .iter()
            .all(|c| c.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
    );
}

#[test]
fn envelopes_have_the_platform_shape_and_open() {
    let creds = credentials();
    let error = Refusal::NonceReplayed.to_envelope();
    assert_eq!(
        serde_json::to_string(&error).unwrap(),
        r#"{"Response":{"Error":{"Code":"NONCE_REPLAYED","Message":"request nonce was already used"}}}"#
    );
    let refused = ResponseEnvelope::from_json(serde_json::to_string(&error).unwrap().as_bytes());
    match refused.unwrap().open_reply(&creds) {
        Err(ReplyError::Refused(e)) => assert_eq!(e.code, "NONCE_REPLAYED"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let reply = ResponseEnvelope::sealed_reply(&creds, br#"{"returncode":"00"}"#).unwrap();
    let json = serde_json::to_string(&reply).unwrap();
    assert!(json.starts_with(r#"{"Response":{"Data":""#));
    let parsed = ResponseEnvelope::from_json(json.as_bytes()).unwrap();
    assert_eq!(parsed.open_reply(&creds).unwrap(), r#"{"returncode":"00"}"#);
    let empty = ResponseEnvelope::from_json(br#"{"Response":{}}"#).unwrap();
    assert_eq!(empty.open_reply(&creds), Err(ReplyError::EnvelopeMalformed));
    let garbage = ResponseEnvelope::data("AAAA".into()).open_reply(&creds);
    assert_eq!(
        garbage,
        Err(ReplyError::BodyUnreadable(OpenError::TooShort))
    );
}

#[test]
fn credentials_reject_weak_input() {
    assert_eq!(
        Credentials::new("", "u", SM4_KEY, HMAC_KEY.to_vec()).unwrap_err(),
        CredentialsError::UnitIdEmpty
    );
    assert_eq!(
        Credentials::new("u", "", SM4_KEY, HMAC_KEY.to_vec()).unwrap_err(),
        CredentialsError::UserIdEmpty
    );
    assert_eq!(
        Credentials::new("u", "u", SM4_KEY, vec![1; 15]).unwrap_err(),
        CredentialsError::HmacKeyTooShort
    );
}
