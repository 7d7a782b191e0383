//! List query parameters (`limit`, `sort`, `filter`, `listAll`, `cursor`) and keyset
//! pagination.
//!
//! A cursor names the boundary item of the page it came from by its sort value and id, not
//! by an offset, so following `next` links yields every item exactly once and in order even
//! while other items are created or deleted in between. Ties on the sort value are broken by
//! `id`, in the same direction as the sort.

use std::cmp::Ordering;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::error::ApiError;
use crate::qlik::filter::Filter;
use crate::qlik::query::{LIMIT_RANGE, Sort};

/// What one list endpoint accepts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ListSpec {
    /// Fields `sort` may name.
    pub(crate) sort_fields: &'static [&'static str],
    /// Fields `filter` may mention.
    pub(crate) filter_fields: &'static [&'static str],
    /// Page size without `limit`.
    pub(crate) default_limit: u32,
}

/// Which side of its boundary a cursor's page lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Direction {
    #[serde(rename = "n")]
    After,
    #[serde(rename = "p")]
    Before,
}

/// The decoded content of a `cursor` parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Cursor {
    #[serde(rename = "d")]
    direction: Direction,
    /// The sort the cursor was made for, e.g. `-name`.
    #[serde(rename = "s")]
    sort: String,
    /// The boundary item's sort value.
    #[serde(rename = "v")]
    value: Value,
    /// The boundary item's id.
    #[serde(rename = "i")]
    id: String,
}

