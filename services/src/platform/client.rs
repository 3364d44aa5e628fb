//! The HTTP client of our 乐企-modelled tax platform: implements [`super::TaxPlatform`].
//!
//! It owns the transport of one call: encode the business request
//! ([`super::protocol::messages`]), seal it, sign it, `POST` it to
//! `{base}/access/v2/invoke/{nlbm}/{fwbm}` with the `nlbm` and `fwbm` headers, and turn the answer
//! into the trait's types or a [`CallError`]. The wire of every service is documented on
//! [`super::protocol::messages`].
//!
//! Error mapping:
//! - no answer within the timeout: [`CallError::Timeout`]; cannot connect, connection lost, or an
//!   unreadable or unopenable reply: [`CallError::Transport`] (both mean "outcome unknown");
//! - an envelope error with a protocol refusal code (`UNIT_UNKNOWN`, `SIGNATURE_INVALID`, …):
//!   [`CallError::Protocol`], except `REPLAY_CACHE_FULL`, which had no effect and may be retried:
//!   [`CallError::Busy`];
//! - `SYSTEM_BUSY` (envelope or business code), or HTTP 429/503 without an envelope:
//!   [`CallError::Busy`]; `SYSTEM_ERROR` or another envelope error on an HTTP 5xx:
//!   [`CallError::Transport`] (the platform may have acted);
//! - a business `returncode` other than `"00"`: [`CallError::Refused`], except the "not found" codes
//!   the trait models as `None` or [`UploadResult::UnknownReceipt`] (`FPHM_NOT_FOUND` for invoice
//!   queries, `SLLSH_NOT_FOUND`, and `HZQRXX_NOT_FOUND` for a form query).
//!
//! It must not log or return key material, request bodies or invoice content: errors carry codes,
//! platform messages and transport descriptions only.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, NaiveDate, Utc};
use fapiao_invoice::number::InvoiceNumber;
use fapiao_invoice::taxpayer::TaxpayerId;
use rust_decimal::Decimal;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::protocol::messages::{self, codes};
use super::protocol::{self, Credentials, PlatformError, ReplyError, ResponseEnvelope};
use super::{
    CallError, FormAnswer, FormPage, FormRequest, IssuedInvoice, NumberRange, QuotaGrant,
    QuotaStatus, RemoteForm, RemoteInvoice, RemotePage, RemoteSummary, TaxPlatform,
    UploadItemResult, UploadOutcome, UploadReceipt, UploadResult, UsageStatus,
};
use crate::clock::{SharedClock, SystemClock};

/// Default time allowed for one whole call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time allowed to open a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How to reach the tax platform. With no `url`, `fapiao serve` starts the sandbox in-process and
/// points the client at it (with freshly generated credentials, so the id and key fields are then
/// not needed). `Debug` shows the keys as `[REDACTED]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientConfig {
    /// Base URL of the platform (`https://host[:port][/prefix]`); absent or empty means the
    /// in-process sandbox.
    pub url: Option<String>,
    /// 接入单位平台编号 (access unit id), sent as the `jrdwptbh` header.
    pub unit_id: String,
    /// 使用单位平台编号 (user unit id), sent as the `sydwptbh` header.
    pub user_id: String,
    /// SM4 key sealing bodies: 32 hex digits (16 bytes).
    pub sm4_key: Option<SecretString>,
    /// HMAC-SM3 signing key: text of at least 16 bytes.
    pub hmac_key: Option<SecretString>,
    /// Time allowed for one whole call, e.g. `"5s"`; beyond it the call is a timeout.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Time allowed to open a connection, e.g. `"2s"`.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// 能力编码 (`nlbm`) the calls are made under.
    pub capability: String,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            url: None,
            unit_id: String::new(),
            user_id: String::new(),
            sm4_key: None,
            hmac_key: None,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            capability: messages::DEFAULT_CAPABILITY.to_owned(),
        }
    }
}

