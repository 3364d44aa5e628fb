//! Authentication and authorisation of gRPC callers.
//!
//! A caller presents `authorization: Bearer <token>`. Tokens come from the configuration, each with
//! a name (recorded in event and access trails), the roles it holds and the sellers it may act for.
//! A missing or unknown token is `UNAUTHENTICATED`; a known caller without the role or the seller
//! is `PERMISSION_DENIED`. Tokens are secrets: they are compared in constant time and never logged,
//! printed or put in an error, except the development token that the embedded defaults generate
//! and print once so a newcomer can make a first call.

use crate::store::Scope;
use fapiao_invoice::taxpayer::TaxpayerId;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::collections::HashSet;
use std::sync::Arc;
use subtle::ConstantTimeEq;
use tonic::Status;
use tonic::metadata::MetadataMap;

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Business services: issue, red-letter, look up and watch invoices.
    Issuer,
    /// Auditors: search invoices, download and verify archived files.
    Auditor,
    /// On-call engineers: reconciliation runs, drifts, reserves.
    Operator,
}

/// One configured token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds the token, as recorded in trails (e.g. `order-service`).
    pub name: String,
    /// The bearer token. At least 16 characters.
    pub token: SecretString,
    pub roles: Vec<Role>,
    /// Tax ids the caller may act for; `["*"]` for every configured seller.
    pub sellers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum SellerScope {
    All,
    Only(HashSet<TaxpayerId>),
}

/// An authenticated caller, put into each request's extensions by [`Authenticator`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    /// The name, shared: what the server's limits count per caller.
    pub id: Arc<str>,
    roles: HashSet<Role>,
    sellers: SellerScope,
}

impl Caller {
    pub fn require_role(&self, role: Role) -> Result<(), Status> {
        if self.roles.contains(&role) {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "ROLE_REQUIRED: this call needs the {role:?} role"
            )))
        }
    }

    pub fn require_seller(&self, seller: &TaxpayerId) -> Result<(), Status> {
        let allowed = match &self.sellers {
            SellerScope::All => true,
            SellerScope::Only(set) => set.contains(seller),
        };
        if allowed {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "SELLER_NOT_ALLOWED: the caller may not act for seller {seller}"
            )))
        }
    }

    /// The scope of a call that names `requested` sellers: each must be one the caller may act
    /// for (`PERMISSION_DENIED` otherwise, whether or not the seller exists, so the answer says
    /// nothing about other sellers); naming none means every seller the caller may see.
    pub fn scope_of(&self, requested: &[TaxpayerId]) -> Result<Scope, Status> {
        if requested.is_empty() {
            return Ok(self.scope());
        }
        for seller in requested {
            self.require_seller(seller)?;
        }
        Ok(Scope::sellers(
            requested.iter().map(|s| s.as_str().to_owned()),
        ))
    }

    /// The sellers the caller may see, as every read and write made for it is limited.
    pub fn scope(&self) -> Scope {
        match &self.sellers {
            SellerScope::All => Scope::unrestricted(),
            SellerScope::Only(set) => Scope::sellers(set.iter().map(|s| s.as_str().to_owned())),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error("token {name:?} is shorter than 16 characters")]
    ShortToken { name: String },
    #[error("token {name:?} has no role")]
    NoRole { name: String },
    #[error("token {name:?} names an invalid seller tax id: {reason}")]
    Seller { name: String, reason: String },
    #[error("two tokens share a value (names {first:?} and {second:?})")]
    Duplicate { first: String, second: String },
    #[error("the system has no randomness source for the development token")]
    Random,
}

/// Checks bearer tokens.
#[derive(Debug, Clone)]
pub struct Authenticator {
    // Shared, so authenticating a request costs a reference count, not a copy of the scopes.
    tokens: Vec<(SecretString, Arc<Caller>)>,
}

const MIN_TOKEN_LEN: usize = 16;

impl Authenticator {
    pub fn new(configs: &[TokenConfig]) -> Result<Self, AuthConfigError> {
        let mut tokens: Vec<(SecretString, Arc<Caller>)> = Vec::with_capacity(configs.len());
        for c in configs {
            let name = c.name.clone();
            if c.token.expose_secret().chars().count() < MIN_TOKEN_LEN {
                return Err(AuthConfigError::ShortToken { name });
            }
            if c.roles.is_empty() {
                return Err(AuthConfigError::NoRole { name });
            }
            if let Some((_, other)) = tokens
                .iter()
                .find(|(t, _)| same(t, c.token.expose_secret()))
            {
                return Err(AuthConfigError::Duplicate {
                    first: other.name.clone(),
                    second: name,
                });
            }
            let sellers = if c.sellers.iter().any(|s| s.trim() == "*") {
                SellerScope::All
            } else {
                let ids = c
                    .sellers
                    .iter()
                    .map(|s| TaxpayerId::parse(s))
                    .collect::<Result<HashSet<_>, _>>()
                    .map_err(|e| AuthConfigError::Seller {
                        name: name.clone(),
                        reason: e.to_string(),
                    })?;
                SellerScope::Only(ids)
            };
            tokens.push((
                c.token.clone(),
                Arc::new(Caller {
                    id: Arc::from(name.as_str()),
                    name,
                    roles: c.roles.iter().copied().collect(),
                    sellers,
                }),
            ));
        }
        Ok(Self { tokens })
    }

