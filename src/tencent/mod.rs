//! Everything that knows Tencent Cloud: signing, the API client, its JSON, and credentials.
//! Nothing outside this module parses Tencent's JSON or builds its requests.

pub mod api3;
pub mod budget;
pub mod client;
pub mod credentials;
pub mod models;
/// TC3-HMAC-SHA256 signing: the workspace crate `tencent-tc3` (`tc3/`), shared with the simulator.
pub use tencent_tc3 as sign;
pub mod transport;
