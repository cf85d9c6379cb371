//! The request parameters of `DescribeLivePackageInfo` (parsing, defaults, refusals) and the
//! package lists they select: ordering, paging, lists that grow or shrink while paged, drained
//! packages.

use super::*;

/// The answer order: by the order's time field (as text), packages without one last; stable.
pub(super) fn compare_packages(a: &Value, b: &Value, order: OrderBy) -> std::cmp::Ordering {
    let field = order.field();
    let (a, b) = (
        a.get(field).and_then(Value::as_str),
        b.get(field).and_then(Value::as_str),
    );
    match (a, b) {
        (Some(a), Some(b)) if order.descending() => b.cmp(a),
        (Some(a), Some(b)) => a.cmp(b),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    }
}

/// Indices of `list` in answer order.
pub(super) fn answer_order(list: &[Value], order: OrderBy) -> Vec<usize> {
    let mut indices: Vec<usize> = (0..list.len()).collect();
    indices.sort_by(|&a, &b| match (list.get(a), list.get(b)) {
        (Some(a), Some(b)) => compare_packages(a, b, order),
        _ => std::cmp::Ordering::Equal,
    });
    indices
}

/// [`Fault::ShrinkBefore`]: removes the first `n` packages in answer order.
pub(super) fn shrink_front(list: &mut Vec<Value>, order: OrderBy, n: usize) {
    let mut remove = vec![false; list.len()];
    for i in answer_order(list, order).into_iter().take(n) {
        if let Some(flag) = remove.get_mut(i) {
            *flag = true;
        }
    }
    let mut flags = remove.into_iter();
    list.retain(|_| !flags.next().unwrap_or(false));
}

/// [`Fault::GrowBefore`]: `n` copies of the first package in answer order, stored first so that the
/// (stable) sort answers them first; never past [`MAX_GROWN_LIST`] packages.
pub(super) fn grow_front(list: &mut Vec<Value>, order: OrderBy, n: usize) {
    let Some(first) = answer_order(list, order)
        .first()
        .and_then(|&i| list.get(i))
        .cloned()
    else {
        return;
    };
    let n = n.min(MAX_GROWN_LIST.saturating_sub(list.len()));
    list.splice(0..0, std::iter::repeat_n(first, n));
}

/// Validates the body against the API's parameter rules.
pub(super) fn parse_query(body: Option<&Value>) -> Result<Query, ApiError> {
    let Some(Value::Object(body)) = body else {
        return Err(err(
            "InvalidParameter",
            "The request body must be a JSON object.",
        ));
    };
    if let Some(unknown) = body
        .keys()
        .find(|k| !KNOWN_PARAMETERS.contains(&k.as_str()))
    {
        return Err(err(
            "UnknownParameter",
            format!("The parameter `{unknown}` is not recognized."),
        ));
    }
    let package_type = match body.get("PackageType") {
        None | Some(Value::Null) => {
            return Err(err(
                "MissingParameter",
                "The request is missing a required parameter `PackageType`.",
            ));
        }
        Some(value) => match value.as_i64() {
            Some(n @ 0..=2) => usize::try_from(n).unwrap_or_default(),
            _ => {
                return Err(err(
                    "InvalidParameterValue",
                    format!("PackageType `{value}` is invalid; use 0, 1 or 2."),
                ));
            }
        },
    };
    let page_num = optional_integer(body, "PageNum")?;
    if let Some(n) = page_num {
        if n < 1 {
            return Err(err(
                "InvalidParameterValue",
                format!("PageNum `{n}` is invalid; it starts at 1."),
            ));
        }
    }
    let page_size = optional_integer(body, "PageSize")?;
    if let Some(n) = page_size {
        if !(10..=100).contains(&n) {
            return Err(err(
                "InvalidParameterValue",
                format!("PageSize `{n}` is invalid; use 10 to 100."),
            ));
        }
    }
    let order = match body.get("OrderBy") {
        None | Some(Value::Null) => OrderBy::BuyTimeDesc,
        Some(Value::String(s)) => match s.as_str() {
            "BuyTimeDesc" => OrderBy::BuyTimeDesc,
            "BuyTimeAsc" => OrderBy::BuyTimeAsc,
            "ExpireTimeDesc" => OrderBy::ExpireTimeDesc,
            "ExpireTimeAsc" => OrderBy::ExpireTimeAsc,
            _ => {
                return Err(err(
                    "InvalidParameterValue",
                    format!("OrderBy `{s}` is invalid."),
                ));
            }
        },
        Some(other) => {
            return Err(err(
                "InvalidParameterValue",
                format!("OrderBy `{other}` is invalid."),
            ));
        }
    };
    if package_type == 2 && order.field() == "ExpireTime" {
        return Err(err(
            "InvalidParameterValue",
            "OrderBy ExpireTimeDesc/ExpireTimeAsc is not supported for PackageType 2.",
        ));
    }
    Ok(Query {
        package_type,
        page: page_num.zip(page_size),
        order,
    })
}

/// An optional integer parameter: absent or null is `None`, anything but an integer is an error.
pub(super) fn optional_integer(
    body: &Map<String, Value>,
    name: &str,
) -> Result<Option<i64>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value.as_i64().map(Some).ok_or_else(|| {
            err(
                "InvalidParameterValue",
                format!("{name} `{value}` is not an integer."),
            )
        }),
    }
}

/// Demo drain of one package: 0.2 % of `Total` (at least 1) from `Left` to `Used`; `Status` 4 at 0.
/// Only in-use packages whose `ExpireTime` (if a string) is not before `now` are drained.
pub(super) fn drain_package(package: &mut Value, now: &str) {
    let Some(object) = package.as_object_mut() else {
        return;
    };
    if object
        .get("ExpireTime")
        .and_then(Value::as_str)
        .is_some_and(|expire| expire < now)
    {
        return;
    }
    let int = |name: &str| object.get(name).and_then(Value::as_i64);
    let (Some(1), Some(total), Some(used), Some(left)) =
        (int("Status"), int("Total"), int("Used"), int("Left"))
    else {
        return;
    };
    if total <= 0 || left <= 0 {
        return;
    }
    let step = (total / 500).max(1);
    let new_left = left.saturating_sub(step).max(0);
    let moved = left - new_left;
    object.insert("Left".to_owned(), json!(new_left));
    object.insert("Used".to_owned(), json!(used.saturating_add(moved)));
    if new_left == 0 {
        object.insert("Status".to_owned(), json!(4));
    }
}

/// A package's `Id` as text (strings as they are, numbers printed), for matching.
pub(super) fn id_key(package: &Value) -> Option<String> {
    match package.get("Id")? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A UUID-v4-shaped id, unique within the process (its last group embeds a counter).
pub(super) fn new_request_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static BASE: OnceLock<u64> = OnceLock::new();
    let base = *BASE.get_or_init(|| RandomState::new().hash_one(SystemTime::now()));
    let n = COUNTER.fetch_add(1, AtomicOrdering::Relaxed);
    let hasher = RandomState::new();
    let a = hasher.hash_one((n, base));
    let b = hasher.hash_one((a, n));
    let tail = base.wrapping_add(n) & 0xffff_ffff_ffff;
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        ((b >> 48) & 0x3fff) | 0x8000,
        tail
    )
}
