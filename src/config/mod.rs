//! Configuration: ContainerPilot 3.x config files, loaded unchanged.
//!
//! The pipeline is: read the file, render it as a Go template over the environment, parse JSON5,
//! decode into raw structs, validate into the typed model of `model`. Only `model` leaves this
//! module.

pub mod model;

pub use model::*;
pub mod duration;
pub mod json5;
pub mod template;
