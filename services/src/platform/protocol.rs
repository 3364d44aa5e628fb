//! The wire protocol of our 乐企-modelled tax platform, without any transport.
//!
//! It owns: sealing a JSON business body (SM4-CBC, random IV, PKCS#7, base64 of IV || ciphertext),
//! signing a request (hex HMAC-SM3 over method, path, timestamp, nonce and the SM3 digest of the
//! sealed body), verifying a request on the platform side (unit, signature, time window, replayed
//! nonces) and the `{"Response":{"Data"|"Error"}}` envelope. It must not open sockets, read the wall
//! clock or log: callers pass `now` (unix seconds) in. It also defines the business messages each
//! service carries inside the sealed bodies ([`messages`]), as plain serde types.
//!
//! Sealing alone is not authenticated (CBC is malleable); integrity of requests comes from the
//! signature covering the body digest, so a server must verify before it opens. Replies are sealed
//! but not signed.
//!
//! Unconfirmed against the real 乐企 platform: the signature computation, the SM4 mode
//! (乐企 is documented as ECB), the padding, and the timestamp and nonce header names. They are the
//! constants below, so a real adapter can differ without touching callers.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretBox, SecretSlice};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sm3::{Digest, Sm3};
use sm4::Sm4;
use subtle::ConstantTimeEq;

/// Header carrying the 接入单位平台编号 (access unit id).
pub const HEADER_UNIT_ID: &str = "jrdwptbh";
/// Header carrying the 使用单位平台编号 (user unit id).
pub const HEADER_USER_ID: &str = "sydwptbh";
/// Header carrying the signing time in unix seconds.
pub const HEADER_TIMESTAMP: &str = "x-timestamp";
/// Header carrying the single-use nonce.
pub const HEADER_NONCE: &str = "x-nonce";
/// Header carrying the lowercase hex HMAC-SM3 signature.
pub const HEADER_SIGNATURE: &str = "access_signature";

/// Length of an SM4 key and of the CBC initialisation vector, in bytes.
pub const SM4_KEY_LEN: usize = 16;
/// Shortest HMAC key accepted by [`Credentials::new`].
pub const MIN_HMAC_KEY_LEN: usize = 16;
/// Default tolerance between a request's timestamp and the verifier's clock.
pub const DEFAULT_MAX_SKEW_SECS: u64 = 300;
/// Default bound on the number of nonces a verifier remembers at once.
pub const DEFAULT_MAX_TRACKED_NONCES: usize = 100_000;

/// SM4 block size in bytes: the IV length and the unit of padding.
pub const BLOCK_LEN: usize = 16;
const NONCE_BYTES: usize = 16;
const NONCE_LEN: std::ops::RangeInclusive<usize> = 16..=64;

type Sm4CbcEnc = cbc::Encryptor<Sm4>;
type Sm4CbcDec = cbc::Decryptor<Sm4>;
type HmacSm3 = Hmac<Sm3>;

/// One unit's identity and keys. `Debug` prints the ids and `***` for the keys.
pub struct Credentials {
    unit_id: String,
    user_id: String,
    sm4_key: SecretBox<[u8; SM4_KEY_LEN]>,
    hmac_key: SecretSlice<u8>,
}

/// Why [`Credentials::new`] refused its input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    #[error("unit id is empty")]
    UnitIdEmpty,
    #[error("user id is empty")]
    UserIdEmpty,
    #[error("hmac key is shorter than the minimum length")]
    HmacKeyTooShort,
}

impl Credentials {
    /// Builds credentials; ids must be non-empty and the HMAC key at least [`MIN_HMAC_KEY_LEN`] bytes.
    pub fn new(
        unit_id: impl Into<String>,
        user_id: impl Into<String>,
        sm4_key: [u8; SM4_KEY_LEN],
        hmac_key: Vec<u8>,
    ) -> Result<Self, CredentialsError> {
        let (unit_id, user_id) = (unit_id.into(), user_id.into());
        if unit_id.is_empty() {
            return Err(CredentialsError::UnitIdEmpty);
        }
        if user_id.is_empty() {
            return Err(CredentialsError::UserIdEmpty);
        }
        if hmac_key.len() < MIN_HMAC_KEY_LEN {
            return Err(CredentialsError::HmacKeyTooShort);
        }
        Ok(Self {
            unit_id,
            user_id,
            sm4_key: SecretBox::new(Box::new(sm4_key)),
            hmac_key: SecretSlice::from(hmac_key),
        })
    }

    /// 接入单位平台编号.
    pub fn unit_id(&self) -> &str {
        &self.unit_id
    }

    /// 使用单位平台编号.
    pub fn user_id(&self) -> &str {
        &self.user_id
    }
}

impl Clone for Credentials {
    fn clone(&self) -> Self {
        Self {
            unit_id: self.unit_id.clone(),
            user_id: self.user_id.clone(),
            sm4_key: SecretBox::new(Box::new(*self.sm4_key.expose_secret())),
            hmac_key: SecretSlice::from(self.hmac_key.expose_secret().to_vec()),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("unit_id", &self.unit_id)
            .field("user_id", &self.user_id)
            .field("sm4_key", &"***")
            .field("hmac_key", &"***")
            .finish()
    }
}

/// Why sealing or signing could not be done on this side.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("operating system randomness is unavailable")]
    Entropy,
    #[error("business body cannot be serialised as json")]
    Json(#[source] serde_json::Error),
}

/// Why a sealed body could not be opened. All map to the code `BODY_UNREADABLE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("sealed body is not valid base64")]
    Base64,
    #[error("sealed body is shorter than an iv and one block")]
    TooShort,
    #[error("ciphertext is not a whole number of blocks")]
    NotBlockAligned,
    #[error("padding is invalid (wrong key or altered body)")]
    Padding,
    #[error("plaintext is not utf-8")]
    NotUtf8,
    #[error("plaintext is not the expected json")]
    Json,
}

