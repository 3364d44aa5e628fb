//! Which sellers a read or a write may touch.
//!
//! Every store method that answers a caller takes a [`Scope`] and applies it in its SQL, so rows of
//! sellers outside it are never returned, counted or changed for that caller. A handler cannot
//! forget whose data it reads: it cannot call those methods without a scope, and the only scope a
//! handler has is the caller's (`auth::Caller::scope`). Background workers act for every seller and
//! say so with [`Scope::unrestricted`]; the gRPC handlers never do (a test reads them to make sure).
//!
//! What falls outside a scope is absent, not forbidden: another seller's invoice, form, drift or
//! trail entry reads exactly like one that does not exist.

/// The sellers a call may see: every seller, or the listed tax ids.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope(Option<Vec<String>>);

impl Scope {
    /// Every seller: for background work done on behalf of the deployment, never for a caller's
    /// request.
    pub fn unrestricted() -> Self {
        Self(None)
    }

    /// Only `sellers` (tax ids as stored); an empty list admits nothing.
    pub fn sellers<I, S>(sellers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut list: Vec<String> = sellers.into_iter().map(Into::into).collect();
        list.sort();
        list.dedup();
        Self(Some(list))
    }

    /// Whether the scope covers every seller.
    pub fn is_unrestricted(&self) -> bool {
        self.0.is_none()
    }

    /// The listed sellers, sorted; `None` when the scope covers every seller.
    pub fn listed(&self) -> Option<&[String]> {
        self.0.as_deref()
    }

    /// Whether `seller` is inside the scope.
    pub fn admits(&self, seller: &str) -> bool {
        match &self.0 {
            None => true,
            Some(list) => list.binary_search_by(|s| s.as_str().cmp(seller)).is_ok(),
        }
    }

    /// Whether every one of `sellers` is inside the scope.
    pub fn admits_all<'a>(&self, mut sellers: impl Iterator<Item = &'a str>) -> bool {
        sellers.all(|s| self.admits(s))
    }

    /// The SQL condition restricting `column` to the scope, with placeholders numbered from
    /// `first`, and the values to bind in order; `None` when the scope covers every seller. A
    /// scope that admits nothing gives a condition that is never true.
    pub(crate) fn condition(&self, column: &str, first: usize) -> Option<(String, &[String])> {
        let list = self.0.as_deref()?;
        if list.is_empty() {
            return Some(("1 = 0".to_owned(), list));
        }
        Some((
            format!("{column} IN ({})", super::placeholders(first, list.len())),
            list,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listed_scope_admits_only_its_sellers() {
        let scope = Scope::sellers(["B", "A", "A"]);
        assert_eq!(scope.listed(), Some(&["A".to_owned(), "B".to_owned()][..]));
        assert!(scope.admits("A") && scope.admits("B") && !scope.admits("C"));
        assert!(scope.admits_all(["A", "B"].into_iter()));
        assert!(!scope.admits_all(["A", "C"].into_iter()));
        assert!(!scope.is_unrestricted());
        assert!(Scope::unrestricted().admits("C"));
    }

    #[test]
    fn conditions_bind_the_listed_sellers_and_admit_nothing_when_empty() {
        let scope = Scope::sellers(["A", "B"]);
        let (sql, values) = scope.condition("seller_tax_id", 3).unwrap();
        assert_eq!(sql, "seller_tax_id IN ($3, $4)");
        assert_eq!(values, ["A".to_owned(), "B".to_owned()]);
        assert_eq!(Scope::unrestricted().condition("x", 1), None);
        let none = Scope::sellers(Vec::<String>::new());
        assert_eq!(none.condition("x", 1).unwrap().0, "1 = 0");
        assert!(!none.admits("A"));
    }
}
