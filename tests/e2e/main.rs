//! End-to-end tests: the built `mcpd` and `mcpctl` binaries, run, driven and killed as a user or
//! an operator would, against a real SQLite file or PostgreSQL database.

mod ctl;
mod support;

mod auth;
mod cli;
mod cli_client;
mod cli_openbao;
mod clock;
mod crash;
mod hardening;
mod history;
mod leaks;
mod migration;
mod operations;
mod probe;
mod projections;
mod quick_start;
mod storage;
mod tls;
mod watch;
