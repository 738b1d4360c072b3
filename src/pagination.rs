//! Keyset pagination: `?limit=&cursor=`, answered with `{items, next_cursor}`.
//!
//! The cursor is an opaque token wrapping the key of the page's last item (its id, for most
//! lists), so pages stay stable while rows are added, and every page is an index range scan.

use std::fmt::Display;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;

pub const DEFAULT_LIMIT: u64 = 50;
pub const MAX_LIMIT: u64 = 200;

/// What a cursor's text starts with (the first lists were all keyed by id).
const CURSOR_PREFIX: &str = "id:";

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u64>,
    /// The `next_cursor` of the previous page; absent (or empty) for the first.
    pub cursor: Option<String>,
}

/// A validated page request: at most `limit` items, those after the key `after`.
#[derive(Clone, Copy, Debug)]
pub struct Page<K = i64> {
    pub limit: u64,
    pub after: Option<K>,
}

impl PageQuery {
    pub fn page(&self) -> Result<Page, ApiError> {
        self.page_by()
    }

    /// A page of a list ordered by a key other than its id: a code, or several columns.
    pub fn page_by<K: FromStr>(&self) -> Result<Page<K>, ApiError> {
        let limit = limit_of(self.limit)?;
        // `cursor=` is the first page too: `input::Query` reads a parameter with no value as
        // absent.
        let after = self
            .cursor
            .as_deref()
            .map(|cursor| decode_cursor(cursor).ok_or_else(invalid_cursor))
            .transpose()?;
        Ok(Page { limit, after })
    }
}

/// A list's `?limit=`, the default when absent; 1 to `MAX_LIMIT`, or refused naming `limit`.
pub fn limit_of(requested: Option<u64>) -> Result<u64, ApiError> {
    let limit = requested.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::validation("limit", "must be between 1 and 200"));
    }
    Ok(limit)
}

fn invalid_cursor() -> ApiError {
    ApiError::validation("cursor", "is not a valid cursor")
}

fn decode_cursor<K: FromStr>(cursor: &str) -> Option<K> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    std::str::from_utf8(&bytes)
        .ok()?
        .strip_prefix(CURSOR_PREFIX)?
        .parse()
        .ok()
}

fn encode_cursor(key: impl Display) -> String {
    URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{key}"))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Paginated<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Paginated<T> {
    /// Builds a page from up to `limit + 1` rows fetched in order; the extra row only says that
    /// another page exists.
    pub fn from_rows<R, K: Display>(
        mut rows: Vec<R>,
        page: Page<K>,
        key_of: impl Fn(&R) -> K,
        map: impl FnMut(R) -> T,
    ) -> Self {
        let has_more = rows.len() as u64 > page.limit;
        rows.truncate(page.limit as usize);
        let next_cursor = if has_more {
            rows.last().map(|row| encode_cursor(key_of(row)))
        } else {
            None
        };
        Paginated {
            items: rows.into_iter().map(map).collect(),
            next_cursor,
        }
    }

    /// The same page with each item made into another.
    pub fn map<U>(self, map: impl FnMut(T) -> U) -> Paginated<U> {
        Paginated {
            items: self.items.into_iter().map(map).collect(),
            next_cursor: self.next_cursor,
        }
    }

    /// A page of a short list read whole (the Network's own reference lists: its countries,
    /// its port communities), in the order given: the items after the one keyed `after`. An
    /// item removed since the previous page leaves its cursor nowhere to continue from.
    pub fn from_list<K: Display + PartialEq>(
        items: Vec<T>,
        page: Page<K>,
        key_of: impl Fn(&T) -> K,
    ) -> Result<Self, ApiError> {
        let start = match &page.after {
            None => 0,
            Some(after) => {
                let last = items.iter().position(|item| key_of(item) == *after);
                last.ok_or_else(invalid_cursor)? + 1
            }
        };
        let rows: Vec<T> = items.into_iter().skip(start).take(page.limit as usize + 1).collect();
        Ok(Self::from_rows(rows, page, key_of, |item| item))
    }
}