impl ClientConfig {
    /// The configured platform URL, `None` when absent or blank (meaning the in-process sandbox).
    pub fn remote_url(&self) -> Option<&str> {
        self.url.as_deref().map(str::trim).filter(|u| !u.is_empty())
    }

    /// The credentials to call the platform with. The error names the missing or malformed field,
    /// never a key.
    pub fn credentials(&self) -> anyhow::Result<Credentials> {
        credentials_from_parts(
            "platform",
            &self.unit_id,
            &self.user_id,
            self.sm4_key.as_ref(),
            self.hmac_key.as_ref(),
        )
    }
}

/// Builds credentials from configuration text: `sm4_key` as 32 hex digits, `hmac_key` as text of at
/// least 16 bytes. `section` prefixes the field names in errors (`platform.sm4_key is not set`);
/// errors never contain key material.
pub fn credentials_from_parts(
    section: &str,
    unit_id: &str,
    user_id: &str,
    sm4_key: Option<&SecretString>,
    hmac_key: Option<&SecretString>,
) -> anyhow::Result<Credentials> {
    let unit_id = unit_id.trim();
    let user_id = user_id.trim();
    if unit_id.is_empty() {
        bail!("{section}.unit_id is not set");
    }
    if user_id.is_empty() {
        bail!("{section}.user_id is not set");
    }
    let Some(sm4_key) = sm4_key else {
        bail!("{section}.sm4_key is not set");
    };
    let Some(hmac_key) = hmac_key else {
        bail!("{section}.hmac_key is not set");
    };
    let Some(sm4) = protocol::sm4_key_from_hex(sm4_key.expose_secret()) else {
        bail!(
            "{section}.sm4_key must be {} hex digits ({} bytes)",
            2 * protocol::SM4_KEY_LEN,
            protocol::SM4_KEY_LEN
        );
    };
    let hmac = hmac_key.expose_secret().as_bytes().to_vec();
    if hmac.len() < protocol::MIN_HMAC_KEY_LEN {
        bail!(
            "{section}.hmac_key must be at least {} bytes",
            protocol::MIN_HMAC_KEY_LEN
        );
    }
    Credentials::new(unit_id, user_id, sm4, hmac).with_context(|| format!("{section} credentials"))
}

/// The tax platform over HTTP. Cheap to clone; clones share one connection pool.
#[derive(Debug, Clone)]
pub struct HttpPlatform {
    client: reqwest::Client,
    base: reqwest::Url,
    credentials: Arc<Credentials>,
    capability: String,
    clock: SharedClock,
}

impl HttpPlatform {
    /// A client of the platform at `base_url`, calling under `capability` (能力编码), giving each call
    /// `timeout` in all. Requests are signed with the system clock; see [`HttpPlatform::with_clock`].
    pub fn new(
        base_url: &str,
        credentials: Credentials,
        timeout: Duration,
        capability: &str,
    ) -> anyhow::Result<Self> {
        Self::build(
            base_url,
            credentials,
            timeout,
            DEFAULT_CONNECT_TIMEOUT.min(timeout),
            capability,
        )
    }

    /// A client of the platform at `base_url` with the timeouts and capability of `config` and the
    /// given credentials (for the in-process sandbox, whose credentials are generated at start).
    pub fn with_config(
        config: &ClientConfig,
        base_url: &str,
        credentials: Credentials,
    ) -> anyhow::Result<Self> {
        Self::build(
            base_url,
            credentials,
            config.timeout,
            config.connect_timeout,
            &config.capability,
        )
    }

    /// A client of the remote platform `config` names, with its credentials. Fails when no URL or
    /// credential field is configured.
    pub fn from_config(config: &ClientConfig) -> anyhow::Result<Self> {
        let Some(url) = config.remote_url() else {
            bail!("platform.url is not set");
        };
        Self::with_config(config, url, config.credentials()?)
    }

