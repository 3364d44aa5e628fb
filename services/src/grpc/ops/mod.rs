//! The `OpsService`: on-call engineers list reconciliation runs and drifts, resolve a drift by hand
//! and start a pass. Every call needs the operator role.
//!
//! Handlers check and map messages; runs and drifts live in the store, passes are run by the
//! reconciliation worker ([`crate::reconciling::schedule`]). A resolution keeps who resolved the
//! drift and why; a requested pass keeps who asked and why.

mod wire;

pub use wire::{drift, drift_kind, run};
use wire::{drift_class, run_status_name};

use super::{convert, paging, status};
use crate::auth::{self, Role};
use crate::clock::SharedClock;
use crate::clock::china_day;
use crate::issuance::supply::SupplyHandle;
use crate::reconciling::schedule::Reconciler;
use crate::store::{DriftFilter, ResolveRefused, RunFilter, RunRequest, Store};
use fapiao_invoice::money::format_money;
use fapiao_invoice::taxpayer::TaxpayerId;
use fapiao_proto::v1;
use fapiao_proto::v1::ops_service_server::OpsService;
use rust_decimal::Decimal;
use tonic::{Request, Response, Status};

/// Longest window a requested pass may cover.
const MAX_TRIGGER_DAYS: i64 = 31;
/// Longest reason, in characters.
const MAX_REASON: usize = 500;
/// How far in the future `to` may lie, for clocks that disagree slightly.
const CLOCK_SKEW_SECONDS: i64 = 60;

/// The service.
#[derive(Debug, Clone)]
pub struct OpsApi {
    store: Store,
    reconciler: Reconciler,
    clock: SharedClock,
    /// The configured sellers, in order.
    sellers: Vec<TaxpayerId>,
    supply: SupplyHandle,
}

impl OpsApi {
    pub fn new(
        store: Store,
        reconciler: Reconciler,
        clock: SharedClock,
        sellers: Vec<TaxpayerId>,
        supply: SupplyHandle,
    ) -> Self {
        Self {
            store,
            reconciler,
            clock,
            sellers,
            supply,
        }
    }

    /// One seller's reserves on the wire.
    async fn reserves(&self, seller: &TaxpayerId) -> Result<v1::SellerReserves, Status> {
        let r = self
            .store
            .reserves(seller)
            .await
            .map_err(|e| status::internal("reading numbers and quota", &e))?;
        let yuan = |fen: i64| format_money(Decimal::new(fen, 2));
        let synced_at = r
            .ranges
            .iter()
            .map(|range| range.reserved_at)
            .chain(r.quota_checked_at)
            .max();
        Ok(v1::SellerReserves {
            seller_tax_id: seller.as_str().to_owned(),
            numbers_remaining: r.ranges.iter().map(|range| range.remaining).sum(),
            number_ranges: r
                .ranges
                .iter()
                .map(|range| v1::NumberRange {
                    first_number: range.first.to_string(),
                    last_number: range.last.to_string(),
                    next_number: range.next.to_string(),
                    remaining: range.remaining,
                    reserved_at: Some(convert::timestamp(range.reserved_at)),
                })
                .collect(),
            quota_month: china_day(self.clock.now()).format("%Y-%m").to_string(),
            quota_reserved: yuan(r.downloaded_fen),
            quota_used: yuan(r.used_fen),
            quota_remaining: yuan(r.downloaded_fen - r.used_fen),
            quota_available_on_platform: r.platform_available_fen.map(yuan).unwrap_or_default(),
            synced_at: synced_at.map(convert::timestamp),
            top_up_in_progress: self.supply.topping_up(seller),
        })
    }
}

/// An opaque id as the store's number; anything else names nothing.
fn parse_id(id: &str) -> Option<i64> {
    id.parse().ok().filter(|id: &i64| *id > 0)
}

/// The reason of a resolution or request: trimmed, 1 to 500 characters.
fn reason(text: &str) -> Option<&str> {
    let text = text.trim();
    let length = text.chars().count();
    (1..=MAX_REASON).contains(&length).then_some(text)
}

