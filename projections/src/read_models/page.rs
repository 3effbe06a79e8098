//! Lists a page at a time, the Kubernetes way: at most `limit` rows after a cursor, in a fixed
//! order with the key column last, so a walk through the pages while writes happen returns
//! every row that existed throughout exactly once (keyset pagination: no offsets to shift).

use serde::{Deserialize, Serialize};

/// Where a page starts and how long it is; the default is the whole list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    pub after: Option<Cursor>,
    pub limit: Option<i64>,
}

/// The last row of a page: its sort key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    #[serde(rename = "c", default, skip_serializing_if = "String::is_empty")]
    pub created_at: String,
    #[serde(rename = "n")]
    pub name: String,
}

/// A list's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// By key.
    Key,
    /// Oldest first, then by key.
    Oldest,
    /// Newest first, then by key.
    Newest,
}

impl Order {
    /// The cursor of the row with this key and creation time.
    pub fn cursor(self, created_at: &str, name: &str) -> Cursor {
        let created_at = if self == Order::Key { String::new() } else { created_at.to_owned() };
        Cursor { created_at, name: name.to_owned() }
    }
}

/// The SQL of one page: a condition to AND into the query's WHERE (`TRUE` for the first page),
/// its values from `$first` on, and the ORDER BY + LIMIT clause.
pub(crate) fn sql(order: Order, key: &str, created: &str, page: &Page, first: usize) -> (String, Vec<String>, String) {
    let (a, b) = (format!("${first}"), format!("${}", first + 1));
    let (condition, values) = match (&page.after, order) {
        (None, _) => ("1 = 1".to_owned(), vec![]),
        (Some(c), Order::Key) => (format!("{key} > {a}"), vec![c.name.clone()]),
        (Some(c), Order::Oldest) => (
            format!("({created} > {a} OR ({created} = {a} AND {key} > {b}))"),
            vec![c.created_at.clone(), c.name.clone()],
        ),
        (Some(c), Order::Newest) => (
            format!("({created} < {a} OR ({created} = {a} AND {key} > {b}))"),
            vec![c.created_at.clone(), c.name.clone()],
        ),
    };
    let order_by = match order {
        Order::Key => format!("ORDER BY {key}"),
        Order::Oldest => format!("ORDER BY {created}, {key}"),
        Order::Newest => format!("ORDER BY {created} DESC, {key}"),
    };
    let limit = page.limit.map(|l| format!(" LIMIT {}", l.max(0))).unwrap_or_default();
    (condition, values, format!("{order_by}{limit}"))
}
