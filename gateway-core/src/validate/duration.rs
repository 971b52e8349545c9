//! Gateway API durations (`GEP-2257`): `^([0-9]{1,5}(h|m|s|ms)){1,4}$`.

use std::time::Duration;

/// Why a text is not a Gateway API duration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {text:?}: {reason}")]
pub struct DurationError {
    /// The text as written.
    pub text: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Parses a Gateway API duration such as `10s`, `500ms` or `1h30m`.
///
/// The grammar is deliberately narrower than Go's `time.ParseDuration`: up to four
/// `<1–5 digits><unit>` parts with units `h`, `m`, `s` and `ms`, no sign, no fractions.
/// `0s` parses to zero; whether zero means "disabled" is for the caller to decide.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let fail = |reason| DurationError {
        text: text.to_owned(),
        reason,
    };
    if text.is_empty() {
        return Err(fail("must not be empty"));
    }
    let bytes = text.as_bytes();
    let mut pos = 0;
    let mut parts = 0;
    let mut total = Duration::ZERO;
    while pos < bytes.len() {
        let digits = bytes[pos..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits == 0 {
            return Err(fail("expected a number before each unit"));
        }
        if digits > 5 {
            return Err(fail("at most 5 digits per part"));
        }
        let mut value: u64 = 0;
        for &b in &bytes[pos..pos + digits] {
            value = value * 10 + u64::from(b - b'0');
        }
        pos += digits;
        // `ms` must be tried before `m`: the grammar has no other way to read `1ms`.
        let (unit, len) = match (bytes.get(pos), bytes.get(pos + 1)) {
            (Some(b'm'), Some(b's')) => (Duration::from_millis(1), 2),
            (Some(b'h'), _) => (Duration::from_secs(3600), 1),
            (Some(b'm'), _) => (Duration::from_secs(60), 1),
            (Some(b's'), _) => (Duration::from_secs(1), 1),
            _ => return Err(fail("each number needs a unit (h, m, s or ms)")),
        };
        pos += len;
        parts += 1;
        if parts > 4 {
            return Err(fail("at most 4 parts"));
        }
        // 4 × 99999h fits easily in a Duration; no overflow is possible.
        total += unit * u32::try_from(value).unwrap_or(u32::MAX);
    }
    Ok(total)
}
