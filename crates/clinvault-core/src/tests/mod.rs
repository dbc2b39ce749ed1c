//! Tests that need the crate's insides (direct database reads to prove "nothing changed").

mod audit_indexes;
mod role_matrix;