    /// Signs requests with `clock` instead of the system clock (the platform refuses timestamps more
    /// than five minutes away from its own clock).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    fn build(
        base_url: &str,
        credentials: Credentials,
        timeout: Duration,
        connect_timeout: Duration,
        capability: &str,
    ) -> anyhow::Result<Self> {
        let base = reqwest::Url::parse(base_url.trim())
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
            .context("the platform url is not an http(s) URL")?;
        if capability.is_empty() || !capability.bytes().all(|b| b.is_ascii_alphanumeric()) {
            bail!("the platform capability (nlbm) must be non-empty and alphanumeric");
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(connect_timeout)
            .tcp_nodelay(true)
            .build()
            .context("building the platform HTTP client")?;
        Ok(Self {
            client,
            base,
            credentials: Arc::new(credentials),
            capability: capability.to_owned(),
            clock: Arc::new(SystemClock),
        })
    }

    /// The path of a service call as requested and signed, below the base URL's own path.
    fn path(&self, service: &str) -> String {
        let prefix = self.base.path().trim_end_matches('/');
        format!(
            "{prefix}{}",
            messages::invoke_path(&self.capability, service)
        )
    }

    /// One call: the business payload on `"00"`, the platform's code and message on any other
    /// return code, or why there was no usable answer.
    async fn call<Req: Serialize + ?Sized, Rep: DeserializeOwned>(
        &self,
        service: &'static str,
        request: &Req,
    ) -> Result<Result<Rep, PlatformError>, CallError> {
        let json = serde_json::to_vec(request)
            .map_err(|_| CallError::Transport("cannot encode the request".to_owned()))?;
        let sealed = protocol::seal(&self.credentials, &json)
            .map_err(|e| CallError::Transport(format!("cannot seal the request: {e}")))?;
        let path = self.path(service);
        let now = u64::try_from(self.clock.now().timestamp()).unwrap_or(0);
        let signed =
            protocol::sign_request(&self.credentials, "POST", &path, sealed.as_bytes(), now)
                .map_err(|e| CallError::Transport(format!("cannot sign the request: {e}")))?;
        let mut url = self.base.clone();
        url.set_path(&path);
        let mut builder = self
            .client
            .post(url)
            .header(messages::HEADER_CAPABILITY, &self.capability)
            .header(messages::HEADER_SERVICE, service)
            .header(reqwest::header::CONTENT_TYPE, "text/plain");
        for (name, value) in signed.to_pairs() {
            builder = builder.header(name, value);
        }
        let response = builder.body(sealed).send().await.map_err(transport_error)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(transport_error)?;
        let text = self.open_envelope(status, &bytes)?;
        business_reply(service, &text)
    }

    /// The opened business JSON of a reply, or the error its envelope or status means.
    fn open_envelope(
        &self,
        status: reqwest::StatusCode,
        bytes: &[u8],
    ) -> Result<String, CallError> {
        let envelope = match ResponseEnvelope::from_json(bytes) {
            Ok(envelope) => envelope,
            Err(_) if matches!(status.as_u16(), 429 | 503) => {
                return Err(CallError::Busy {
                    code: format!("HTTP_{}", status.as_u16()),
                    message: "the platform is overloaded".to_owned(),
                });
            }
            Err(_) => {
                return Err(CallError::Transport(format!(
                    "unreadable reply (HTTP {})",
                    status.as_u16()
                )));
            }
        };
        match envelope.open_reply(&self.credentials) {
            Ok(text) => Ok(text),
            Err(ReplyError::Refused(error)) => Err(envelope_error(status, error)),
            Err(ReplyError::EnvelopeMalformed) => Err(CallError::Transport(format!(
                "malformed reply envelope (HTTP {})",
                status.as_u16()
            ))),
            Err(ReplyError::BodyUnreadable(e)) => Err(CallError::Transport(format!(
                "the reply cannot be opened: {e}"
            ))),
        }
    }
}