    /// A fresh random token with every role for every seller, for the embedded defaults.
    pub fn development() -> Result<(Self, String), AuthConfigError> {
        let mut bytes = [0u8; 24];
        getrandom::fill(&mut bytes).map_err(|_| AuthConfigError::Random)?;
        let token = crate::platform::protocol::hex(&bytes);
        let auth = Self::new(&[TokenConfig {
            name: "development".into(),
            token: SecretString::from(format!("dev-{token}")),
            roles: vec![Role::Issuer, Role::Auditor, Role::Operator],
            sellers: vec!["*".into()],
        }])?;
        Ok((auth, format!("dev-{token}")))
    }

    /// The caller behind the request's bearer token.
    pub fn authenticate(&self, metadata: &MetadataMap) -> Result<Arc<Caller>, Status> {
        self.bearer(
            metadata
                .get("authorization")
                .map(|value| value.to_str().ok()),
        )
    }

    /// The caller behind the bearer token in the HTTP headers of a call.
    pub fn authenticate_headers(
        &self,
        headers: &tonic::codegen::http::HeaderMap,
    ) -> Result<Arc<Caller>, Status> {
        self.bearer(
            headers
                .get("authorization")
                .map(|value| value.to_str().ok()),
        )
    }

    /// `header` is the authorization header, if sent, and its text, if it is text.
    fn bearer(&self, header: Option<Option<&str>>) -> Result<Arc<Caller>, Status> {
        let header = header.ok_or_else(|| {
            Status::unauthenticated("TOKEN_MISSING: send authorization: Bearer <token>")
        })?;
        let presented = header
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or_else(|| Status::unauthenticated("TOKEN_MALFORMED: expected a bearer token"))?;
        // Compare against every token so the time taken does not say which one nearly matched.
        let mut found = None;
        for (token, caller) in &self.tokens {
            if same(token, presented) {
                found = Some(caller);
            }
        }
        found
            .cloned()
            .ok_or_else(|| Status::unauthenticated("TOKEN_UNKNOWN: the token is not valid"))
    }
}

fn same(token: &SecretString, presented: &str) -> bool {
    token
        .expose_secret()
        .as_bytes()
        .ct_eq(presented.as_bytes())
        .into()
}

/// The caller a request was authenticated as. Handlers behind the authenticating interceptor
/// always find one; a missing one means the service was wired without it, which is refused.
pub fn caller<T>(request: &tonic::Request<T>) -> Result<Arc<Caller>, Status> {
    request
        .extensions()
        .get::<Arc<Caller>>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("TOKEN_MISSING: the request was not authenticated"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SELLER: &str = "91310000MA1FP00011";

    fn config(token: &str, roles: Vec<Role>, sellers: &[&str]) -> TokenConfig {
        TokenConfig {
            name: "order-service".into(),
            token: SecretString::from(token.to_owned()),
            roles,
            sellers: sellers.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn metadata(value: &str) -> MetadataMap {
        let mut m = MetadataMap::new();
        m.insert("authorization", value.parse().unwrap());
        m
    }

    #[test]
    fn known_tokens_become_callers_with_their_roles_and_sellers() {
        let auth =
            Authenticator::new(&[config("s3cret-token-0001", vec![Role::Issuer], &[SELLER])])
                .unwrap();
        let caller = auth
            .authenticate(&metadata("Bearer s3cret-token-0001"))
            .unwrap();
        assert_eq!(caller.name, "order-service");
        assert!(caller.require_role(Role::Issuer).is_ok());
        assert_eq!(
            caller.require_role(Role::Auditor).unwrap_err().code(),
            tonic::Code::PermissionDenied
        );
        assert!(
            caller
                .require_seller(&TaxpayerId::parse(SELLER).unwrap())
                .is_ok()
        );
        let other = TaxpayerId::parse("91110302MA01NP925M").unwrap();
        assert_eq!(
            caller.require_seller(&other).unwrap_err().code(),
            tonic::Code::PermissionDenied
        );
    }

    #[test]
    fn missing_malformed_and_unknown_tokens_are_unauthenticated() {
        let auth =
            Authenticator::new(&[config("s3cret-token-0001", vec![Role::Issuer], &["*"])]).unwrap();
        for md in [
            MetadataMap::new(),
            metadata("Basic abc"),
            metadata("Bearer s3cret-token-0002"),
        ] {
            let status = auth.authenticate(&md).unwrap_err();
            assert_eq!(status.code(), tonic::Code::Unauthenticated);
            assert!(!status.message().contains("s3cret"), "{}", status.message());
        }
    }

    #[test]
    fn bad_token_configuration_is_refused_without_showing_the_secret() {
        let short = Authenticator::new(&[config("short", vec![Role::Issuer], &["*"])]).unwrap_err();
        assert!(matches!(short, AuthConfigError::ShortToken { .. }));
        let dup = Authenticator::new(&[
            config("s3cret-token-0001", vec![Role::Issuer], &["*"]),
            config("s3cret-token-0001", vec![Role::Auditor], &["*"]),
        ])
        .unwrap_err();
        assert!(!dup.to_string().contains("s3cret"));
        let bad_seller =
            Authenticator::new(&[config("s3cret-token-0001", vec![Role::Issuer], &["123"])]);
        assert!(matches!(bad_seller, Err(AuthConfigError::Seller { .. })));
        let debug = format!(
            "{:?}",
            config("s3cret-token-0001", vec![Role::Issuer], &["*"])
        );
        assert!(!debug.contains("s3cret"), "{debug}");
    }

    #[test]
    fn development_tokens_are_random_and_hold_every_role() {
        let (auth, token) = Authenticator::development().unwrap();
        let (_, other) = Authenticator::development().unwrap();
        assert_ne!(token, other);
        let caller = auth
            .authenticate(&metadata(&format!("Bearer {token}")))
            .unwrap();
        for role in [Role::Issuer, Role::Auditor, Role::Operator] {
            assert!(caller.require_role(role).is_ok());
        }
    }
}
