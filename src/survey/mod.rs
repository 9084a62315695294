//! Survey definitions: the data model of a definition file, loading and checking it, the
//! definitions shipped with sipas, and storing published versions.
//!
//! Nothing here knows SIPAS: every question, scale and measurement rule comes from the file.

pub mod answers;
pub mod check;
pub mod defaults;
pub mod model;
pub mod store;

pub use check::{DefinitionError, DefinitionProblem, parse_definition};
pub use model::SurveyDefinition;