impl OpenError {
    /// Stable code, shared by every way a body can be unreadable.
    pub fn code(&self) -> &'static str {
        "BODY_UNREADABLE"
    }
}

/// Seals a JSON business body with a fresh random IV.
pub fn seal(credentials: &Credentials, json: &[u8]) -> Result<String, SealError> {
    let mut iv = [0u8; BLOCK_LEN];
    getrandom::fill(&mut iv).map_err(|_| SealError::Entropy)?;
    Ok(seal_with_iv(credentials, &iv, json))
}

/// Serialises `value` as JSON and seals it.
pub fn seal_json<T: Serialize>(credentials: &Credentials, value: &T) -> Result<String, SealError> {
    let json = serde_json::to_vec(value).map_err(SealError::Json)?;
    seal(credentials, &json)
}

/// Seals with a caller-chosen IV. Only for known-answer tests and fixtures: an IV must never repeat.
pub fn seal_with_iv(credentials: &Credentials, iv: &[u8; BLOCK_LEN], json: &[u8]) -> String {
    let ciphertext = Sm4CbcEnc::new(credentials.sm4_key.expose_secret().into(), iv.into())
        .encrypt_padded_vec::<Pkcs7>(json);
    let mut framed = Vec::with_capacity(BLOCK_LEN + ciphertext.len());
    framed.extend_from_slice(iv);
    framed.extend_from_slice(&ciphertext);
    BASE64.encode(framed)
}

/// Opens a sealed body and checks it is UTF-8 JSON. Never panics on any input; it does not prove the
/// body is authentic (verify the request signature first).
pub fn open(credentials: &Credentials, sealed: impl AsRef<[u8]>) -> Result<String, OpenError> {
    let framed = BASE64.decode(sealed).map_err(|_| OpenError::Base64)?;
    if framed.len() < 2 * BLOCK_LEN {
        return Err(OpenError::TooShort);
    }
    let (iv, ciphertext) = framed.split_at(BLOCK_LEN);
    if ciphertext.len() % BLOCK_LEN != 0 {
        return Err(OpenError::NotBlockAligned);
    }
    let iv: &[u8; BLOCK_LEN] = iv.try_into().map_err(|_| OpenError::TooShort)?;
    let plaintext = Sm4CbcDec::new(credentials.sm4_key.expose_secret().into(), iv.into())
        .decrypt_padded_vec::<Pkcs7>(ciphertext)
        .map_err(|_| OpenError::Padding)?;
    let text = String::from_utf8(plaintext).map_err(|_| OpenError::NotUtf8)?;
    serde_json::from_str::<serde::de::IgnoredAny>(&text).map_err(|_| OpenError::Json)?;
    Ok(text)
}

/// Opens a sealed body and deserialises it as `T`.
pub fn open_json<T: DeserializeOwned>(
    credentials: &Credentials,
    sealed: impl AsRef<[u8]>,
) -> Result<T, OpenError> {
    serde_json::from_str(&open(credentials, sealed)?).map_err(|_| OpenError::Json)
}

/// Lowercase hex of the SM3 digest of the sealed body bytes, as they travel.
pub fn body_digest_hex(sealed_body: &[u8]) -> String {
    hex(&Sm3::digest(sealed_body))
}

/// The signed string: method (upper-cased), path, timestamp, nonce and body digest, joined by `\n`.
pub fn canonical_string(
    method: &str,
    path: &str,
    timestamp: u64,
    nonce: &str,
    sealed_body: &[u8],
) -> String {
    format!(
        "{}\n{path}\n{timestamp}\n{nonce}\n{}",
        method.to_ascii_uppercase(),
        body_digest_hex(sealed_body)
    )
}

/// The five protocol headers of a signed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    pub unit_id: String,
    pub user_id: String,
    pub timestamp: u64,
    pub nonce: String,
    pub signature: String,
}

