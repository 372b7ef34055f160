//! What every request passes through: access control ([`auth`], checked by the handlers on the
//! request they parsed), the body size and time limits and CORS ([`limits`]), and the request
//! log ([`logging`]). Request metrics are [`crate::http::routes::metrics`]'s.

pub mod auth;
pub mod limits;
pub mod logging;
