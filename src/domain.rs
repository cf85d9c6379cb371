//! The domain: what a prepaid Live package is, independent of Tencent's JSON and of Prometheus.
//!
//! `tencent::models` turns answers into these types; `metrics` turns them into series.
//! Amounts are already in base units (bytes or seconds) here.

use std::fmt;

/// A query type: the request's `PackageType` (0 traffic, 1 transcode, 2 co-anchoring).
/// These codes differ from a package's own `Type` ([`PackageKind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QueryType {
    /// Traffic packages (流量包), `PackageType` 0: amounts in bytes.
    Traffic,
    /// Transcode packages (转码包), `PackageType` 1: standard and top-speed codec packages;
    /// amounts in minutes.
    Transcode,
    /// Co-anchoring (mic-link, 连麦包) packages, `PackageType` 2: amounts in hours.
    CoAnchoring,
}

impl QueryType {
    /// Every query type, in request-code order (`poll.package_types` defaults to the same three).
    pub const ALL: [QueryType; 3] = [Self::Traffic, Self::Transcode, Self::CoAnchoring];

    /// The `PackageType` request parameter.
    pub fn code(self) -> u8 {
        match self {
            Self::Traffic => 0,
            Self::Transcode => 1,
            Self::CoAnchoring => 2,
        }
    }

    /// The `package_type` label and the config spelling.
    pub fn label(self) -> &'static str {
        match self {
            Self::Traffic => "traffic",
            Self::Transcode => "transcode",
            Self::CoAnchoring => "co_anchoring",
        }
    }

    /// The query type whose [`label`](Self::label) is `s` (as `poll.package_types` spells it),
    /// or `None` for any other string.
    pub fn from_label(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|q| q.label() == s)
    }

    /// The kind a package of this query has when its own `Type` is missing.
    pub fn default_kind(self) -> PackageKind {
        match self {
            Self::Traffic => PackageKind::Traffic,
            Self::Transcode => PackageKind::Transcode,
            Self::CoAnchoring => PackageKind::CoAnchoring,
        }
    }
}

impl fmt::Display for QueryType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A package's own `Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PackageKind {
    /// `Type` 0: a traffic package; amounts in bytes.
    Traffic,
    /// `Type` 1: a standard transcode package (普通转码包); amounts in minutes.
    Transcode,
    /// `Type` 2: a top-speed codec transcode package (极速高清包); amounts in minutes.
    TopSpeedCodec,
    /// `Type` 3: a co-anchoring (连麦包) package; amounts in hours.
    CoAnchoring,
    /// A code this exporter does not know yet: exported as its decimal string, never dropped.
    Unknown(i64),
}

impl PackageKind {
    /// The kind for the API's `Type` code (0..=3); any other code is kept as
    /// [`Self::Unknown`].
    pub fn from_code(code: i64) -> Self {
        match code {
            0 => Self::Traffic,
            1 => Self::Transcode,
            2 => Self::TopSpeedCodec,
            3 => Self::CoAnchoring,
            other => Self::Unknown(other),
        }
    }

    /// The `package_type` label.
    pub fn label(self) -> String {
        match self {
            Self::Traffic => "traffic".into(),
            Self::Transcode => "transcode".into(),
            Self::TopSpeedCodec => "top_speed_codec".into(),
            Self::CoAnchoring => "co_anchoring".into(),
            Self::Unknown(code) => code.to_string(),
        }
    }

    /// The unit Tencent reports `Total`/`Used`/`Left` in; `None` for an unknown kind.
    pub fn unit(self) -> Option<Unit> {
        match self {
            Self::Traffic => Some(Unit::Bytes),
            Self::Transcode | Self::TopSpeedCodec => Some(Unit::Minutes),
            Self::CoAnchoring => Some(Unit::Hours),
            Self::Unknown(_) => None,
        }
    }
}

/// A package's `Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// 0: bought, not yet in use (e.g. queued behind another package).
    Unused,
    /// 1: in use: usage is being drawn from it now.
    InUse,
    /// 2: expired: past its `ExpireTime`.
    Expired,
    /// 3: frozen (冻结) by Tencent.
    Frozen,
    /// 4: used up (已耗尽): `Left` is 0.
    Exhausted,
    /// 5: refunded.
    Refunded,
    /// A code this exporter does not know yet: exported as its decimal string, never dropped.
    Unknown(i64),
}

impl Status {
    /// The status for the API's `Status` code (0..=5); any other code is kept as
    /// [`Self::Unknown`].
    pub fn from_code(code: i64) -> Self {
        match code {
            0 => Self::Unused,
            1 => Self::InUse,
            2 => Self::Expired,
            3 => Self::Frozen,
            4 => Self::Exhausted,
            5 => Self::Refunded,
            other => Self::Unknown(other),
        }
    }

    /// The `status` label.
    pub fn label(self) -> String {
        match self {
            Self::Unused => "unused".into(),
            Self::InUse => "in_use".into(),
            Self::Expired => "expired".into(),
            Self::Frozen => "frozen".into(),
            Self::Exhausted => "exhausted".into(),
            Self::Refunded => "refunded".into(),
            Self::Unknown(code) => code.to_string(),
        }
    }
}