/// The violation of a reason holding a control character (other than tab and line breaks),
/// which neither the trail nor PostgreSQL text can keep as sent.
fn reason_characters(text: &str) -> Option<(String, &'static str, &'static str)> {
    text.chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
        .then(|| {
            (
                "reason".to_owned(),
                "TEXT_CONTROL_CHARACTER",
                "原因不能含有控制字符",
            )
        })
}

#[tonic::async_trait]
impl OpsService for OpsApi {
    async fn list_reconciliation_runs(
        &self,
        request: Request<v1::ListReconciliationRunsRequest>,
    ) -> Result<Response<v1::ListReconciliationRunsResponse>, Status> {
        let caller = auth::caller(&request)?;
        caller.require_role(Role::Operator)?;
        let scope = caller.scope();
        let req = request.into_inner();
        let mut problems = Vec::new();
        let status = v1::RunStatus::try_from(req.status).unwrap_or_else(|_| {
            problems.push(("status".to_owned(), "STATUS_INVALID", "运行状态无效"));
            v1::RunStatus::Unspecified
        });
        let range = req.started.unwrap_or_default();
        let time = |t: &Option<prost_types::Timestamp>| t.as_ref().map(convert::from_timestamp);
        let (from, to) = (time(&range.from), time(&range.to));
        if matches!(from, Some(None)) {
            problems.push(("started.from".to_owned(), "TIME_INVALID", "时间无效"));
        }
        if matches!(to, Some(None)) {
            problems.push(("started.to".to_owned(), "TIME_INVALID", "时间无效"));
        }
        let (from, to) = (from.flatten(), to.flatten());
        if let (Some(from), Some(to)) = (from, to)
            && to <= from
        {
            problems.push((
                "started.to".to_owned(),
                "RANGE_INVALID",
                "结束时间须晚于开始时间",
            ));
        }
        if !problems.is_empty() {
            return Err(status::bad_fields(&problems));
        }
        let filter = RunFilter {
            status: run_status_name(status).map(str::to_owned),
            started_from: from,
            started_to: to,
        };
        let print = paging::fingerprint(&(&filter, &scope));
        let before = paging::parse_id_token(&req.page_token, &print)?;
        let size = paging::page_size(req.page_size);
        let rows = self
            .store
            .list_runs(&scope, &filter, before, size + 1)
            .await
            .map_err(|e| status::internal("listing runs", &e))?;
        let (rows, next_page_token) =
            paging::split_page(rows, size, |r| paging::id_token(r.id, &print));
        Ok(Response::new(v1::ListReconciliationRunsResponse {
            runs: rows.iter().map(run).collect(),
            next_page_token,
        }))
    }

    async fn get_reconciliation_run(
        &self,
        request: Request<v1::GetReconciliationRunRequest>,
    ) -> Result<Response<v1::GetReconciliationRunResponse>, Status> {
        let caller = auth::caller(&request)?;
        caller.require_role(Role::Operator)?;
        let req = request.into_inner();
        let not_found = || {
            Status::not_found(format!(
                "RUN_NOT_FOUND: no reconciliation run {}",
                status::echo(&req.run_id)
            ))
        };
        let id = parse_id(&req.run_id).ok_or_else(not_found)?;
        let stored = self
            .store
            .get_run(&caller.scope(), id)
            .await
            .map_err(|e| status::internal("reading a run", &e))?
            .ok_or_else(not_found)?;
        Ok(Response::new(v1::GetReconciliationRunResponse {
            run: Some(run(&stored)),
        }))
    }

