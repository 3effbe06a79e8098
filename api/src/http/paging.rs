//! Lists a page at a time (`?limit=N&continue=TOKEN`): the continue token is opaque to
//! clients (the last row's sort key and the kind, hex-encoded), and a page holds what the
//! caller may view, read from the table in keyset pages until it is full.

use std::future::Future;

use domain::document::Kind;
use projections::read_models::Record;
use projections::read_models::page::{Cursor, Order, Page};
use serde::{Deserialize, Serialize};

use super::extract::ListPage;
use crate::error::ApiError;

#[derive(Serialize, Deserialize)]
struct Token {
    k: String,
    #[serde(flatten)]
    after: Cursor,
}

fn encode(kind: Kind, after: Cursor) -> String {
    hex::encode(serde_json::to_vec(&Token { k: kind.as_str().to_owned(), after }).expect("a cursor serialises"))
}

fn decode(kind: Kind, token: &str) -> Result<Cursor, ApiError> {
    let invalid =
        || ApiError::BadRequest("the continue token is not valid for this list; start again without it".into());
    let bytes = hex::decode(token).map_err(|_| invalid())?;
    let token: Token = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if token.k != kind.as_str() {
        return Err(invalid());
    }
    Ok(token.after)
}

/// One page of `kind`'s list as the caller may view it, and the token of the next page when
/// there may be one. `fetch` reads a keyset page of the table in `order`.
pub async fn page_of<S, F, Fut>(
    kind: Kind,
    order: Order,
    request: ListPage,
    mut fetch: F,
    visible: impl Fn(&Record<S>) -> bool,
) -> Result<(Vec<Record<S>>, Option<String>), ApiError>
where
    F: FnMut(Page) -> Fut,
    Fut: Future<Output = Result<Vec<Record<S>>, ApiError>>,
{
    let Some(limit) = request.limit else {
        let all = fetch(Page::default()).await?;
        return Ok((all.into_iter().filter(|r| visible(r)).collect(), None));
    };
    let mut after = request.continue_token.as_deref().map(|t| decode(kind, t)).transpose()?;
    let mut items: Vec<Record<S>> = Vec::new();
    loop {
        // One more than the page needs: whether another row follows tells if there is a next page.
        let want = limit - items.len() as i64 + 1;
        let rows = fetch(Page { after: after.clone(), limit: Some(want) }).await?;
        let exhausted = (rows.len() as i64) < want;
        for row in rows {
            if items.len() as i64 == limit {
                let last = items.last().map(|r| order.cursor(&r.created_at, &r.name));
                return Ok((items, last.map(|c| encode(kind, c))));
            }
            after = Some(order.cursor(&row.created_at, &row.name));
            if visible(&row) {
                items.push(row);
            }
        }
        if exhausted {
            return Ok((items, None));
        }
    }
}

/// `{"items": [...]}`, with `metadata.continue` when another page may follow.
pub fn list_body(items: Vec<serde_json::Value>, next: Option<String>) -> serde_json::Value {
    let metadata = next.map(|token| wire::ListMeta { continue_token: Some(token) });
    serde_json::to_value(wire::List { items, metadata }).expect("a list serialises")
}
