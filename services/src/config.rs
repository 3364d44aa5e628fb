//! Configuration of `fapiao serve`: built-in defaults, then an optional TOML file, then flags.
//!
//! The defaults run the service with no set-up at all (the "embedded defaults"): a local listener
//! and the sandbox seller. Every option is documented on its field; `deploy/fapiao.example.toml`
//! shows them all.

use crate::auth::TokenConfig;
use crate::sellers::SellerProfile;
use anyhow::Context;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Everything the service reads at start-up.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address of the gRPC listener. Port 0 picks a free port (the address is printed).
    pub listen: SocketAddr,
    /// A replacement catalog of tax classification codes, in the format of the bundled
    /// `invoice/data/tax_codes.toml`. The bundled catalog is used when absent.
    pub tax_codes: Option<PathBuf>,
    /// The sellers this deployment issues for. Requests for any other seller are refused with
    /// `SELLER_NOT_CONFIGURED`.
    pub sellers: Vec<SellerProfile>,
    /// Bearer tokens of the callers. With none configured, a random development token with every
    /// role is generated at start and printed: fine on a laptop, never in production.
    pub tokens: Vec<TokenConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            tax_codes: None,
            sellers: vec![SellerProfile::demo()],
            tokens: Vec::new(),
        }
    }
}

impl Config {
    /// The defaults, overlaid with the file at `path` when given.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        Self::from_toml_str(&text)
            .with_context(|| format!("parsing config file {}", path.display()))
    }

    pub fn from_toml_str(text: &str) -> anyhow::Result<Self> {
        Ok(toml::from_str(text)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_overrides_only_what_it_names() {
        let c = Config::from_toml_str("listen = \"0.0.0.0:6000\"").unwrap();
        assert_eq!(c.listen, "0.0.0.0:6000".parse().unwrap());
        assert_eq!(c.sellers, vec![SellerProfile::demo()]);
        assert!(Config::from_toml_str("lisen = \"0.0.0.0:6000\"").is_err());
    }

    #[test]
    fn the_example_config_is_valid() {
        let text = include_str!("../../deploy/fapiao.example.toml");
        let c = Config::from_toml_str(text).unwrap();
        assert!(!c.sellers.is_empty());
    }
}
