//! Lists a page at a time (`?limit=N&continue=TOKEN`): the continue token is opaque to
//! clients (the kind and the last row's sort key, `llm~b`), and a page holds what the caller
//! may view, read from the table in keyset pages until it is full.

use std::future::Future;

use domain::document::Kind;
use projections::read_models::Record;
use projections::read_models::page::{Cursor, Order, Page};

use super::extract::ListPage;
use app::error::ApiError;

/// The syntax of a continue token for `kind`'s list in `order`: `KIND~NAME`, or
/// `KIND~CREATED~NAME` for a list in creation order. [`decode`] takes exactly these; an empty
/// token is none.
pub fn token_pattern(kind: Kind, order: Order) -> String {
    let name = domain::validation::patterns::unanchored(domain::validation::patterns::NAME);
    const CREATED: &str = "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?Z";
    match order {
        Order::Key => format!("^({}~{name})?$", kind.as_str()),
        Order::Oldest | Order::Newest => format!("^({}~{CREATED}~{name})?$", kind.as_str()),
    }
}

fn encode(kind: Kind, after: Cursor) -> String {
    if after.created_at.is_empty() {
        format!("{}~{}", kind.as_str(), after.name)
    } else {
        format!("{}~{}~{}", kind.as_str(), after.created_at, after.name)
    }
}

fn decode(kind: Kind, order: Order, token: &str) -> Result<Cursor, ApiError> {
    let invalid =
        || ApiError::BadRequest("the continue token is not valid for this list; start again without it".into());
    let mut parts = token.split('~');
    if parts.next() != Some(kind.as_str()) {
        return Err(invalid());
    }
    let (created_at, name) = match (order, parts.next(), parts.next(), parts.next()) {
        (Order::Key, Some(name), None, None) => (String::new(), name),
        (Order::Oldest | Order::Newest, Some(created), Some(name), None) if creation_time(created) => {
            (created.to_owned(), name)
        }
        _ => return Err(invalid()),
    };
    domain::name::ResourceName::parse(name).map_err(|_| invalid())?;
    Ok(Cursor { created_at, name: name.to_owned() })
}

/// `2026-01-02T03:04:05[.fraction]Z`, as the read models hold creation times (compared as text).
fn creation_time(raw: &str) -> bool {
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let Some(rest) = raw.strip_suffix('Z') else { return false };
    let (clock, fraction) = rest.split_once('.').unwrap_or((rest, "1"));
    let b = clock.as_bytes();
    clock.len() == 19
        && clock.is_ascii()
        && digits(&clock[..4], 4)
        && b[4] == b'-'
        && digits(&clock[5..7], 2)
        && b[7] == b'-'
        && digits(&clock[8..10], 2)
        && b[10] == b'T'
        && digits(&clock[11..13], 2)
        && b[13] == b':'
        && digits(&clock[14..16], 2)
        && b[16] == b':'
        && digits(&clock[17..19], 2)
        && (1..=9).contains(&fraction.len())
        && fraction.bytes().all(|b| b.is_ascii_digit())
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
    let mut after = request.continue_token.as_deref().map(|t| decode(kind, order, t)).transpose()?;
    let Some(limit) = request.limit else {
        // No limit: everything from the token on (from the start without one).
        let all = fetch(Page { after, limit: None }).await?;
        return Ok((all.into_iter().filter(|r| visible(r)).collect(), None));
    };
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Fuzzed: a cursor survives its token for every kind and order; any other text is refused
    /// with the one message, never a panic, and never decodes for another kind.
    #[test]
    fn continue_tokens_round_trip_and_anything_else_is_refused() {
        let name = "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?";
        let created =
            (2000u32..2100, 1u32..13, 1u32..29, 0u32..24, 0u32..60, 0u32..60, proptest::option::of(0u32..999_999))
                .prop_map(|(y, mo, d, h, mi, s, f)| match f {
                    Some(f) => format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{f:06}Z"),
                    None => format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z"),
                });
        let junk = "\\PC{0,40}";
        let inputs = (0..Kind::ALL.len(), 0..3usize, name, created, junk);
        proptest::test_runner::TestRunner::new(testkit::fuzz_config("continue tokens"))
            .run(&inputs, |(kind, order, name, created, junk)| {
                let kind = Kind::ALL[kind];
                let order = [Order::Key, Order::Oldest, Order::Newest][order];
                let cursor = Cursor { created_at: if order == Order::Key { String::new() } else { created }, name };
                let token = encode(kind, cursor.clone());
                prop_assert_eq!(decode(kind, order, &token).unwrap(), cursor);
                for other in Kind::ALL.into_iter().filter(|k| *k != kind) {
                    prop_assert!(decode(other, order, &token).is_err(), "{} decoded for {:?}", token, other);
                }
                if let Err(e) = decode(kind, order, &junk) {
                    prop_assert!(e.to_string().starts_with("the continue token is not valid"), "{}", e);
                }
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{e}"));
    }
}
