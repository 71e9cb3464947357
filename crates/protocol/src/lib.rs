pub mod address;
pub mod command;
pub mod data;
pub mod message;
pub mod reply;
pub mod util;