    async fn list_drifts(
        &self,
        request: Request<v1::ListDriftsRequest>,
    ) -> Result<Response<v1::ListDriftsResponse>, Status> {
        let caller = auth::caller(&request)?;
        caller.require_role(Role::Operator)?;
        let req = request.into_inner();
        let mut problems = Vec::new();
        let status = match v1::DriftStatus::try_from(req.status) {
            Ok(v1::DriftStatus::Unspecified | v1::DriftStatus::Open) => "open",
            Ok(v1::DriftStatus::Repaired) => "repaired",
            Ok(v1::DriftStatus::Resolved) => "resolved",
            Err(_) => {
                problems.push(("status".to_owned(), "STATUS_INVALID", "偏差状态无效"));
                "open"
            }
        };
        let mut classes = Vec::new();
        for (i, kind) in req.kinds.iter().enumerate() {
            match v1::DriftKind::try_from(*kind) {
                Ok(kind) => classes.extend(drift_class(kind).map(str::to_owned)),
                Err(_) => problems.push((format!("kinds[{i}]"), "KIND_INVALID", "偏差类型无效")),
            }
        }
        classes.sort();
        classes.dedup();
        let seller = match req.seller_tax_id.trim() {
            "" => None,
            text => match TaxpayerId::parse(text) {
                Ok(id) => Some(id),
                Err(_) => {
                    problems.push((
                        "seller_tax_id".to_owned(),
                        "SELLER_TAX_ID_INVALID",
                        "销售方纳税人识别号无效",
                    ));
                    None
                }
            },
        };
        let run = match req.run_id.as_str() {
            "" => None,
            id => match parse_id(id) {
                Some(id) => Some(id),
                None => {
                    problems.push(("run_id".to_owned(), "RUN_ID_INVALID", "运行编号无效"));
                    None
                }
            },
        };
        if !problems.is_empty() {
            return Err(status::bad_fields(&problems));
        }
        let scope = caller.scope_of(seller.as_slice())?;
        let filter = DriftFilter {
            status: status.to_owned(),
            classes,
            seller: None,
            run,
        };
        let print = paging::fingerprint(&(&filter, &scope));
        let before = paging::parse_id_token(&req.page_token, &print)?;
        let size = paging::page_size(req.page_size);
        let rows = self
            .store
            .list_drifts(&scope, &filter, before, size + 1)
            .await
            .map_err(|e| status::internal("listing drifts", &e))?;
        let (rows, next_page_token) =
            paging::split_page(rows, size, |d| paging::id_token(d.id, &print));
        Ok(Response::new(v1::ListDriftsResponse {
            drifts: rows.iter().map(drift).collect(),
            next_page_token,
        }))
    }

    async fn resolve_drift(
        &self,
        request: Request<v1::ResolveDriftRequest>,
    ) -> Result<Response<v1::ResolveDriftResponse>, Status> {
        let caller = auth::caller(&request)?;
        caller.require_role(Role::Operator)?;
        let req = request.into_inner();
        if let Some(problem) = reason_characters(&req.reason) {
            return Err(status::bad_fields(&[problem]));
        }
        let Some(why) = reason(&req.reason) else {
            return Err(status::bad_field(
                "reason",
                "RESOLUTION_REASON_REQUIRED",
                "须说明处理依据（1 至 500 个字符）",
            ));
        };
        let not_found = || {
            Status::not_found(format!(
                "DRIFT_NOT_FOUND: no drift {}",
                status::echo(&req.drift_id)
            ))
        };
        let id = parse_id(&req.drift_id).ok_or_else(not_found)?;
        let now = self.clock.now();
        match self
            .store
            .resolve_drift(&caller.scope(), id, &caller.name, why, now)
            .await
            .map_err(|e| status::internal("resolving a drift", &e))?
        {
            Ok(stored) => {
                tracing::info!(
                    drift = id,
                    invoice = stored.invoice_number,
                    by = caller.name,
                    "drift resolved by hand"
                );
                Ok(Response::new(v1::ResolveDriftResponse {
                    drift: Some(drift(&stored)),
                }))
            }
            Err(ResolveRefused::NotFound) => Err(not_found()),
            Err(ResolveRefused::AlreadyClosed(stored)) => {
                Err(Status::failed_precondition(format!(
                    "DRIFT_ALREADY_CLOSED: drift {id} is already {}",
                    stored.status
                )))
            }
        }
    }

