//! HEC wire protocol: codes, bodies, channels, tokens and body splitting. No I/O.

pub mod ack;
pub mod channel;
pub mod codes;
pub mod event;
pub mod probe;
pub mod raw;
pub mod split;
pub mod token;

pub use channel::Channel;
pub use codes::HecStatus;
pub use token::TokenSecret;
