//! Tencent's JSON, and only here: turns a `DescribeLivePackageInfo` answer into domain types.
//!
//! Parsing is defensive. Any field may be null, missing, negative, of the wrong type or out of
//! range; such a field is skipped and reported in [`PageAnswer::invalid_fields`], and the package
//! is still returned with what is valid. Only an answer that is not a JSON object with a
//! `Response` object, or an error answer, fails as a whole.

use serde_json::{Map, Value};
use time::macros::{format_description, offset};

use crate::domain::{
    Package, PackageKind, QueryType, Status, TRAFFIC_BILL_MODE_FIELDS, TrafficBillMode,
};

/// Largest integer an `f64` sample holds exactly; larger amounts are refused, not rounded.
pub const MAX_EXACT: u64 = 1 << 53;

/// One page of a successful answer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PageAnswer {
    /// The usable packages of this page, in the API's order (entries without a usable `Id` are
    /// left out).
    pub packages: Vec<Package>,
    /// Entries in `LivePackageInfoList`, including ones skipped as unusable: what paging counts.
    pub listed: usize,
    /// `PackageBillMode` (-1 none or unknown, 0 none, 201 monthly bandwidth, 202 monthly traffic,
    /// 203 daily bandwidth, 204 daily traffic, 205 daily duration, 206 monthly duration, 304 daily
    /// traffic); `None` when null, missing or invalid.
    pub bill_mode: Option<i64>,
    /// `FluxPackageBillMode`'s first four fields (standard mainland, standard overseas, LEB
    /// mainland, LEB overseas); parsed for traffic queries only, empty otherwise or when absent.
    pub traffic_bill_modes: Vec<TrafficBillMode>,
    /// `TotalPage`: pages at the request's `PageSize`; `None` when null (the API page allows it),
    /// missing, negative or invalid.
    pub total_page: Option<u64>,
    /// `TotalNum`: packages of this type in all pages; `None` as for `total_page`. The poller
    /// requires the pages it reads to list exactly this many.
    pub total_num: Option<u64>,
    /// `RequestId`, to log with every failure; `None` when the answer has none.
    pub request_id: Option<String>,
    /// Fields that were present but unusable (or required and missing): counted by
    /// `tencent_live_exporter_invalid_fields_total`, never fatal.
    pub invalid_fields: Vec<InvalidField>,
}

/// A field that was present but unusable (or a required one that was missing).
#[derive(Debug, Clone, PartialEq)]
pub struct InvalidField {
    /// The API's field name, e.g. `ExpireTime`: the `field` label of the invalid-fields counter.
    pub field: &'static str,
    /// The package's `Id` when the field belongs to a package; `None` for answer-level fields and
    /// for an entry that has no usable `Id`.
    pub package_id: Option<String>,
    /// Why the value was refused, for the log: e.g. `"0000-00-00" is not YYYY-MM-DD HH:MM:SS`.
    pub reason: String,
}

