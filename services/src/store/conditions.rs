//! A listing's `WHERE` clause, built one condition at a time with numbered parameters, so filters
//! that are present or absent never shift a placeholder by hand.

use super::Scope;
use sqlx::any::AnyArguments;

/// A statement and the values of its numbered parameters, built one condition at a time.
pub(super) struct Conditions {
    sql: String,
    args: AnyArguments<'static>,
    next: usize,
    any: bool,
}

impl Conditions {
    pub(super) fn new(select: String) -> Self {
        Self {
            sql: select,
            args: AnyArguments::default(),
            next: 1,
            any: false,
        }
    }

    fn keyword(&mut self) {
        self.sql
            .push_str(if self.any { " AND " } else { " WHERE " });
        self.any = true;
    }

    /// Add `condition`, whose every `{}` stands for `value`.
    pub(super) fn and<T>(&mut self, condition: &str, value: T) -> anyhow::Result<()>
    where
        T: 'static + sqlx::Encode<'static, sqlx::Any> + sqlx::Type<sqlx::Any> + Send,
    {
        self.keyword();
        self.sql
            .push_str(&condition.replace("{}", &format!("${}", self.next)));
        self.next += 1;
        sqlx::Arguments::add(&mut self.args, value)
            .map_err(|e| anyhow::anyhow!("binding a listing filter: {e}"))
    }

    /// Add `column IN (values…)`.
    pub(super) fn and_in(&mut self, column: &str, values: &[String]) -> anyhow::Result<()> {
        self.and_list(&format!("{column} IN ({{}})"), values)
    }

    /// Add `condition`, whose one `{}` stands for the placeholders of `values`.
    pub(super) fn and_list(&mut self, condition: &str, values: &[String]) -> anyhow::Result<()> {
        self.keyword();
        self.sql
            .push_str(&condition.replace("{}", &super::placeholders(self.next, values.len())));
        self.next += values.len();
        for value in values {
            sqlx::Arguments::add(&mut self.args, value.clone())
                .map_err(|e| anyhow::anyhow!("binding a listing filter: {e}"))?;
        }
        Ok(())
    }

    /// Restrict `column` to the sellers of `scope`.
    pub(super) fn and_scope(&mut self, column: &str, scope: &Scope) -> anyhow::Result<()> {
        match scope.listed() {
            None => Ok(()),
            Some([]) => {
                self.keyword();
                self.sql.push_str("1 = 0");
                Ok(())
            }
            Some(list) => self.and_in(column, list),
        }
    }

    /// The statement, newest (highest id) first, at most `limit` rows.
    pub(super) fn newest_first(
        mut self,
        limit: u32,
    ) -> anyhow::Result<(String, AnyArguments<'static>)> {
        self.sql
            .push_str(&format!(" ORDER BY id DESC LIMIT ${}", self.next));
        sqlx::Arguments::add(&mut self.args, i64::from(limit))
            .map_err(|e| anyhow::anyhow!("binding a listing limit: {e}"))?;
        Ok((self.sql, self.args))
    }
}
