//! ferrite's time-series SQL functions, with InfluxDB 3's names and semantics.
//!
//! ```text
//!  install(SessionStateBuilder)
//!    └─ aggregates   selector_first / selector_last / selector_min / selector_max
//! ```
//!
//! - [`selector`]: aggregates returning `{value, time}` of the first, last, smallest or
//!   largest value of a group.

mod selector;

#[cfg(test)]
mod tests;

use datafusion::execution::session_state::SessionStateBuilder;

/// Adds ferrite's time-series functions (selectors) to a session being built. Call after
/// `with_default_features()`, which would otherwise replace same-named functions.
pub(crate) fn install(mut builder: SessionStateBuilder) -> SessionStateBuilder {
    builder
        .aggregate_functions()
        .get_or_insert_with(Vec::new)
        .extend(selector::udafs());
    builder
}
