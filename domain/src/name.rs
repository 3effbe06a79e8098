//! Resource names: the DNS-label rule kubectl uses (the type lives in `wire`, shared with
//! mcpctl).

pub use wire::ResourceName;
