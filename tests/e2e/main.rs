//! End-to-end tests: the built `mcpd` binary, started and killed like a user or an operator
//! would, against a real SQLite file or PostgreSQL database.

mod support;

mod crash;
mod leaks;
mod quick_start;