impl SignedHeaders {
    /// The headers as (name, value) pairs, ready for any HTTP client.
    pub fn to_pairs(&self) -> [(&'static str, String); 5] {
        [
            (HEADER_UNIT_ID, self.unit_id.clone()),
            (HEADER_USER_ID, self.user_id.clone()),
            (HEADER_TIMESTAMP, self.timestamp.to_string()),
            (HEADER_NONCE, self.nonce.clone()),
            (HEADER_SIGNATURE, self.signature.clone()),
        ]
    }

    /// Reads the headers through `get` (a case-insensitive lookup in any HTTP library).
    pub fn from_lookup<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<Self, Refusal> {
        let required = |name: &'static str| get(name).ok_or(Refusal::HeaderMissing(name));
        let timestamp = required(HEADER_TIMESTAMP)?
            .parse::<u64>()
            .map_err(|_| Refusal::HeaderMalformed(HEADER_TIMESTAMP))?;
        Ok(Self {
            unit_id: required(HEADER_UNIT_ID)?.to_owned(),
            user_id: required(HEADER_USER_ID)?.to_owned(),
            timestamp,
            nonce: required(HEADER_NONCE)?.to_owned(),
            signature: required(HEADER_SIGNATURE)?.to_owned(),
        })
    }
}

/// Signs a request at `now` with a fresh random nonce.
pub fn sign_request(
    credentials: &Credentials,
    method: &str,
    path: &str,
    sealed_body: &[u8],
    now: u64,
) -> Result<SignedHeaders, SealError> {
    let mut nonce = [0u8; NONCE_BYTES];
    getrandom::fill(&mut nonce).map_err(|_| SealError::Entropy)?;
    Ok(sign_request_with_nonce(
        credentials,
        method,
        path,
        sealed_body,
        now,
        hex(&nonce),
    ))
}

/// Signs a request with a caller-chosen nonce (tests and fixtures; a nonce must never repeat).
pub fn sign_request_with_nonce(
    credentials: &Credentials,
    method: &str,
    path: &str,
    sealed_body: &[u8],
    timestamp: u64,
    nonce: String,
) -> SignedHeaders {
    let canonical = canonical_string(method, path, timestamp, &nonce, sealed_body);
    SignedHeaders {
        unit_id: credentials.unit_id.clone(),
        user_id: credentials.user_id.clone(),
        timestamp,
        signature: signature_hex(credentials, &canonical),
        nonce,
    }
}

fn signature_hex(credentials: &Credentials, canonical: &str) -> String {
    // HMAC accepts keys of any length, so the error arm is unreachable; the empty string it yields can
    // never verify because `verify` refuses signatures of the wrong length.
    match <HmacSm3 as KeyInit>::new_from_slice(credentials.hmac_key.expose_secret()) {
        Ok(mut mac) => {
            mac.update(canonical.as_bytes());
            hex(&mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

/// Why the platform refused a request. Each case has a stable [`Refusal::code`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("request header {0} is missing")]
    HeaderMissing(&'static str),
    #[error("request header {0} is malformed")]
    HeaderMalformed(&'static str),
    #[error("access unit is not registered")]
    UnitUnknown,
    #[error("user unit is not registered for this access unit")]
    UserUnknown,
    #[error("request timestamp is outside the accepted window")]
    TimestampStale,
    #[error("request signature is invalid")]
    SignatureInvalid,
    #[error("request nonce was already used")]
    NonceReplayed,
    #[error("too many recent requests to track; retry later")]
    ReplayCacheFull,
    #[error("request body cannot be opened")]
    BodyUnreadable(#[from] OpenError),
}

impl Refusal {
    /// Stable upper-snake code, sent as `Response.Error.Code`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::HeaderMissing(_) => "HEADER_MISSING",
            Self::HeaderMalformed(_) => "HEADER_MALFORMED",
            Self::UnitUnknown => "UNIT_UNKNOWN",
            Self::UserUnknown => "USER_UNKNOWN",
            Self::TimestampStale => "TIMESTAMP_STALE",
            Self::SignatureInvalid => "SIGNATURE_INVALID",
            Self::NonceReplayed => "NONCE_REPLAYED",
            Self::ReplayCacheFull => "REPLAY_CACHE_FULL",
            Self::BodyUnreadable(e) => e.code(),
        }
    }

    /// Whether re-signing and sending the same request later can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::ReplayCacheFull)
    }

    /// The error envelope a server answers with.
    pub fn to_envelope(&self) -> ResponseEnvelope {
        ResponseEnvelope::error(self.code(), self.to_string())
    }
}

/// Tunables of a [`Verifier`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifierConfig {
    /// Largest accepted distance, either way, between a request's timestamp and `now`.
    pub max_skew_secs: u64,
    /// Most nonces remembered at once; beyond it requests are refused, never forgotten early.
    pub max_tracked_nonces: usize,
}

impl Default for VerifierConfig {
    fn default() -> Self {
        Self {
            max_skew_secs: DEFAULT_MAX_SKEW_SECS,
            max_tracked_nonces: DEFAULT_MAX_TRACKED_NONCES,
        }
    }
}

/// A request that passed every check, with its opened JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRequest {
    pub unit_id: String,
    pub user_id: String,
    pub body: String,
}

/// The platform side: known units and the nonces seen within the time window.
pub struct Verifier {
    config: VerifierConfig,
    units: HashMap<String, Credentials>,
    replay: ReplayCache,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("config", &self.config)
            .field("units", &self.units.len())
            .field("tracked_nonces", &self.replay.len())
            .finish()
    }
}

impl Verifier {
    pub fn new(config: VerifierConfig) -> Self {
        Self {
            config,
            units: HashMap::new(),
            replay: ReplayCache::default(),
        }
    }

    /// Registers (or replaces) a unit, keyed by its access unit id.
    pub fn register(&mut self, credentials: Credentials) {
        self.units.insert(credentials.unit_id.clone(), credentials);
    }

    /// Nonces currently remembered; bounded by the window and by `max_tracked_nonces`.
    pub fn tracked_nonces(&self) -> usize {
        self.replay.len()
    }