/// The unit of Tencent's `Total`/`Used`/`Left`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Traffic packages: the API's bytes, exported as bytes.
    Bytes,
    /// Transcode packages: the API's minutes, exported as seconds (× 60).
    Minutes,
    /// Co-anchoring packages: the API's hours, exported as seconds (× 3600).
    Hours,
}

impl Unit {
    /// Base-unit multiplier: bytes stay bytes, minutes and hours become seconds.
    pub fn to_base(self) -> u64 {
        match self {
            Self::Bytes => 1,
            Self::Minutes => 60,
            Self::Hours => 3600,
        }
    }

    /// Whether the base unit is bytes (else seconds).
    pub fn is_bytes(self) -> bool {
        self == Self::Bytes
    }
}

/// One package, as of one poll. Every optional field is `None` when the API left it out or sent
/// something invalid (which is counted, not guessed at).
#[derive(Debug, Clone, PartialEq)]
pub struct Package {
    /// The API's `Id` (a string such as `281975`; a numeric `Id` is taken as its decimal), never
    /// empty: the `package_id` label. An entry without a usable `Id` is skipped.
    pub id: String,
    /// From `Type`; the query's default kind when `Type` is missing or invalid.
    pub kind: PackageKind,
    /// From `Status`; [`Status::Unknown`]`(-1)` when it is missing or invalid.
    pub status: Status,
    /// Base unit of the amounts below (bytes, or seconds for time packages).
    pub unit: Unit,
    /// `Total` in the base unit (bytes or seconds), at most
    /// [`MAX_EXACT`](crate::tencent::models::MAX_EXACT) so that an `f64` sample holds it exactly.
    pub quota: Option<u64>,
    /// `Used` in the base unit, same bounds as `quota`.
    pub used: Option<u64>,
    /// `Left` in the base unit, same bounds as `quota`: what remains before pay-as-you-go billing.
    pub remaining: Option<u64>,
    /// `ExpireTime` (Beijing time, UTC+8, in the answer) as Unix seconds.
    pub expires_at: Option<i64>,
    /// `BuyTime` (Beijing time, UTC+8, in the answer) as Unix seconds.
    pub purchased_at: Option<i64>,
    /// `WillRenew`: 1 auto-renewal on, 0 off; any other integer within ±2^53 is passed through.
    pub auto_renew: Option<i64>,
    /// `RenewalResult`: 1 renewed, 0 not yet renewed, negative: renewal failed.
    pub renewal_result: Option<i64>,
}

/// One field of `FluxPackageBillMode`: (product, area) → bill mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrafficBillMode {
    /// `standard` (标准直播) or `leb` (快直播, Live Event Broadcasting): the `product` label.
    pub product: &'static str,
    /// `mainland` (中国大陆) or `overseas` (国际/港澳台): the `area` label.
    pub area: &'static str,
    /// The bill mode, in `PackageBillMode`'s codes (201 monthly bandwidth, 204 daily traffic, -1
    /// none or unknown, …): the value of `tencent_live_traffic_bill_mode`.
    pub mode: i64,
}

/// A pair's complete list, as one successful poll read it: what the store keeps and publishes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Listing {
    /// One entry per package id, in the order the API listed them.
    pub packages: Vec<Package>,
    /// `PackageBillMode` of page 1; `None` when it was null, missing or invalid.
    pub bill_mode: Option<i64>,
    /// `FluxPackageBillMode` of page 1 (traffic queries only).
    pub traffic_bill_modes: Vec<TrafficBillMode>,
}

/// The order of the first four `FluxPackageBillMode` fields.
pub const TRAFFIC_BILL_MODE_FIELDS: [(&str, &str); 4] = [
    ("standard", "mainland"),
    ("standard", "overseas"),
    ("leb", "mainland"),
    ("leb", "overseas"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_statuses_map_to_the_contract_labels() {
        let kinds: Vec<String> = (0..5).map(|c| PackageKind::from_code(c).label()).collect();
        assert_eq!(
            kinds,
            [
                "traffic",
                "transcode",
                "top_speed_codec",
                "co_anchoring",
                "4"
            ]
        );
        let statuses: Vec<String> = (0..7).map(|c| Status::from_code(c).label()).collect();
        assert_eq!(
            statuses,
            [
                "unused",
                "in_use",
                "expired",
                "frozen",
                "exhausted",
                "refunded",
                "6"
            ]
        );
        assert_eq!(Status::from_code(-3).label(), "-3");
    }

    #[test]
    fn units_convert_minutes_and_hours_to_seconds() {
        assert_eq!(PackageKind::Traffic.unit(), Some(Unit::Bytes));
        assert_eq!(PackageKind::Transcode.unit().map(Unit::to_base), Some(60));
        assert_eq!(
            PackageKind::TopSpeedCodec.unit().map(Unit::to_base),
            Some(60)
        );
        assert_eq!(
            PackageKind::CoAnchoring.unit().map(Unit::to_base),
            Some(3600)
        );
        assert_eq!(PackageKind::Unknown(9).unit(), None);
    }

    #[test]
    fn query_types_have_the_request_codes() {
        let codes: Vec<u8> = QueryType::ALL.iter().map(|q| q.code()).collect();
        assert_eq!(codes, [0, 1, 2]);
        assert_eq!(
            QueryType::from_label("co_anchoring"),
            Some(QueryType::CoAnchoring)
        );
        assert_eq!(QueryType::from_label("top_speed_codec"), None);
    }
}
