//! Time zones through the runtime's `Intl` (contract section 13): whether it knows a zone,
//! and a zone's UTC offset at an instant, daylight saving included. The arithmetic is
//! pure (`core::protection::settings::offset_from_local`); this module only asks
//! `Intl.DateTimeFormat` for the wall clock. Formatters are built once per zone and
//! isolate: building one costs far more than using it.

use std::cell::RefCell;

use js_sys::{Array, Date, Function, Object, Reflect};
use wasm_bindgen::{JsCast, JsValue};

use crate::core::protection::settings::{offset_from_local, plausible_timezone};

/// Zones kept per isolate; past this the cache starts again (the IANA database has about
/// 600 names, and an isolate serves a handful). A list searched in order: for so few
/// names a hash map is more wasm than it saves time.
const CACHE_MAX: usize = 64;

/// `Date` takes instants within ±8.64e15 ms of 1970.
const DATE_LIMIT_MS: i64 = 8_640_000_000_000_000;

thread_local! {
    static FORMATTERS: RefCell<Vec<(String, Function)>> = const { RefCell::new(Vec::new()) };
}

/// `formatToParts` of a formatter for `zone` (year to second, 24-hour clock), bound to it.
/// `None` when `Intl` refuses the zone (a `RangeError`) or is missing.
fn parts_of(zone: &str) -> Option<Function> {
    if !plausible_timezone(zone) {
        return None;
    }
    let cached = FORMATTERS.with(|cache| {
        let cache = cache.borrow();
        let found = cache.iter().find(|(name, _)| name == zone);
        found.map(|(_, format)| format.clone())
    });
    if let Some(found) = cached {
        return Some(found);
    }
    let intl = Reflect::get(&js_sys::global(), &JsValue::from_str("Intl")).ok()?;
    let constructor: Function = Reflect::get(&intl, &JsValue::from_str("DateTimeFormat"))
        .ok()?
        .dyn_into()
        .ok()?;
    let options = Object::new();
    for (key, value) in [
        ("timeZone", zone),
        ("hourCycle", "h23"),
        ("year", "numeric"),
        ("month", "numeric"),
        ("day", "numeric"),
        ("hour", "numeric"),
        ("minute", "numeric"),
        ("second", "numeric"),
    ] {
        Reflect::set(&options, &JsValue::from_str(key), &JsValue::from_str(value)).ok()?;
    }
    let arguments = Array::of2(&JsValue::from_str("en-US"), &options);
    // Reflect.construct catches the RangeError of an unknown zone.
    let formatter = Reflect::construct(&constructor, &arguments).ok()?;
    let method: Function = Reflect::get(&formatter, &JsValue::from_str("formatToParts"))
        .ok()?
        .dyn_into()
        .ok()?;
    let bound = method.bind0(&formatter);
    FORMATTERS.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.push((zone.to_string(), bound.clone()));
    });
    Some(bound)
}

/// Whether the runtime's `Intl` knows `zone` (an IANA name such as `Europe/Berlin`).
#[inline(never)]
pub fn is_known(zone: &str) -> bool {
    parts_of(zone).is_some()
}

/// `zone`'s UTC offset in minutes at `at_ms` (Unix milliseconds), daylight saving
/// included; `None` for a zone `Intl` does not know, or an instant `Date` cannot hold.
pub fn offset_minutes(zone: &str, at_ms: i64) -> Option<i32> {
    if at_ms.abs() > DATE_LIMIT_MS {
        return None;
    }
    let format = parts_of(zone)?;
    let date = Date::new(&JsValue::from_f64(at_ms as f64));
    let parts: Array = format.call1(&JsValue::NULL, &date).ok()?.dyn_into().ok()?;
    let (mut year, mut month, mut day, mut hour, mut minute, mut second) =
        (None, None, None, None, None, None);
    for part in parts.iter() {
        let kind = Reflect::get(&part, &JsValue::from_str("type"))
            .ok()?
            .as_string();
        let value = Reflect::get(&part, &JsValue::from_str("value"))
            .ok()?
            .as_string();
        let number = || value.as_deref().and_then(|v| v.parse::<i64>().ok());
        match kind.as_deref() {
            Some("year") => year = number(),
            Some("month") => month = number(),
            Some("day") => day = number(),
            Some("hour") => hour = number(),
            Some("minute") => minute = number(),
            Some("second") => second = number(),
            _ => {}
        }
    }
    let field = |n: Option<i64>| n.and_then(|n| u32::try_from(n).ok());
    offset_from_local(
        (
            year?,
            field(month)?,
            field(day)?,
            field(hour)?,
            field(minute)?,
            field(second)?,
        ),
        at_ms,
    )
}