    /// Checks unit, time window, signature and nonce, in that order, and records the nonce only when
    /// everything else passed. `now` is the platform's clock in unix seconds.
    pub fn verify(
        &mut self,
        method: &str,
        path: &str,
        headers: &SignedHeaders,
        sealed_body: &[u8],
        now: u64,
    ) -> Result<&Credentials, Refusal> {
        let credentials = self
            .units
            .get(&headers.unit_id)
            .ok_or(Refusal::UnitUnknown)?;
        if credentials.user_id != headers.user_id {
            return Err(Refusal::UserUnknown);
        }
        let nonce_ok = NONCE_LEN.contains(&headers.nonce.len())
            && headers
                .nonce
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !nonce_ok {
            return Err(Refusal::HeaderMalformed(HEADER_NONCE));
        }
        if now.abs_diff(headers.timestamp) > self.config.max_skew_secs {
            return Err(Refusal::TimestampStale);
        }
        let canonical =
            canonical_string(method, path, headers.timestamp, &headers.nonce, sealed_body);
        let expected = signature_hex(credentials, &canonical);
        let matches: bool = expected
            .as_bytes()
            .ct_eq(headers.signature.as_bytes())
            .into();
        if expected.is_empty() || !matches {
            return Err(Refusal::SignatureInvalid);
        }
        // A nonce can be replayed only while its timestamp is still inside the window.
        let expires_at = headers.timestamp.saturating_add(self.config.max_skew_secs);
        self.replay.admit(
            &headers.unit_id,
            &headers.nonce,
            expires_at,
            now,
            self.config,
        )?;
        Ok(credentials)
    }

    /// [`Verifier::verify`], then opens the body with the unit's key.
    pub fn verify_and_open(
        &mut self,
        method: &str,
        path: &str,
        headers: &SignedHeaders,
        sealed_body: &[u8],
        now: u64,
    ) -> Result<VerifiedRequest, Refusal> {
        let credentials = self.verify(method, path, headers, sealed_body, now)?;
        let body = open(credentials, sealed_body)?;
        Ok(VerifiedRequest {
            unit_id: credentials.unit_id.clone(),
            user_id: credentials.user_id.clone(),
            body,
        })
    }
}

/// Nonces ordered by the time after which their request would be stale anyway.
#[derive(Debug, Default)]
struct ReplayCache {
    by_expiry: BTreeSet<(u64, String, String)>,
    seen: HashMap<(String, String), u64>,
    /// Latest expiry already forgotten: anything expiring at or before it is refused as stale, so a
    /// clock that steps back cannot reopen the window for a forgotten nonce.
    forgotten_through: Option<u64>,
}

impl ReplayCache {
    fn len(&self) -> usize {
        self.seen.len()
    }

    fn admit(
        &mut self,
        unit_id: &str,
        nonce: &str,
        expires_at: u64,
        now: u64,
        config: VerifierConfig,
    ) -> Result<(), Refusal> {
        while let Some(first) = self.by_expiry.first()
            && first.0 < now
        {
            if let Some((expiry, unit, seen_nonce)) = self.by_expiry.pop_first() {
                self.seen.remove(&(unit, seen_nonce));
                self.forgotten_through = self.forgotten_through.max(Some(expiry));
            }
        }
        if self
            .forgotten_through
            .is_some_and(|through| expires_at <= through)
        {
            return Err(Refusal::TimestampStale);
        }
        let key = (unit_id.to_owned(), nonce.to_owned());
        if self.seen.contains_key(&key) {
            return Err(Refusal::NonceReplayed);
        }
        if self.seen.len() >= config.max_tracked_nonces {
            return Err(Refusal::ReplayCacheFull);
        }
        self.by_expiry
            .insert((expires_at, key.0.clone(), key.1.clone()));
        self.seen.insert(key, expires_at);
        Ok(())
    }
}

/// `Response.Error`: a platform refusal as it travels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformError {
    #[serde(rename = "Code")]
    pub code: String,
    #[serde(rename = "Message")]
    pub message: String,
}

/// `Response`: exactly one of `Data` (a sealed reply) or `Error` is expected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseBody {
    #[serde(rename = "Data", default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(rename = "Error", default, skip_serializing_if = "Option::is_none")]
    pub error: Option<PlatformError>,
}

/// `{"Response":{"Data":"<sealed>"}}` or `{"Response":{"Error":{"Code":..,"Message":..}}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseEnvelope {
    #[serde(rename = "Response")]
    pub response: ResponseBody,
}

/// Why a reply envelope did not yield a business body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("platform refused the request")]
    Refused(PlatformError),
    #[error("response envelope is malformed")]
    EnvelopeMalformed,
    #[error("response body cannot be opened")]
    BodyUnreadable(#[from] OpenError),
}

impl ResponseEnvelope {
    /// A success envelope around an already sealed reply.
    pub fn data(sealed: String) -> Self {
        Self {
            response: ResponseBody {
                data: Some(sealed),
                error: None,
            },
        }
    }

    /// Seals `json` and wraps it in a success envelope.
    pub fn sealed_reply(credentials: &Credentials, json: &[u8]) -> Result<Self, SealError> {
        Ok(Self::data(seal(credentials, json)?))
    }

    pub fn error(code: impl Into<String>, message: impl Into<String>) -> Self {
        let error = PlatformError {
            code: code.into(),
            message: message.into(),
        };
        Self {
            response: ResponseBody {
                data: None,
                error: Some(error),
            },
        }
    }

