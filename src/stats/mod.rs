//! Statistics as pure functions of tallies and answers: no database or HTTP here. The report
//! module feeds them and shapes their output.

pub mod estimate;
pub mod interval;
pub mod reliability;
pub mod rollup;
pub mod shares;

pub use estimate::{Cell, Estimate, Figures, Model, estimate, mean_of_units, plain};
pub use interval::{Confidence, Difference, IntervalKind};
pub use rollup::{Suppression, ranks, suppress};