    async fn trigger_reconciliation(
        &self,
        request: Request<v1::TriggerReconciliationRequest>,
    ) -> Result<Response<v1::TriggerReconciliationResponse>, Status> {
        let caller = auth::caller(&request)?;
        caller.require_role(Role::Operator)?;
        let req = request.into_inner();
        let now = self.clock.now();
        let mut problems = Vec::new();
        let window = req.window.unwrap_or_default();
        let bound = |t: &Option<prost_types::Timestamp>, field: &str, problems: &mut Vec<_>| match t
            .as_ref()
            .map(convert::from_timestamp)
        {
            Some(Some(at)) => Some(at),
            Some(None) => {
                problems.push((field.to_owned(), "TIME_INVALID", "时间无效"));
                None
            }
            None => {
                problems.push((field.to_owned(), "WINDOW_REQUIRED", "须提供对账时间范围"));
                None
            }
        };
        let from = bound(&window.from, "window.from", &mut problems);
        let to = bound(&window.to, "window.to", &mut problems);
        if let (Some(from), Some(to)) = (from, to) {
            if to <= from {
                problems.push((
                    "window.to".to_owned(),
                    "RANGE_INVALID",
                    "结束时间须晚于开始时间",
                ));
            } else if to.signed_duration_since(from) > chrono::TimeDelta::days(MAX_TRIGGER_DAYS) {
                problems.push((
                    "window".to_owned(),
                    "RANGE_TOO_LONG",
                    "对账范围不得超过 31 天",
                ));
            }
            if to.signed_duration_since(now) > chrono::TimeDelta::seconds(CLOCK_SKEW_SECONDS) {
                problems.push((
                    "window.to".to_owned(),
                    "TIME_IN_FUTURE",
                    "结束时间不得晚于当前时间",
                ));
            }
        }
        let configured = self.reconciler.sellers();
        let mut requested = Vec::with_capacity(req.seller_tax_ids.len());
        for (i, seller) in req.seller_tax_ids.iter().enumerate() {
            match TaxpayerId::parse(seller.trim()) {
                // A seller the caller may not act for is refused before anything is said about
                // whether this deployment has it.
                Ok(id) => {
                    caller.require_seller(&id)?;
                    if !configured.iter().any(|c| c == id.as_str()) {
                        problems.push((
                            format!("seller_tax_ids[{i}]"),
                            "SELLER_NOT_CONFIGURED",
                            "本部署未配置该销售方",
                        ));
                    }
                    requested.push(id.as_str().to_owned());
                }
                Err(_) => problems.push((
                    format!("seller_tax_ids[{i}]"),
                    "SELLER_TAX_ID_INVALID",
                    "销售方纳税人识别号无效",
                )),
            }
        }
        // Without a list, a caller limited to some sellers asks for the configured ones of its
        // own; a caller of every seller for all of them.
        let sellers = match caller.scope().listed() {
            Some(own) if requested.is_empty() => {
                let own: Vec<String> = own
                    .iter()
                    .filter(|s| configured.iter().any(|c| c == *s))
                    .cloned()
                    .collect();
                if own.is_empty() {
                    problems.push((
                        "seller_tax_ids".to_owned(),
                        "SELLER_NOT_CONFIGURED",
                        "本部署未配置该调用方可操作的销售方",
                    ));
                }
                own
            }
            _ => requested,
        };
        let why = reason(&req.reason);
        if let Some(problem) = reason_characters(&req.reason) {
            problems.push(problem);
        } else if why.is_none() {
            problems.push((
                "reason".to_owned(),
                "REASON_REQUIRED",
                "须说明发起对账的原因（1 至 500 个字符）",
            ));
        }
        let (Some(from), Some(to), Some(why), true) = (from, to, why, problems.is_empty()) else {
            return Err(status::bad_fields(&problems));
        };
        let mut sellers = sellers;
        sellers.sort();
        sellers.dedup();
        let request = RunRequest {
            kind: "manual".to_owned(),
            window: (from, to),
            sellers: (!sellers.is_empty()).then_some(sellers),
            triggered_by: Some(caller.name.clone()),
            reason: Some(why.to_owned()),
        };
        let stored = self
            .reconciler
            .request(&request)
            .await
            .map_err(|e| status::internal("requesting a reconciliation pass", &e))?;
        tracing::info!(
            run = stored.id,
            by = caller.name,
            "reconciliation pass requested"
        );
        Ok(Response::new(v1::TriggerReconciliationResponse {
            run: Some(run(&stored)),
        }))
    }