/// The unusable fields of a pair's last poll, so that a warning is logged once per change and
/// not on every poll: an API that answers an empty or `0000-00-00 00:00:00` `ExpireTime` does so
/// every time, and the `tencent_live_exporter_invalid_fields_total` counter already counts each.
#[derive(Debug, Default)]
pub struct InvalidFieldsSeen(Vec<(&'static str, Option<String>, String)>);

impl InvalidFieldsSeen {
    /// Records this poll's unusable fields; `true` when they differ from the last poll's (in any
    /// order), i.e. when there is something new to warn about.
    pub fn changed(&mut self, fields: &[InvalidField]) -> bool {
        let mut now: Vec<_> = fields
            .iter()
            .map(|f| (f.field, f.package_id.clone(), f.reason.clone()))
            .collect();
        now.sort();
        let changed = now != self.0;
        self.0 = now;
        changed
    }
}

/// Why an answer could not be used at all.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AnswerError {
    /// The API's own error answer.
    #[error("{code}: {message} (RequestId {request_id})")]
    Api {
        /// The error `Code`, e.g. `AuthFailure.SignatureFailure` or `RequestLimitExceeded`;
        /// `UnknownError` when the answer gave none.
        code: String,
        /// The error `Message` as Tencent wrote it (may be empty).
        message: String,
        /// The answer's `RequestId`, or `none` when it had none.
        request_id: String,
    },
    /// Not an answer of this API's shape.
    #[error("undecodable answer: {0}")]
    Decode(String),
}

/// Parses one answer body of `DescribeLivePackageInfo` for the given query type.
///
/// Fails with [`AnswerError::Api`] for the API's error answer (`Response.Error`), and with
/// [`AnswerError::Decode`] when the body is not JSON, has no `Response` object, or its
/// `LivePackageInfoList` is not an array; every other fault is an [`InvalidField`].
pub fn parse_answer(body: &[u8], query: QueryType) -> Result<PageAnswer, AnswerError> {
    let root: Value = serde_json::from_slice(body).map_err(|e| {
        AnswerError::Decode(format!("not JSON ({e}); starts with {:?}", preview(body)))
    })?;
    let response = root
        .get("Response")
        .and_then(Value::as_object)
        .ok_or_else(|| AnswerError::Decode("no \"Response\" object".into()))?;
    let request_id = response
        .get("RequestId")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if let Some(error) = response.get("Error").filter(|e| !e.is_null()) {
        let field = |k: &str| {
            error
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        let code = field("Code");
        return Err(AnswerError::Api {
            code: if code.is_empty() {
                "UnknownError".into()
            } else {
                code
            },
            message: field("Message"),
            request_id: request_id.unwrap_or_else(|| "none".into()),
        });
    }

    let mut answer = PageAnswer {
        request_id,
        ..PageAnswer::default()
    };
    let mut invalid = Vec::new();

    match response.get("LivePackageInfoList") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            answer.listed = items.len();
            for item in items {
                if let Some(p) = parse_package(item, query, &mut invalid) {
                    answer.packages.push(p);
                }
            }
        }
        Some(other) => {
            return Err(AnswerError::Decode(format!(
                "LivePackageInfoList is {}, not an array",
                kind_of(other)
            )));
        }
    }

    answer.bill_mode = optional_int(response, "PackageBillMode", None, &mut invalid);
    answer.total_page = optional_count(response, "TotalPage", &mut invalid);
    answer.total_num = optional_count(response, "TotalNum", &mut invalid);
    if query == QueryType::Traffic {
        answer.traffic_bill_modes = traffic_bill_modes(response, &mut invalid);
    }
    answer.invalid_fields = invalid;
    Ok(answer)
}

fn parse_package(
    item: &Value,
    query: QueryType,
    invalid: &mut Vec<InvalidField>,
) -> Option<Package> {
    let Some(obj) = item.as_object() else {
        invalid.push(InvalidField {
            field: "LivePackageInfoList",
            package_id: None,
            reason: format!("entry is {}, not an object", kind_of(item)),
        });
        return None;
    };
    let id = match obj.get("Id") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        other => {
            invalid.push(InvalidField {
                field: "Id",
                package_id: None,
                reason: format!("package without a usable Id ({}); skipped", describe(other)),
            });
            return None;
        }
    };
    let pid = Some(id.as_str());

    let kind = match optional_int(obj, "Type", pid, invalid) {
        Some(code) => PackageKind::from_code(code),
        None => query.default_kind(),
    };
    // Unknown Type codes still need a unit: the query they came from decides.
    let unit = kind
        .unit()
        .or_else(|| query.default_kind().unit())
        .unwrap_or(crate::domain::Unit::Bytes);
    let status = match optional_int(obj, "Status", pid, invalid) {
        Some(code) => Status::from_code(code),
        None => {
            if !obj.contains_key("Status") || obj["Status"].is_null() {
                invalid.push(InvalidField {
                    field: "Status",
                    package_id: Some(id.clone()),
                    reason: "missing".into(),
                });
            }
            Status::Unknown(-1)
        }
    };
    let mut amount = |field: &'static str| -> Option<u64> {
        let raw = optional_int(obj, field, pid, invalid)?;
        let base = u64::try_from(raw)
            .ok()
            .and_then(|v| v.checked_mul(unit.to_base()))
            .filter(|v| *v <= MAX_EXACT);
        if base.is_none() {
            invalid.push(InvalidField {
                field,
                package_id: Some(id.clone()),
                reason: format!("{raw} is negative or too large to export exactly"),
            });
        }
        base
    };
    let quota = amount("Total");
    let used = amount("Used");
    let remaining = amount("Left");

    let mut timestamp = |field: &'static str| -> Option<i64> {
        match obj.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => match beijing_time(s) {
                Some(t) => Some(t),
                None => {
                    invalid.push(InvalidField {
                        field,
                        package_id: Some(id.clone()),
                        reason: format!("{s:?} is not YYYY-MM-DD HH:MM:SS"),
                    });
                    None
                }
            },
            Some(other) => {
                invalid.push(InvalidField {
                    field,
                    package_id: Some(id.clone()),
                    reason: format!("{} is not a time string", kind_of(other)),
                });
                None
            }
        }
    };
    let expires_at = timestamp("ExpireTime");
    let purchased_at = timestamp("BuyTime");
    let auto_renew = optional_int(obj, "WillRenew", pid, invalid);
    let renewal_result = optional_int(obj, "RenewalResult", pid, invalid);

    Some(Package {
        id,
        kind,
        status,
        unit,
        quota,
        used,
        remaining,
        expires_at,
        purchased_at,
        auto_renew,
        renewal_result,
    })
}