    /// Parses an envelope from the HTTP response body.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ReplyError> {
        serde_json::from_slice(bytes).map_err(|_| ReplyError::EnvelopeMalformed)
    }

    /// The opened business JSON, or the platform's refusal.
    pub fn open_reply(self, credentials: &Credentials) -> Result<String, ReplyError> {
        match (self.response.data, self.response.error) {
            (None, Some(error)) => Err(ReplyError::Refused(error)),
            (Some(sealed), None) => Ok(open(credentials, sealed)?),
            _ => Err(ReplyError::EnvelopeMalformed),
        }
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// Every code [`Refusal::code`] can produce: a client told one of these had its envelope refused
/// (a configuration or clock problem), not its business request.
pub const REFUSAL_CODES: [&str; 9] = [
    "HEADER_MISSING",
    "HEADER_MALFORMED",
    "UNIT_UNKNOWN",
    "USER_UNKNOWN",
    "TIMESTAMP_STALE",
    "SIGNATURE_INVALID",
    "NONCE_REPLAYED",
    "REPLAY_CACHE_FULL",
    "BODY_UNREADABLE",
];

/// Whether `code` is one of the [`REFUSAL_CODES`].
pub fn is_refusal_code(code: &str) -> bool {
    REFUSAL_CODES.contains(&code)
}

/// Reads an SM4 key written as 32 hex digits (either case, surrounding whitespace ignored).
/// `None` on any other input; the caller's error must not repeat the text, which is a secret.
pub fn sm4_key_from_hex(text: &str) -> Option<[u8; SM4_KEY_LEN]> {
    let digits = text.trim().as_bytes();
    if digits.len() != 2 * SM4_KEY_LEN {
        return None;
    }
    let mut key = [0u8; SM4_KEY_LEN];
    for (byte, pair) in key.iter_mut().zip(digits.chunks_exact(2)) {
        let high = char::from(pair[0]).to_digit(16)?;
        let low = char::from(pair[1]).to_digit(16)?;
        *byte = u8::try_from(high * 16 + low).ok()?;
    }
    Some(key)
}

/// Lowercase hex of the SM3 digest of `bytes`.
pub fn sm3_hex(bytes: &[u8]) -> String {
    hex(&Sm3::digest(bytes))
}

/// SM3 of an invoice's content as the platform hashes what it receives: its canonical JSON, the
/// bytes `fpnr` carries. The platform lists it for every invoice; the service records it at issue.
pub fn platform_digest(content: &fapiao_invoice::model::InvoiceContent) -> String {
    sm3_hex(&serde_json::to_vec(content).unwrap_or_default())
}

/// The business messages carried inside sealed bodies, service by service.
///
/// A request is `POST /access/v2/invoke/{nlbm}/{fwbm}` ([`invoke_path`]) with the headers `nlbm`
/// (能力编码) and `fwbm` (服务编码), the five signed protocol headers, and the sealed JSON request
/// as the body. The sealed reply, once opened, is a JSON object with `returncode` (`"00"` on
/// success, else one of [`codes`]), `returnmsg`, and on success the fields of the service's reply
/// type next to them. A body that does not decode as the service's request (including invoice
/// content failing the domain's own checks on reading) is refused `REQUEST_INVALID` as a whole;
/// a seller id that is not a valid taxpayer id is refused `NSRSBH_INVALID`.
///
/// | fwbm | request | reply |
/// |------|---------|-------|
/// | `QDFPPLFM` reserve numbers | [`ReserveNumbersRequest`] | [`ReserveNumbersReply`] |
/// | `CXSXED` query quota | [`SellerRequest`] | [`QuotaReply`] |
/// | `XZTHSXED` download quota | [`DownloadQuotaRequest`] | [`DownloadQuotaReply`] |
/// | `QDFPSC` upload invoices | [`UploadRequest`] | [`UploadReply`] |
/// | `CXQDFPSCJG` upload result | [`UploadResultRequest`] | [`UploadResultReply`] |
/// | `CXQDFPXX` query one invoice | [`InvoiceRequest`] | [`InvoiceReply`] |
/// | `CXQDFPLB` list a day's invoices | [`ListRequest`] | [`ListReply`] |
/// | `FPZTXXCX` usage status | [`InvoiceRequest`] | [`UsageReply`] |
/// | `HZQRXXLR` file a red-letter form | [`FileFormRequest`] | [`FormInfo`] |
/// | `HZQRXXCX` query one form | [`FormRequest`] | [`FormInfo`] |
/// | `HZQRXXQR` answer a form | [`AnswerFormRequest`] | [`FormInfo`] |
/// | `HZQRXXLB` list forms changed since | [`ListFormsRequest`] | [`ListFormsReply`] |
///
/// Field names follow the pinyin abbreviations of the 乐企 platform where they are known (`nsrsbh`,
/// `lysl`, `fpqshm`, `fpzzhm`, `sqed`, `sqlx`, `ywlsh`, `sllsh`, `fphm`, `kprq`, `lzfpbz`); the
/// others, the codes of [`codes`], `CXQDFPXX` and `CXQDFPLB` are our own. Amounts are decimal
/// strings, times RFC 3339, days `YYYY-MM-DD` (China time), invoice numbers 20-digit strings, and
/// invoice content (`fpnr`) is the JSON of the domain's `InvoiceContent`. The form services'
/// fields are described in their own module (`forms`).
pub mod messages {
    use std::borrow::Cow;

    mod forms;
    pub use forms::{
        AnswerFormRequest, AnswerKind, FileFormRequest, FilingParty, FormInfo, FormLineItem,
        FormRequest, ListFormsReply, ListFormsRequest,
    };

    use chrono::{DateTime, NaiveDate, Utc};
    use fapiao_invoice::model::InvoiceContent;
    use fapiao_invoice::number::InvoiceNumber;
    use fapiao_invoice::taxpayer::TaxpayerId;
    use rust_decimal::Decimal;
    use serde::{Deserialize, Serialize};

    /// Header naming the capability (能力编码) a request is made under.
    pub const HEADER_CAPABILITY: &str = "nlbm";
    /// Header naming the service (服务编码) a request calls.
    pub const HEADER_SERVICE: &str = "fwbm";
    /// The capability used when none is configured.
    pub const DEFAULT_CAPABILITY: &str = "202007";

    /// 请求批量发票号码: reserve a range of invoice numbers.
    pub const RESERVE_NUMBERS: &str = "QDFPPLFM";
    /// 查询授信额度: the seller's quota this month.
    pub const QUERY_QUOTA: &str = "CXSXED";
    /// 下载/退回授信额度: download quota (`sqlx` = `0`).
    pub const DOWNLOAD_QUOTA: &str = "XZTHSXED";
    /// 数电发票上传: upload issued invoices; answered with a receipt.
    pub const UPLOAD: &str = "QDFPSC";
    /// 查询数电发票上传结果: the outcome of an upload, by receipt.
    pub const UPLOAD_RESULT: &str = "CXQDFPSCJG";
    /// Query one recorded invoice (our own service code).
    pub const QUERY_INVOICE: &str = "CXQDFPXX";
    /// List a seller's invoices of one day (our own service code).
    pub const LIST_INVOICES: &str = "CXQDFPLB";
    /// 发票状态信息查询: how the buyer has used an invoice.
    pub const USAGE_STATUS: &str = "FPZTXXCX";
    /// 红字发票信息确认单录入: the seller files a red-letter confirmation form.
    pub const FILE_FORM: &str = "HZQRXXLR";
    /// 红字发票信息确认单查询: one form by number.
    pub const QUERY_FORM: &str = "HZQRXXCX";
    /// 红字发票信息确认单确认: agree with, disagree with or withdraw a form.
    pub const ANSWER_FORM: &str = "HZQRXXQR";
    /// List a seller's forms whose status changed since a moment (our own service code).
    pub const LIST_FORMS: &str = "HZQRXXLB";

    /// Every service the platform answers.
    pub const SERVICES: [&str; 12] = [
        RESERVE_NUMBERS,
        QUERY_QUOTA,
        DOWNLOAD_QUOTA,
        UPLOAD,
        UPLOAD_RESULT,
        QUERY_INVOICE,
        LIST_INVOICES,
        USAGE_STATUS,
        FILE_FORM,
        QUERY_FORM,
        ANSWER_FORM,
        LIST_FORMS,
    ];

    /// The path of a call, as requested and as signed.
    pub fn invoke_path(capability: &str, service: &str) -> String {
        format!("/access/v2/invoke/{capability}/{service}")
    }

    /// Business return codes (`returncode`) and envelope error codes beyond the protocol refusals.
    pub mod codes {
        /// Success.
        pub const SUCCESS: &str = "00";
        /// Envelope error: the platform is busy and did nothing; retry later.
        pub const SYSTEM_BUSY: &str = "SYSTEM_BUSY";
        /// Envelope error: the platform failed while processing; the outcome is unknown.
        pub const SYSTEM_ERROR: &str = "SYSTEM_ERROR";
        /// The request body does not match the service's message.
        pub const REQUEST_INVALID: &str = "REQUEST_INVALID";
        /// The `fwbm` names no service.
        pub const SERVICE_UNKNOWN: &str = "SERVICE_UNKNOWN";
        /// `nsrsbh` is not a valid taxpayer id.
        pub const SELLER_INVALID: &str = "NSRSBH_INVALID";
        /// The seller's number allotment is used up.
        pub const NUMBERS_EXHAUSTED: &str = "FPHM_EXHAUSTED";
        /// Not enough quota left this month for a download.
        pub const QUOTA_INSUFFICIENT: &str = "SXED_INSUFFICIENT";
        /// The amount asked for is not positive or not a money amount.
        pub const QUOTA_AMOUNT_INVALID: &str = "SQED_INVALID";
        /// More invoices in one upload than the platform accepts.
        pub const UPLOAD_TOO_LARGE: &str = "FPSL_EXCEEDED";
        /// No such receipt (`sllsh`) for this seller.
        pub const RECEIPT_NOT_FOUND: &str = "SLLSH_NOT_FOUND";
        /// No such recorded invoice for this seller.
        pub const INVOICE_NOT_FOUND: &str = "FPHM_NOT_FOUND";

        /// Upload item: the number was not reserved for this seller.
        pub const NUMBER_NOT_ASSIGNED: &str = "FPHM_NOT_ASSIGNED";
        /// Upload item: the content's seller is not the uploading seller.
        pub const SELLER_MISMATCH: &str = "XSF_MISMATCH";
        /// Upload item: no lines.
        pub const LINES_EMPTY: &str = "FPMX_EMPTY";
        /// Upload item: amount + tax differs from the tax-inclusive total (a line or the totals).
        pub const TOTAL_MISMATCH: &str = "JSHJ_MISMATCH";
        /// Upload item: the totals are not the sums of the lines.
        pub const SUMS_MISMATCH: &str = "HJ_MISMATCH";
        /// Upload item: a tax differs from amount × rate by more than the tolerance.
        pub const TAX_DEVIATION: &str = "SE_DEVIATION";
        /// Upload item: the sign of the amounts does not match the colour (blue positive, red
        /// negative).
        pub const SIGN_INVALID: &str = "FPJE_INVALID";
        /// Upload item: the red invoice's reference is wrong (unknown or foreign blue invoice, a red
        /// one, or more reversed than the blue invoice holds).
        pub const RED_REFERENCE_INVALID: &str = "HZXX_INVALID";
        /// Upload item: the number is already recorded with different content.
        pub const NUMBER_CONFLICT: &str = "FPHM_CONFLICT";
        /// Upload item: a red invoice's form (`hzqrxxdbh`) is unknown, another seller's, for
        /// another blue invoice, or not in a status that allows a red invoice (01, 04).
        pub const RED_FORM_INVALID: &str = "HZQRXX_INVALID";
        /// Upload item: a red invoice is already recorded for the form.
        pub const RED_FORM_USED: &str = "HZQRXX_USED";
        /// Upload item: the red invoice's lines do not reverse exactly the form's lines.
        pub const RED_LINES_MISMATCH: &str = "HZMX_MISMATCH";

        /// Form filing: the blue invoice is not recorded for this seller.
        pub const BLUE_NOT_FOUND: &str = "LZFP_NOT_FOUND";
        /// Form filing: the invoice named as blue is a red invoice.
        pub const BLUE_NOT_BLUE: &str = "LZFP_NOT_BLUE";
        /// Form filing: another form for the same blue invoice awaits an answer (02, 03).
        pub const FORM_PENDING: &str = "HZQRXX_PENDING";
        /// Form filing: a line names no reversible blue line (unknown, a discount line, or
        /// twice), or reverses nothing.
        pub const FORM_LINE_INVALID: &str = "LZMXXH_INVALID";
        /// Form filing: a line reverses more than remains of its blue line once the lines of
        /// every non-void form of the blue invoice are taken off.
        pub const FORM_EXCEEDS_REMAINING: &str = "HZCXJE_EXCEEDED";
        /// Form filing: the request id (`ywlsh`) already filed a form for another blue invoice,
        /// reason or lines.
        pub const FORM_REQUEST_CONFLICT: &str = "YWLSH_CONFLICT";
        /// No such form for this seller.
        pub const FORM_NOT_FOUND: &str = "HZQRXX_NOT_FOUND";
        /// The form's status (or filing party) does not allow this answer.
        pub const FORM_STATUS_INVALID: &str = "HZQRXXZT_INVALID";
    }

    /// `returncode` and `returnmsg`, present in every business reply.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ReplyStatus {
        pub returncode: String,
        #[serde(default)]
        pub returnmsg: String,
    }

    /// A successful reply: the status next to the payload's fields.
    #[derive(Debug, Clone, Serialize)]
    pub struct SuccessReply<'a, T> {
        pub returncode: &'a str,
        pub returnmsg: &'a str,
        #[serde(flatten)]
        pub data: &'a T,
    }

    /// A request that names only the seller (`CXSXED`).
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct SellerRequest {
        /// 纳税人识别号 of the seller.
        pub nsrsbh: String,
    }

    /// `QDFPPLFM` request.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ReserveNumbersRequest {
        pub nsrsbh: String,
        /// 领用数量: how many numbers are asked for; the platform may grant fewer.
        pub lysl: u32,
    }

    /// `QDFPPLFM` reply: an inclusive, contiguous range.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ReserveNumbersReply {
        /// 发票起始号码.
        pub fpqshm: InvoiceNumber,
        /// 发票终止号码.
        pub fpzzhm: InvoiceNumber,
        /// 领用数量 granted.
        pub lysl: u64,
    }

    /// `CXSXED` reply.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct QuotaReply {
        /// 所属月份, `YYYYMM` in China time.
        pub ssyf: String,
        /// 总授信额度.
        pub zsxed: Decimal,
        /// 已下载额度.
        pub yxzed: Decimal,
        /// 可下载额度.
        pub kxzed: Decimal,
    }

    /// `XZTHSXED` request.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct DownloadQuotaRequest {
        pub nsrsbh: String,
        /// 申请额度.
        pub sqed: Decimal,
        /// 申请类型: `0` download (the only one used).
        pub sqlx: String,
        /// 业务流水号: downloads under the same serial are granted once.
        pub ywlsh: String,
    }

    /// `XZTHSXED` reply.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct DownloadQuotaReply {
        pub ywlsh: String,
        /// 下载额度: what was granted (less than asked near the end of the month's quota).
        pub xzed: Decimal,
    }

    /// One invoice of a `QDFPSC` request.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct UploadedInvoice<'a> {
        /// 发票号码.
        pub fphm: InvoiceNumber,
        /// 开票日期 (issue time).
        pub kprq: DateTime<Utc>,
        /// 发票内容.
        pub fpnr: Cow<'a, InvoiceContent>,
    }

    /// `QDFPSC` request: invoices of one seller.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct UploadRequest<'a> {
        pub nsrsbh: Cow<'a, str>,
        pub fpxx: Vec<UploadedInvoice<'a>>,
    }

    /// `QDFPSC` reply.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct UploadReply {
        /// 受理流水号.
        pub sllsh: String,
    }

    /// `CXQDFPSCJG` request.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct UploadResultRequest {
        pub nsrsbh: String,
        pub sllsh: String,
    }

    /// 处理状态 of an upload.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum ProcessingState {
        /// 处理中.
        #[serde(rename = "0")]
        Processing,
        /// 处理完成.
        #[serde(rename = "1")]
        Done,
    }

    /// 上传状态 of one invoice.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum ItemState {
        /// 成功: recorded.
        #[serde(rename = "01")]
        Recorded,
        /// 失败: rejected, with `cwdm` and `cwxx`.
        #[serde(rename = "02")]
        Rejected,
    }

    /// One invoice's outcome in a `CXQDFPSCJG` reply.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct UploadItem {
        pub fphm: InvoiceNumber,
        pub sczt: ItemState,
        /// 错误代码 (empty when recorded).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub cwdm: String,
        /// 错误信息 (empty when recorded).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub cwxx: String,
    }

    /// `CXQDFPSCJG` reply.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct UploadResultReply {
        pub clzt: ProcessingState,
        /// 结果信息: empty while processing.
        #[serde(default)]
        pub jgxx: Vec<UploadItem>,
    }

    /// `CXQDFPXX` and `FPZTXXCX` request.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct InvoiceRequest {
        pub nsrsbh: String,
        pub fphm: InvoiceNumber,
    }

    /// 发票状态 of a recorded invoice.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum InvoiceState {
        /// 正常.
        #[serde(rename = "01")]
        Normal,
        /// 部分红冲.
        #[serde(rename = "02")]
        PartiallyReversed,
        /// 全额红冲.
        #[serde(rename = "03")]
        FullyReversed,
    }

    /// 蓝字发票标志.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum ColourFlag {
        /// 蓝字.
        #[serde(rename = "0")]
        Blue,
        /// 红字.
        #[serde(rename = "1")]
        Red,
    }

    /// `CXQDFPXX` reply.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct InvoiceReply {
        pub fphm: InvoiceNumber,
        pub kprq: DateTime<Utc>,
        /// 入库时间: when the platform recorded it.
        pub rksj: DateTime<Utc>,
        pub fpzt: InvoiceState,
        pub fpnr: InvoiceContent,
    }

    /// `CXQDFPLB` request: one page of a seller's invoices issued on `kprq` (China time).
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ListRequest {
        pub nsrsbh: String,
        pub kprq: NaiveDate,
        /// 页码, from 0.
        pub ym: u32,
        /// 每页数量.
        pub mysl: u32,
    }

    /// One row of a `CXQDFPLB` reply.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ListItem {
        pub fphm: InvoiceNumber,
        pub kprq: DateTime<Utc>,
        pub lzfpbz: ColourFlag,
        pub fpzt: InvoiceState,
        /// 购买方名称.
        pub gmfmc: String,
        /// 购买方纳税人识别号.
        #[serde(default)]
        pub gmfnsrsbh: Option<TaxpayerId>,
        /// 合计金额 (tax-exclusive).
        pub hjje: Decimal,
        /// 合计税额.
        pub hjse: Decimal,
        /// 请求流水号: the caller's request id as uploaded.
        pub qqlsh: String,
        /// Lowercase hex SM3 of the JSON of the content received.
        pub nrsm3: String,
    }

    /// `CXQDFPLB` reply.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ListReply {
        pub fplb: Vec<ListItem>,
        /// 下一页页码, absent on the last page.
        #[serde(default)]
        pub xyym: Option<u32>,
    }

    /// A yes/no flag as the platform writes it.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum Flag {
        Y,
        N,
    }

    impl From<bool> for Flag {
        fn from(value: bool) -> Self {
            if value { Self::Y } else { Self::N }
        }
    }

    impl From<Flag> for bool {
        fn from(flag: Flag) -> Self {
            flag == Flag::Y
        }
    }

    /// `FPZTXXCX` reply.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct UsageReply {
        pub fphm: InvoiceNumber,
        /// 用途确认 (勾选抵扣) done.
        pub ytqrbz: Flag,
        /// 入账 done.
        pub rzbz: Flag,
    }
}

