//! Forecasting models. The LSTM of SPEC section 3 lives in [`lstm`].

pub mod lstm;