/// What an envelope error means for the caller.
fn envelope_error(status: reqwest::StatusCode, error: PlatformError) -> CallError {
    let PlatformError { code, message } = error;
    if code == "REPLAY_CACHE_FULL" || code == codes::SYSTEM_BUSY {
        CallError::Busy { code, message }
    } else if protocol::is_refusal_code(&code) {
        CallError::Protocol { code }
    } else if code == codes::SYSTEM_ERROR || status.is_server_error() {
        CallError::Transport(format!("platform error {code}: {message}"))
    } else {
        CallError::Refused { code, message }
    }
}

/// Splits a business reply into its payload or its refusal.
fn business_reply<Rep: DeserializeOwned>(
    service: &str,
    text: &str,
) -> Result<Result<Rep, PlatformError>, CallError> {
    let status: messages::ReplyStatus =
        serde_json::from_str(text).map_err(|_| malformed(service))?;
    if status.returncode == codes::SUCCESS {
        return serde_json::from_str(text)
            .map(Ok)
            .map_err(|_| malformed(service));
    }
    if status.returncode == codes::SYSTEM_BUSY {
        return Err(CallError::Busy {
            code: status.returncode,
            message: status.returnmsg,
        });
    }
    Ok(Err(PlatformError {
        code: status.returncode,
        message: status.returnmsg,
    }))
}

fn malformed(service: &str) -> CallError {
    CallError::Transport(format!("malformed {service} reply"))
}

fn refused(error: PlatformError) -> CallError {
    CallError::Refused {
        code: error.code,
        message: error.message,
    }
}

