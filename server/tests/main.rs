//! API tests: the production router in process, each test on a store of its own, every test
//! run on SQLite and on PostgreSQL.

mod support;

mod audit;
mod auth;
mod crud;
mod events;
mod migration;
mod openapi;
mod openbao;
mod paging;
mod permissions;
mod probe;
mod projection;
mod rbac;
mod rebuild;
mod references;
mod security;
mod validation;
