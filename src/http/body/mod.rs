//! Reading request bodies: the typed request DTOs ([`dto`]), the JSON extractor with
//! FastAPI-style field errors ([`extract`]), and the measured fast scanner for the usual shape
//! ([`fastjson`]), and the OpenAPI schemas of fields bounded by constants ([`schema`]).

pub mod dto;
pub mod extract;
mod fastjson;
pub mod schema;
