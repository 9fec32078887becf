//! SQL → plan.