/// Timeouts are [`CallError::Timeout`]; everything else, including failing to connect in time, is a
/// transport failure described by the error chain (which holds no secrets: reqwest reports URL and
/// cause only).
fn transport_error(error: reqwest::Error) -> CallError {
    if error.is_timeout() && !error.is_connect() {
        return CallError::Timeout;
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    CallError::Transport(text)
}

#[async_trait::async_trait]
impl TaxPlatform for HttpPlatform {
    async fn reserve_numbers(
        &self,
        seller: &TaxpayerId,
        count: u32,
    ) -> Result<NumberRange, CallError> {
        let request = messages::ReserveNumbersRequest {
            nsrsbh: seller.as_str().to_owned(),
            lysl: count,
        };
        let reply: messages::ReserveNumbersReply = self
            .call(messages::RESERVE_NUMBERS, &request)
            .await?
            .map_err(refused)?;
        let range = NumberRange {
            first: reply.fpqshm,
            last: reply.fpzzhm,
        };
        let same_prefix = (
            range.first.year(),
            range.first.region(),
            range.first.channel(),
        ) == (range.last.year(), range.last.region(), range.last.channel());
        if !same_prefix || range.is_empty() || range.len() != reply.lysl {
            return Err(malformed(messages::RESERVE_NUMBERS));
        }
        Ok(range)
    }

    async fn quota(&self, seller: &TaxpayerId) -> Result<QuotaStatus, CallError> {
        let request = messages::SellerRequest {
            nsrsbh: seller.as_str().to_owned(),
        };
        let reply: messages::QuotaReply = self
            .call(messages::QUERY_QUOTA, &request)
            .await?
            .map_err(refused)?;
        Ok(QuotaStatus {
            total: reply.zsxed,
            downloaded: reply.yxzed,
            available: reply.kxzed,
        })
    }

    async fn download_quota(
        &self,
        seller: &TaxpayerId,
        amount: Decimal,
        serial: &str,
    ) -> Result<QuotaGrant, CallError> {
        let request = messages::DownloadQuotaRequest {
            nsrsbh: seller.as_str().to_owned(),
            sqed: amount,
            sqlx: "0".to_owned(),
            ywlsh: serial.to_owned(),
        };
        let reply: messages::DownloadQuotaReply = self
            .call(messages::DOWNLOAD_QUOTA, &request)
            .await?
            .map_err(refused)?;
        Ok(QuotaGrant {
            serial: reply.ywlsh,
            granted: reply.xzed,
        })
    }

    async fn upload(
        &self,
        seller: &TaxpayerId,
        invoices: &[IssuedInvoice],
    ) -> Result<UploadReceipt, CallError> {
        let request = messages::UploadRequest {
            nsrsbh: Cow::Borrowed(seller.as_str()),
            fpxx: invoices
                .iter()
                .map(|invoice| messages::UploadedInvoice {
                    fphm: invoice.number,
                    kprq: invoice.issued_at,
                    fpnr: Cow::Borrowed(&invoice.content),
                })
                .collect(),
        };
        let reply: messages::UploadReply = self
            .call(messages::UPLOAD, &request)
            .await?
            .map_err(refused)?;
        Ok(UploadReceipt {
            serial: reply.sllsh,
        })
    }

    async fn upload_result(
        &self,
        seller: &TaxpayerId,
        receipt: &UploadReceipt,
    ) -> Result<UploadResult, CallError> {
        let request = messages::UploadResultRequest {
            nsrsbh: seller.as_str().to_owned(),
            sllsh: receipt.serial.clone(),
        };
        let reply: messages::UploadResultReply =
            match self.call(messages::UPLOAD_RESULT, &request).await? {
                Ok(reply) => reply,
                Err(error) if error.code == codes::RECEIPT_NOT_FOUND => {
                    return Ok(UploadResult::UnknownReceipt);
                }
                Err(error) => return Err(refused(error)),
            };
        Ok(match reply.clzt {
            messages::ProcessingState::Processing => UploadResult::Pending,
            messages::ProcessingState::Done => {
                UploadResult::Done(reply.jgxx.into_iter().map(item_result).collect())
            }
        })
    }

    async fn query_invoice(
        &self,
        seller: &TaxpayerId,
        number: &InvoiceNumber,
    ) -> Result<Option<RemoteInvoice>, CallError> {
        let request = messages::InvoiceRequest {
            nsrsbh: seller.as_str().to_owned(),
            fphm: *number,
        };
        let reply: messages::InvoiceReply =
            match not_found_as_none(self.call(messages::QUERY_INVOICE, &request).await?)? {
                Some(reply) => reply,
                None => return Ok(None),
            };
        Ok(Some(RemoteInvoice {
            number: reply.fphm,
            issued_at: reply.kprq,
            recorded_at: reply.rksj,
            state: reply.fpzt.into(),
            content: reply.fpnr,
        }))
    }

    async fn list_invoices(
        &self,
        seller: &TaxpayerId,
        day: NaiveDate,
        page: u32,
        page_size: u32,
    ) -> Result<RemotePage, CallError> {
        let request = messages::ListRequest {
            nsrsbh: seller.as_str().to_owned(),
            kprq: day,
            ym: page,
            mysl: page_size,
        };
        let reply: messages::ListReply = self
            .call(messages::LIST_INVOICES, &request)
            .await?
            .map_err(refused)?;
        Ok(RemotePage {
            items: reply.fplb.into_iter().map(summary).collect(),
            next_page: reply.xyym,
        })
    }

    async fn usage_status(
        &self,
        seller: &TaxpayerId,
        number: &InvoiceNumber,
    ) -> Result<Option<UsageStatus>, CallError> {
        let request = messages::InvoiceRequest {
            nsrsbh: seller.as_str().to_owned(),
            fphm: *number,
        };
        let reply: Option<messages::UsageReply> =
            not_found_as_none(self.call(messages::USAGE_STATUS, &request).await?)?;
        Ok(reply.map(|reply| UsageStatus {
            used_for_deduction: reply.ytqrbz.into(),
            booked: reply.rzbz.into(),
        }))
    }

    async fn file_red_letter_form(
        &self,
        seller: &TaxpayerId,
        form: &FormRequest,
    ) -> Result<RemoteForm, CallError> {
        let request = messages::FileFormRequest {
            xsfnsrsbh: seller.as_str().to_owned(),
            ywlsh: form.request_id.clone(),
            lzfphm: form.blue_number,
            chyy_dm: form.reason,
            hzqrdmx_list: form
                .lines
                .iter()
                .map(messages::FormLineItem::from)
                .collect(),
        };
        let reply: messages::FormInfo = self
            .call(messages::FILE_FORM, &request)
            .await?
            .map_err(refused)?;
        form_of(messages::FILE_FORM, seller, reply)
    }

    async fn red_letter_form(
        &self,
        seller: &TaxpayerId,
        number: &str,
    ) -> Result<Option<RemoteForm>, CallError> {
        let request = messages::FormRequest {
            xsfnsrsbh: seller.as_str().to_owned(),
            hzqrxxdbh: number.to_owned(),
        };
        let reply: messages::FormInfo = match self.call(messages::QUERY_FORM, &request).await? {
            Ok(reply) => reply,
            Err(error) if error.code == codes::FORM_NOT_FOUND => return Ok(None),
            Err(error) => return Err(refused(error)),
        };
        form_of(messages::QUERY_FORM, seller, reply).map(Some)
    }

    async fn answer_red_letter_form(
        &self,
        seller: &TaxpayerId,
        number: &str,
        answer: FormAnswer,
    ) -> Result<RemoteForm, CallError> {
        let request = messages::AnswerFormRequest {
            xsfnsrsbh: seller.as_str().to_owned(),
            hzqrxxdbh: number.to_owned(),
            qrlx: answer.into(),
        };
        let reply: messages::FormInfo = self
            .call(messages::ANSWER_FORM, &request)
            .await?
            .map_err(refused)?;
        form_of(messages::ANSWER_FORM, seller, reply)
    }

    async fn list_red_letter_forms(
        &self,
        seller: &TaxpayerId,
        since: DateTime<Utc>,
        page: u32,
        page_size: u32,
    ) -> Result<FormPage, CallError> {
        let request = messages::ListFormsRequest {
            xsfnsrsbh: seller.as_str().to_owned(),
            qssj: since,
            ym: page,
            mysl: page_size,
        };
        let reply: messages::ListFormsReply = self
            .call(messages::LIST_FORMS, &request)
            .await?
            .map_err(refused)?;
        let items = reply
            .hzqrxx_list
            .into_iter()
            .map(|info| form_of(messages::LIST_FORMS, seller, info))
            .collect::<Result<_, _>>()?;
        Ok(FormPage {
            items,
            next_page: reply.xyym,
        })
    }
}

/// A form reply that does not describe a form of `seller` is malformed: the platform answered
/// about something else.
fn form_of(
    service: &str,
    seller: &TaxpayerId,
    info: messages::FormInfo,
) -> Result<RemoteForm, CallError> {
    if info.xsfnsrsbh != *seller {
        return Err(malformed(service));
    }
    Ok(info.into())
}

/// `FPHM_NOT_FOUND` as `None`, other refusals as errors.
fn not_found_as_none<T>(answer: Result<T, PlatformError>) -> Result<Option<T>, CallError> {
    match answer {
        Ok(value) => Ok(Some(value)),
        Err(error) if error.code == codes::INVOICE_NOT_FOUND => Ok(None),
        Err(error) => Err(refused(error)),
    }
}

fn item_result(item: messages::UploadItem) -> UploadItemResult {
    let outcome = match item.sczt {
        messages::ItemState::Recorded => UploadOutcome::Recorded,
        messages::ItemState::Rejected => UploadOutcome::Rejected {
            code: item.cwdm,
            message: item.cwxx,
        },
    };
    UploadItemResult {
        number: item.fphm,
        outcome,
    }
}

fn summary(item: messages::ListItem) -> RemoteSummary {
    RemoteSummary {
        number: item.fphm,
        issued_at: item.kprq,
        colour: item.lzfpbz.into(),
        state: item.fpzt.into(),
        buyer_name: item.gmfmc,
        buyer_tax_id: item.gmfnsrsbh,
        amount: item.hjje,
        tax: item.hjse,
        request_id: item.qqlsh,
        content_sm3: item.nrsm3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(text: &str) -> Option<SecretString> {
        Some(SecretString::from(text.to_owned()))
    }

    #[test]
    fn credentials_errors_name_the_field_and_never_the_key() {
        let mut config = ClientConfig {
            unit_id: "JR01".into(),
            user_id: "SY01".into(),
            sm4_key: secret("not-hex-but-a-secret-sm4-text!!!"),
            hmac_key: secret("hmac-secret-key-0123456789"),
            ..ClientConfig::default()
        };
        let error = format!("{:#}", config.credentials().unwrap_err());
        assert!(error.contains("platform.sm4_key"), "{error}");
        assert!(!error.contains("secret"), "{error}");
        config.sm4_key = secret("00112233445566778899aabbccddeeff");
        config.hmac_key = secret("short-secret");
        let error = format!("{:#}", config.credentials().unwrap_err());
        assert!(error.contains("platform.hmac_key"), "{error}");
        assert!(!error.contains("short-secret"), "{error}");
        config.hmac_key = None;
        let error = config.credentials().unwrap_err().to_string();
        assert_eq!(error, "platform.hmac_key is not set");
        config.hmac_key = secret("hmac-secret-key-0123456789");
        assert_eq!(config.credentials().unwrap().unit_id(), "JR01");
    }

    #[test]
    fn envelope_errors_map_to_call_errors() {
        let ok = reqwest::StatusCode::OK;
        let error = |code: &str| PlatformError {
            code: code.into(),
            message: "m".into(),
        };
        assert!(matches!(
            envelope_error(
                reqwest::StatusCode::UNAUTHORIZED,
                error("SIGNATURE_INVALID")
            ),
            CallError::Protocol { .. }
        ));
        assert!(matches!(
            envelope_error(
                reqwest::StatusCode::SERVICE_UNAVAILABLE,
                error("SYSTEM_BUSY")
            ),
            CallError::Busy { .. }
        ));
        assert!(matches!(
            envelope_error(ok, error("REPLAY_CACHE_FULL")),
            CallError::Busy { .. }
        ));
        assert!(matches!(
            envelope_error(
                reqwest::StatusCode::INTERNAL_SERVER_ERROR,
                error("SYSTEM_ERROR")
            ),
            CallError::Transport(_)
        ));
        assert!(matches!(
            envelope_error(ok, error("SOMETHING")),
            CallError::Refused { .. }
        ));
    }

    #[test]
    fn business_replies_split_into_payload_and_refusal() {
        let ok: Result<messages::UploadReply, _> = business_reply(
            "QDFPSC",
            r#"{"returncode":"00","returnmsg":"成功","sllsh":"S1"}"#,
        )
        .unwrap();
        assert_eq!(ok.unwrap().sllsh, "S1");
        let refused: Result<messages::UploadReply, _> = business_reply(
            "QDFPSC",
            r#"{"returncode":"FPSL_EXCEEDED","returnmsg":"多"}"#,
        )
        .unwrap();
        assert_eq!(refused.unwrap_err().code, "FPSL_EXCEEDED");
        assert!(matches!(
            business_reply::<messages::UploadReply>("QDFPSC", r#"{"returncode":"00"}"#),
            Err(CallError::Transport(_))
        ));
        assert!(matches!(
            business_reply::<messages::UploadReply>("QDFPSC", r#"{"returncode":"SYSTEM_BUSY"}"#),
            Err(CallError::Busy { .. })
        ));
    }
}