/// An integer field: `None` when missing or null (not an error), or when invalid (recorded).
fn optional_int(
    obj: &Map<String, Value>,
    field: &'static str,
    package_id: Option<&str>,
    invalid: &mut Vec<InvalidField>,
) -> Option<i64> {
    match obj.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.as_i64().is_some_and(|v| v.unsigned_abs() <= MAX_EXACT) => {
            n.as_i64()
        }
        Some(other) => {
            invalid.push(InvalidField {
                field,
                package_id: package_id.map(str::to_owned),
                reason: format!("{} is not an integer within ±2^53", describe(Some(other))),
            });
            None
        }
    }
}

/// A non-negative count (`TotalPage`, `TotalNum`).
fn optional_count(
    obj: &Map<String, Value>,
    field: &'static str,
    invalid: &mut Vec<InvalidField>,
) -> Option<u64> {
    let v = optional_int(obj, field, None, invalid)?;
    match u64::try_from(v) {
        Ok(v) => Some(v),
        Err(_) => {
            invalid.push(InvalidField {
                field,
                package_id: None,
                reason: format!("{v} is negative"),
            });
            None
        }
    }
}

/// The first four fields of `FluxPackageBillMode`; later ones are ignored (the API's own example
/// has six), a field that is not an integer is skipped.
fn traffic_bill_modes(
    obj: &Map<String, Value>,
    invalid: &mut Vec<InvalidField>,
) -> Vec<TrafficBillMode> {
    let raw = match obj.get("FluxPackageBillMode") {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::String(s)) => s,
        Some(other) => {
            invalid.push(InvalidField {
                field: "FluxPackageBillMode",
                package_id: None,
                reason: format!("{} is not a string", kind_of(other)),
            });
            return Vec::new();
        }
    };
    if raw.trim().is_empty() {
        return Vec::new();
    }
    let mut modes = Vec::new();
    for ((product, area), part) in TRAFFIC_BILL_MODE_FIELDS.iter().zip(raw.split(',')) {
        match part.trim().parse::<i64>() {
            Ok(mode) => modes.push(TrafficBillMode {
                product,
                area,
                mode,
            }),
            Err(_) => invalid.push(InvalidField {
                field: "FluxPackageBillMode",
                package_id: None,
                reason: format!("{product}/{area} field {part:?} is not an integer"),
            }),
        }
    }
    modes
}

/// `YYYY-MM-DD HH:MM:SS` in Beijing time (UTC+8, no DST) → Unix seconds.
pub fn beijing_time(s: &str) -> Option<i64> {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let t = time::PrimitiveDateTime::parse(s.trim(), format).ok()?;
    Some(t.assume_offset(offset!(+8)).unix_timestamp())
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn describe(v: Option<&Value>) -> String {
    match v {
        None => "missing".into(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) if s.len() <= 40 => format!("{s:?}"),
        Some(other) => kind_of(other).into(),
    }
}

fn preview(body: &[u8]) -> String {
    String::from_utf8_lossy(body.get(..60).unwrap_or(body)).into_owned()
}

#[cfg(test)]
mod tests;