    async fn list_pending_red_letter_forms(
        &self,
        request: Request<v1::ListPendingRedLetterFormsRequest>,
    ) -> Result<Response<v1::ListPendingRedLetterFormsResponse>, Status> {
        let caller = auth::caller(&request)?;
        caller.require_role(Role::Operator)?;
        let req = request.into_inner();
        let mut problems: Vec<(String, &str, &str)> = Vec::new();
        let seller = match req.seller_tax_id.trim() {
            "" => None,
            text => match TaxpayerId::parse(text) {
                Ok(id) => Some(id),
                Err(_) => {
                    problems.push((
                        "seller_tax_id".into(),
                        "SELLER_TAX_ID_INVALID",
                        "纳税人识别号无效",
                    ));
                    None
                }
            },
        };
        let within = match req.expiring_within.as_ref().map(convert::from_duration) {
            None => None,
            Some(Ok(within)) => Some(within),
            Some(Err(convert::DurationProblem::Negative)) => {
                problems.push((
                    "expiring_within".into(),
                    "DURATION_NEGATIVE",
                    "时长不能为负",
                ));
                None
            }
            Some(Err(convert::DurationProblem::OutOfRange)) => {
                problems.push((
                    "expiring_within".into(),
                    "DURATION_OUT_OF_RANGE",
                    "时长超出允许范围（最长10000年）",
                ));
                None
            }
        };
        if !problems.is_empty() {
            return Err(status::bad_fields(&problems));
        }
        let scope = caller.scope_of(seller.as_slice())?;
        let fingerprint = paging::fingerprint(&(&scope, &within));
        let after = pending_cursor(&req.page_token, &fingerprint)?;
        let size = paging::page_size(req.page_size);
        let now = self.clock.now();
        let found = self
            .store
            .pending_forms(
                &scope,
                // Past chrono's range means no limit at all.
                within.and_then(|w| now.checked_add_signed(w)),
                after,
                size + 1,
            )
            .await
            .map_err(|e| status::internal("listing pending red-letter forms", &e))?;
        let (page, next_page_token) = paging::split_page(found, size, |last| {
            format!(
                "p1.{}.{}.{fingerprint}",
                last.expires_at.map(|e| e.timestamp_micros()).unwrap_or(0),
                last.id
            )
        });
        Ok(Response::new(v1::ListPendingRedLetterFormsResponse {
            forms: super::redletter::forms(&self.store, &scope, &page).await?,
            next_page_token,
        }))
    }

    async fn get_number_and_quota_status(
        &self,
        request: Request<v1::GetNumberAndQuotaStatusRequest>,
    ) -> Result<Response<v1::GetNumberAndQuotaStatusResponse>, Status> {
        let caller = auth::caller(&request)?;
        caller.require_role(Role::Operator)?;
        let wanted = request.into_inner().seller_tax_id;
        let sellers: Vec<&TaxpayerId> = match wanted.trim() {
            "" => self.sellers.iter().collect(),
            text => {
                let id = TaxpayerId::parse(text).map_err(|_| {
                    status::bad_field("seller_tax_id", "SELLER_TAX_ID_INVALID", "纳税人识别号无效")
                })?;
                caller.require_seller(&id)?;
                let known = self.sellers.iter().find(|s| **s == id).ok_or_else(|| {
                    Status::not_found(format!("SELLER_NOT_FOUND: seller {id} is not configured"))
                })?;
                vec![known]
            }
        };
        let mut out = Vec::with_capacity(sellers.len());
        for seller in sellers {
            // Operators limited to some sellers see only theirs.
            if caller.require_seller(seller).is_ok() {
                out.push(self.reserves(seller).await?);
            }
        }
        Ok(Response::new(v1::GetNumberAndQuotaStatusResponse {
            sellers: out,
        }))
    }
}

/// Where a pending-form listing continues, from a token made for the same filters.
fn pending_cursor(
    token: &str,
    fingerprint: &str,
) -> Result<Option<(chrono::DateTime<chrono::Utc>, i64)>, Status> {
    if token.is_empty() {
        return Ok(None);
    }
    let parts: Vec<&str> = token.splitn(4, '.').collect();
    match parts.as_slice() {
        ["p1", at, id, fp] if *fp == fingerprint => {
            let at = at.parse::<i64>().map_err(|_| paging::bad_token())?;
            let id = id.parse::<i64>().map_err(|_| paging::bad_token())?;
            let at = chrono::DateTime::from_timestamp_micros(at).ok_or_else(paging::bad_token)?;
            Ok(Some((at, id)))
        }
        _ => Err(paging::bad_token()),
    }
}
