//! Keyset pagination: `?limit=&cursor=`, answered with `{items, next_cursor}`.
//!
//! The cursor is an opaque token wrapping the last id of the page, so pages stay stable while
//! rows are added, and every page is an index range scan.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;

pub const DEFAULT_LIMIT: u64 = 50;
pub const MAX_LIMIT: u64 = 200;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1 to 200 (default 50).
    pub limit: Option<u64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A validated page request.
#[derive(Clone, Copy, Debug)]
pub struct Page {
    pub limit: u64,
    pub after: Option<i64>,
}

impl PageQuery {
    pub fn page(&self) -> Result<Page, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::validation("limit", "must be between 1 and 200"));
        }
        let after = match &self.cursor {
            None => None,
            Some(cursor) => {
                Some(decode_cursor(cursor).ok_or_else(|| ApiError::validation("cursor", "is not a valid cursor"))?)
            }
        };
        Ok(Page { limit, after })
    }
}

fn decode_cursor(cursor: &str) -> Option<i64> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    std::str::from_utf8(&bytes).ok()?.strip_prefix("id:")?.parse().ok()
}

fn encode_cursor(id: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("id:{id}"))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Paginated<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Paginated<T> {
    /// Builds a page from up to `limit + 1` rows fetched in order; the extra row only says that
    /// another page exists.
    pub fn from_rows<R>(mut rows: Vec<R>, page: Page, id_of: impl Fn(&R) -> i64, map: impl FnMut(R) -> T) -> Self {
        let has_more = rows.len() as u64 > page.limit;
        rows.truncate(page.limit as usize);
        let next_cursor = if has_more {
            rows.last().map(|row| encode_cursor(id_of(row)))
        } else {
            None
        };
        Paginated {
            items: rows.into_iter().map(map).collect(),
            next_cursor,
        }
    }
}
