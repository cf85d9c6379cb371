//! Everything that knows Tencent Cloud: signing, the API client, its JSON, and credentials.
//! Nothing outside this module parses Tencent's JSON or builds its requests.

pub mod client;
pub mod credentials;
pub mod models;
pub mod sign;
pub mod transport;
