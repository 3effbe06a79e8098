//! What mcpd and mcpctl share about the API, with no server machinery (no cqrs-es, no sqlx), as
//! kube-rs keeps `kube-core` beside its client: the registry of resource kinds, and the
//! documents of each kind (mcpd serialises them, mcpctl reads them back) with the columns and
//! fields shown of them.
#![forbid(unsafe_code)]

pub mod audit;
pub mod document;
pub mod enumerated;
pub mod health;
pub mod kind;
pub mod llm;
pub mod migration;
pub mod name;
pub mod rbac;
pub mod registry;
pub mod rule;
pub mod secret;
pub mod secret_backend;
pub mod user;

pub use document::{Cell, Column, Document, HistoryEvent, List, ListMeta, Spec};
pub use kind::{Kind, KindInfo, RBAC_RESOURCES};
pub use name::ResourceName;
pub use registry::KindVisitor;
