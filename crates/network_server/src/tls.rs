//! TLS settings for [`Protocol::Https`](crate::Protocol::Https) listeners:
//! what goes into [`ServerConfig::tls`](crate::ServerConfig::tls).