impl From<crate::platform::RemoteState> for messages::InvoiceState {
    fn from(state: crate::platform::RemoteState) -> Self {
        use crate::platform::RemoteState;
        match state {
            RemoteState::Normal => Self::Normal,
            RemoteState::PartiallyReversed => Self::PartiallyReversed,
            RemoteState::FullyReversed => Self::FullyReversed,
        }
    }
}

impl From<messages::InvoiceState> for crate::platform::RemoteState {
    fn from(state: messages::InvoiceState) -> Self {
        use messages::InvoiceState;
        match state {
            InvoiceState::Normal => Self::Normal,
            InvoiceState::PartiallyReversed => Self::PartiallyReversed,
            InvoiceState::FullyReversed => Self::FullyReversed,
        }
    }
}

impl From<fapiao_invoice::model::Colour> for messages::ColourFlag {
    fn from(colour: fapiao_invoice::model::Colour) -> Self {
        match colour {
            fapiao_invoice::model::Colour::Blue => Self::Blue,
            fapiao_invoice::model::Colour::Red => Self::Red,
        }
    }
}

impl From<messages::ColourFlag> for fapiao_invoice::model::Colour {
    fn from(flag: messages::ColourFlag) -> Self {
        match flag {
            messages::ColourFlag::Blue => Self::Blue,
            messages::ColourFlag::Red => Self::Red,
        }
    }
}
