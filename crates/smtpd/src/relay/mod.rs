//! Relaying: mail leaves the machine (OpenSMTPD's mta). [`agent`] is the scheduler's agent for
//! envelopes of type mta, [`route`] chooses where they go (smarthost, MX) behind a
//! [`route::Resolver`], [`session`] is the thin shell around the protocol crate's client and
//! keeps idle connections for more messages, [`url`] reads relay URLs.

pub mod agent;
pub mod route;
pub mod session;
pub mod url;

use std::net::IpAddr;

pub use agent::RelayAgent;

use crate::dns::{Dns, MxLookup};
use crate::scheduler::BoxFuture;
use route::{AddrAnswer, MxAnswer, Resolver};

impl Resolver for Dns {
    fn mx<'a>(&'a self, domain: &'a str) -> BoxFuture<'a, MxAnswer> {
        Box::pin(async move {
            match Dns::mx(self, domain).await {
                MxLookup::Found(v) => MxAnswer::Found(v),
                MxLookup::NoRecords => MxAnswer::NoRecords,
                MxLookup::NoDomain => MxAnswer::NoDomain,
                MxLookup::TempFail => MxAnswer::TempFail,
            }
        })
    }

    fn addrs<'a>(&'a self, host: &'a str) -> BoxFuture<'a, AddrAnswer> {
        Box::pin(async move {
            match self.host_addrs(host).await {
                Ok(a) => AddrAnswer::Found(a),
                Err(true) => AddrAnswer::TempFail,
                Err(false) => AddrAnswer::NotFound,
            }
        })
    }

    fn ptr(&self, ip: IpAddr) -> BoxFuture<'_, Option<String>> {
        Box::pin(async move { self.ptr_name(ip).await })
    }
}
