//! What the gRPC edge counts: calls refused by a limit, and handlers that panicked (each one a
//! bug: the caller got `INTERNAL` instead of an answer).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    limit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: String,
}

/// The edge's series.
#[derive(Debug, Clone)]
pub struct EdgeMetrics {
    refused: Family<LimitLabels, Counter>,
    panics: Family<MethodLabels, Counter>,
}

/// The limits a call can be refused by, so their series start at zero.
const LIMITS: [&str; 4] = [
    "caller_calls",
    "caller_streams",
    "total_calls",
    "total_streams",
];

impl EdgeMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let refused = Family::<LimitLabels, Counter>::default();
        for limit in LIMITS {
            drop(refused.get_or_create(&LimitLabels { limit }));
        }
        registry.register(
            "fapiao_grpc_refused",
            "Calls refused with RESOURCE_EXHAUSTED because a limit was reached, by limit \
             (caller_calls, caller_streams, total_calls, total_streams)",
            refused.clone(),
        );
        let panics = Family::<MethodLabels, Counter>::default();
        registry.register(
            "fapiao_grpc_panics",
            "Calls whose handler panicked and that were answered INTERNAL, by method",
            panics.clone(),
        );
        Self { refused, panics }
    }

    /// A call was refused by `limit`.
    pub fn refused(&self, limit: &'static str) {
        self.refused.get_or_create(&LimitLabels { limit }).inc();
    }

    /// The handler of `method` panicked.
    pub fn panicked(&self, method: &str) {
        self.panics
            .get_or_create(&MethodLabels {
                method: method.to_owned(),
            })
            .inc();
    }
}