impl Cursor {
    fn encode(&self) -> String {
        // Serialising this plain struct cannot fail; an empty cursor would only restart.
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    fn decode(text: &str) -> Option<Cursor> {
        let bytes = URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// A validated list query.
#[derive(Debug, Clone)]
pub(crate) struct ListQuery {
    /// Page size.
    pub(crate) limit: u32,
    /// Sort order (default `+id`).
    pub(crate) sort: Sort,
    /// `sort` as sent, echoed into links.
    sort_raw: Option<String>,
    /// Parsed filter.
    pub(crate) filter: Option<Filter>,
    /// `filter` as sent, echoed into links.
    filter_raw: Option<String>,
    /// `listAll`, when sent.
    pub(crate) list_all: Option<bool>,
    /// Where the page starts.
    cursor: Option<Cursor>,
}

/// The decoded `key=value` pairs of a query string.
pub(crate) fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The first value of `name`.
pub(crate) fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Parses and checks `filter` against the allowed attributes.
pub(crate) fn parse_filter(raw: &str, allowed: &[&str]) -> Result<Filter, ApiError> {
    let filter =
        Filter::parse(raw).map_err(|e| ApiError::BadRequest(format!("filter is invalid: {e}")))?;
    if let Some(attr) = filter
        .attributes()
        .into_iter()
        .find(|a| !allowed.contains(a))
    {
        return Err(ApiError::BadRequest(format!(
            "filter attribute {attr:?} is not supported; allowed attributes are {}",
            allowed.join(", ")
        )));
    }
    Ok(filter)
}

impl ListQuery {
    /// Validates the query parameters of a list call.
    pub(crate) fn parse(pairs: &[(String, String)], spec: ListSpec) -> Result<Self, ApiError> {
        let limit = match param(pairs, "limit") {
            None => spec.default_limit,
            Some(raw) => raw
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| LIMIT_RANGE.contains(n))
                .ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "limit must be between {} and {}",
                        LIMIT_RANGE.start(),
                        LIMIT_RANGE.end()
                    ))
                })?,
        };
        let sort_raw = param(pairs, "sort").map(str::to_owned);
        let sort = match &sort_raw {
            None => Sort::asc("id"),
            Some(raw) => Sort::parse(raw, spec.sort_fields)
                .map_err(|e| ApiError::BadRequest(e.to_string()))?,
        };
        let filter_raw = param(pairs, "filter")
            .filter(|f| !f.trim().is_empty())
            .map(str::to_owned);
        let filter = filter_raw
            .as_deref()
            .map(|raw| parse_filter(raw, spec.filter_fields))
            .transpose()?;
        let list_all = match param(pairs, "listAll") {
            None => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(_) => {
                return Err(ApiError::BadRequest(
                    "listAll must be true or false".to_owned(),
                ));
            }
        };
        let cursor = match param(pairs, "cursor").filter(|c| !c.is_empty()) {
            None => None,
            Some(raw) => {
                let c = Cursor::decode(raw)
                    .ok_or_else(|| ApiError::BadRequest("cursor is invalid".to_owned()))?;
                if c.sort != sort.to_string() {
                    return Err(ApiError::BadRequest(
                        "cursor does not belong to this sort; start again without cursor"
                            .to_owned(),
                    ));
                }
                Some(c)
            }
        };
        Ok(ListQuery {
            limit,
            sort,
            sort_raw,
            filter,
            filter_raw,
            list_all,
            cursor,
        })
    }

    fn key<'a>(&self, item: &'a Value) -> (&'a Value, &'a str) {
        (
            item.get(&self.sort.field).unwrap_or(&Value::Null),
            item.get("id").and_then(Value::as_str).unwrap_or(""),
        )
    }

    /// Orders two keys in the query's sort order.
    fn order(&self, a: (&Value, &str), b: (&Value, &str)) -> Ordering {
        let o = compare_values(a.0, b.0).then_with(|| a.1.cmp(b.1));
        if self.sort.descending { o.reverse() } else { o }
    }

    fn link(&self, base: &str, direction: Direction, boundary: &Value) -> Value {
        let (value, id) = self.key(boundary);
        let cursor = Cursor {
            direction,
            sort: self.sort.to_string(),
            value: value.clone(),
            id: id.to_owned(),
        };
        let mut query = vec![
            ("cursor", cursor.encode()),
            ("limit", self.limit.to_string()),
        ];
        if let Some(s) = &self.sort_raw {
            query.push(("sort", s.clone()));
        }
        if let Some(f) = &self.filter_raw {
            query.push(("filter", f.clone()));
        }
        if let Some(all) = self.list_all {
            query.push(("listAll", all.to_string()));
        }
        let rendered: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{k}={}", percent_encode(v)))
            .collect();
        json!({"href": format!("{base}?{}", rendered.join("&"))})
    }

    /// Filters, sorts and cuts one page out of `items`, with `links` whose hrefs start with
    /// `base` (an absolute URL without query).
    pub(crate) fn page(&self, items: Vec<Value>, base: &str) -> Value {
        let mut items: Vec<Value> = match &self.filter {
            Some(f) => items.into_iter().filter(|i| f.matches(i)).collect(),
            None => items,
        };
        items.sort_by(|a, b| self.order(self.key(a), self.key(b)));
        let n = items.len();
        let limit = self.limit as usize;
        let (start, end) = match &self.cursor {
            None => (0, limit.min(n)),
            Some(c) => {
                let boundary = (&c.value, c.id.as_str());
                // Items are sorted, so the boundary splits them into before / after.
                let split = |strictly_after: bool| {
                    items.partition_point(|i| {
                        let o = self.order(self.key(i), boundary);
                        if strictly_after {
                            o != Ordering::Greater
                        } else {
                            o == Ordering::Less
                        }
                    })
                };
                match c.direction {
                    Direction::After => {
                        let s = split(true);
                        (s, (s + limit).min(n))
                    }
                    Direction::Before => {
                        let e = split(false);
                        (e.saturating_sub(limit), e)
                    }
                }
            }
        };
        let (next, prev) = if start < end {
            (
                (end < n).then(|| self.link(base, Direction::After, &items[end - 1])),
                (start > 0).then(|| self.link(base, Direction::Before, &items[start])),
            )
        } else {
            (None, None)
        };
        let data: Vec<Value> = items.drain(start..end).collect();
        json!({
            "data": data,
            "links": {"next": next, "prev": prev},
        })
    }
}

