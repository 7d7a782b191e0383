//! List query parameters: `sort` (a field with a `+`/`-` direction), `limit` and `filter`.

use std::fmt;

use super::filter::Filter;

/// The fields `GET /v1/automations` may be sorted by (the reference's enum, plus
/// `maxConcurrentRuns`, which the live service also accepts).
pub const AUTOMATION_SORT_FIELDS: &[&str] = &[
    "id",
    "name",
    "runMode",
    "state",
    "createdAt",
    "updatedAt",
    "lastRunAt",
    "lastRunStatus",
    "maxConcurrentRuns",
];

/// The fields `GET /v1/automations` may be filtered on (the reference's, plus `spaceId`).
pub const AUTOMATION_FILTER_FIELDS: &[&str] =
    &["name", "runMode", "lastRunStatus", "ownerId", "spaceId"];

/// The fields `GET /v1/automations/{id}/runs` may be sorted by.
pub const RUN_SORT_FIELDS: &[&str] = &["id", "status", "startTime"];

/// The fields `GET /v1/automations/{id}/runs` may be filtered on (the reference's, plus the
/// live service's `ownerId`, `executedById`, `billable`).
pub const RUN_FILTER_FIELDS: &[&str] = &[
    "status",
    "context",
    "startTime",
    "title",
    "ownerId",
    "executedById",
    "billable",
];

/// The fields `GET /v1/automations/usage` may be filtered on.
pub const USAGE_FILTER_FIELDS: &[&str] = &["date", "name"];

/// Bounds of `limit` on both list endpoints.
pub const LIMIT_RANGE: std::ops::RangeInclusive<u32> = 1..=200;

/// Default page size of `GET /v1/automations`.
pub const DEFAULT_AUTOMATION_LIMIT: u32 = 100;

/// Default page size of `GET /v1/automations/{id}/runs`.
pub const DEFAULT_RUN_LIMIT: u32 = 10;

/// A sort order: one field, ascending or descending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sort {
    /// The field name, e.g. `name`.
    pub field: String,
    /// True for `-field`.
    pub descending: bool,
}

/// Why a `sort` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid sort {value:?}: allowed fields are {allowed}, optionally prefixed with + or -")]
pub struct SortParseError {
    /// The value as received.
    pub value: String,
    /// The allowed field names, comma separated.
    pub allowed: String,
}

impl Sort {
    /// Ascending on `field`.
    pub fn asc(field: &str) -> Sort {
        Sort {
            field: field.to_owned(),
            descending: false,
        }
    }

    /// Descending on `field`.
    pub fn desc(field: &str) -> Sort {
        Sort {
            field: field.to_owned(),
            descending: true,
        }
    }

    /// Parses `field`, `+field` or `-field`, accepting only `allowed` field names.
    ///
    /// A leading space is read as `+`: an unencoded `+` in a query string decodes to a space,
    /// and the intent is unambiguous.
    pub fn parse(value: &str, allowed: &[&str]) -> Result<Sort, SortParseError> {
        let (descending, field) = if let Some(rest) = value.strip_prefix('-') {
            (true, rest)
        } else if let Some(rest) = value.strip_prefix('+').or_else(|| value.strip_prefix(' ')) {
            (false, rest)
        } else {
            (false, value)
        };
        if allowed.contains(&field) {
            Ok(Sort {
                field: field.to_owned(),
                descending,
            })
        } else {
            Err(SortParseError {
                value: value.to_owned(),
                allowed: allowed.join(", "),
            })
        }
    }
}

impl fmt::Display for Sort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}",
            if self.descending { "-" } else { "+" },
            self.field
        )
    }
}

/// Parameters of a list call. Unset fields are left to the server's defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListParams {
    /// A filter expression.
    pub filter: Option<Filter>,
    /// Page size, 1–200.
    pub limit: Option<u32>,
    /// Sort order.
    pub sort: Option<Sort>,
    /// `listAll=true`: every automation of the tenant, not only the caller's (workflows
    /// only; tenant and analytics admins and M2M bots).
    pub list_all: bool,
}

impl ListParams {
    /// Sets the filter.
    pub fn filter(mut self, filter: Filter) -> Self {
        self.filter = Some(filter);
        self
    }

    /// Sets the page size.
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Sets the sort order.
    pub fn sort(mut self, sort: Sort) -> Self {
        self.sort = Some(sort);
        self
    }

    /// Asks for every automation of the tenant (`listAll=true`).
    pub fn list_all(mut self) -> Self {
        self.list_all = true;
        self
    }

    /// The query pairs to send, in a stable order.
    pub fn to_query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(f) = &self.filter {
            q.push(("filter", f.to_string()));
        }
        if let Some(l) = self.limit {
            q.push(("limit", l.to_string()));
        }
        if let Some(s) = &self.sort {
            q.push(("sort", s.to_string()));
        }
        if self.list_all {
            q.push(("listAll", "true".to_string()));
        }
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_parses_prefixes() {
        assert_eq!(
            Sort::parse("-name", AUTOMATION_SORT_FIELDS).unwrap(),
            Sort::desc("name")
        );
        assert_eq!(
            Sort::parse("+name", AUTOMATION_SORT_FIELDS).unwrap(),
            Sort::asc("name")
        );
        assert_eq!(
            Sort::parse("name", AUTOMATION_SORT_FIELDS).unwrap(),
            Sort::asc("name")
        );
        assert_eq!(
            Sort::parse(" createdAt", AUTOMATION_SORT_FIELDS).unwrap(),
            Sort::asc("createdAt")
        );
    }

    #[test]
    fn sort_rejects_unknown_fields_and_names_the_allowed_ones() {
        let err = Sort::parse("-description", AUTOMATION_SORT_FIELDS).unwrap_err();
        assert!(err.to_string().contains("lastRunStatus"), "{err}");
        assert!(Sort::parse("name", RUN_SORT_FIELDS).is_err());
        assert!(Sort::parse("--id", RUN_SORT_FIELDS).is_err());
        assert!(Sort::parse("", RUN_SORT_FIELDS).is_err());
    }

    #[test]
    fn sort_display_round_trips() {
        for s in [Sort::asc("id"), Sort::desc("startTime")] {
            assert_eq!(Sort::parse(&s.to_string(), RUN_SORT_FIELDS).unwrap(), s);
        }
    }

    #[test]
    fn list_params_render_in_order() {
        let p = ListParams::default()
            .sort(Sort::desc("name"))
            .limit(5)
            .filter(Filter::eq("name", "x"));
        assert_eq!(
            p.to_query(),
            vec![
                ("filter", r#"name eq "x""#.to_string()),
                ("limit", "5".to_string()),
                ("sort", "-name".to_string())
            ]
        );
    }
}