/// A total order over JSON values: null < booleans < numbers < strings < the rest.
fn compare_values(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Number(_) => 2,
            Value::String(_) => 3,
            _ => 4,
        }
    }
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so a space is `%20` and
/// `+` is `%2B`: both form decoders and plain URL decoders read it back unchanged.
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qlik::query::{AUTOMATION_FILTER_FIELDS, AUTOMATION_SORT_FIELDS};

    const SPEC: ListSpec = ListSpec {
        sort_fields: AUTOMATION_SORT_FIELDS,
        filter_fields: AUTOMATION_FILTER_FIELDS,
        default_limit: 100,
    };

    fn pairs(q: &str) -> Vec<(String, String)> {
        query_pairs(Some(q))
    }

    fn items(n: usize) -> Vec<Value> {
        (0..n)
            .map(|i| json!({"id": format!("id{i:03}"), "name": format!("n{}", i % 7)}))
            .collect()
    }

    fn cursor_of(href: &str) -> String {
        let q = href.split_once('?').unwrap().1;
        param(&pairs(q), "cursor").unwrap().to_owned()
    }

    fn walk(query: &str, all: Vec<Value>) -> (Vec<String>, usize) {
        let mut q = ListQuery::parse(&pairs(query), SPEC).unwrap();
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            let page = q.page(all.clone(), "http://h/x");
            pages += 1;
            for item in page["data"].as_array().unwrap() {
                seen.push(item["id"].as_str().unwrap().to_owned());
            }
            match page["links"]["next"]["href"].as_str() {
                Some(href) => {
                    let next = format!("{query}&cursor={}", cursor_of(href));
                    q = ListQuery::parse(&pairs(&next), SPEC).unwrap();
                }
                None => return (seen, pages),
            }
        }
    }

    #[test]
    fn following_next_yields_everything_in_order() {
        let (seen, pages) = walk("sort=-name&limit=10", items(45));
        assert_eq!(pages, 5);
        let mut expected = items(45);
        expected.sort_by(|a, b| {
            (b["name"].as_str(), b["id"].as_str()).cmp(&(a["name"].as_str(), a["id"].as_str()))
        });
        let expected: Vec<_> = expected
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn prev_returns_the_previous_page() {
        let all = items(25);
        let q = ListQuery::parse(&pairs("limit=10"), SPEC).unwrap();
        let first = q.page(all.clone(), "http://h/x");
        assert!(first["links"]["prev"].is_null());
        let next = cursor_of(first["links"]["next"]["href"].as_str().unwrap());
        let q2 = ListQuery::parse(&pairs(&format!("limit=10&cursor={next}")), SPEC).unwrap();
        let second = q2.page(all.clone(), "http://h/x");
        assert_eq!(second["data"][0]["id"], "id010");
        let prev = cursor_of(second["links"]["prev"]["href"].as_str().unwrap());
        let q3 = ListQuery::parse(&pairs(&format!("limit=10&cursor={prev}")), SPEC).unwrap();
        let back = q3.page(all, "http://h/x");
        assert_eq!(back["data"], first["data"]);
        assert!(back["links"]["prev"].is_null());
    }

    #[test]
    fn items_added_behind_the_cursor_do_not_shift_pages() {
        let mut all = items(20);
        let q = ListQuery::parse(&pairs("limit=10"), SPEC).unwrap();
        let first = q.page(all.clone(), "http://h/x");
        all.insert(0, json!({"id": "id000a", "name": "x"}));
        let next = cursor_of(first["links"]["next"]["href"].as_str().unwrap());
        let q2 = ListQuery::parse(&pairs(&format!("limit=10&cursor={next}")), SPEC).unwrap();
        let second = q2.page(all, "http://h/x");
        assert_eq!(second["data"][0]["id"], "id010");
        assert!(second["links"]["next"].is_null());
    }

    #[test]
    fn links_echo_parameters_percent_encoded() {
        let q = ListQuery::parse(
            &pairs("limit=1&sort=%2Bname&filter=name%20eq%20%22n1%22%20or%20name%20eq%20%22n2%22"),
            SPEC,
        )
        .unwrap();
        let page = q.page(items(20), "http://h:1/api/v1/automations");
        let href = page["links"]["next"]["href"].as_str().unwrap();
        assert!(
            href.starts_with("http://h:1/api/v1/automations?cursor="),
            "{href}"
        );
        assert!(
            href.contains("&limit=1&sort=%2Bname&filter=name%20eq%20%22n1%22%20or"),
            "{href}"
        );
    }

    #[test]
    fn refuses_bad_parameters_naming_them() {
        for (q, needle) in [
            ("limit=0", "limit must be between 1 and 200"),
            ("limit=201", "limit must be between 1 and 200"),
            ("limit=x", "limit must be between 1 and 200"),
            ("sort=-description", "sort"),
            ("filter=description%20eq%20%22x%22", "\"description\""),
            ("filter=name%20eq", "filter is invalid"),
            ("listAll=yes", "listAll"),
            ("cursor=!!", "cursor"),
        ] {
            match ListQuery::parse(&pairs(q), SPEC) {
                Err(ApiError::BadRequest(d)) => assert!(d.contains(needle), "{q}: {d}"),
                other => panic!("{q}: {other:?}"),
            }
        }
    }

    #[test]
    fn nulls_sort_first() {
        let q = ListQuery::parse(&pairs("sort=lastRunAt"), SPEC).unwrap();
        let page = q.page(
            vec![
                json!({"id": "a", "lastRunAt": "2024"}),
                json!({"id": "b", "lastRunAt": null}),
            ],
            "http://h/x",
        );
        assert_eq!(page["data"][0]["id"], "b");
    }
}
