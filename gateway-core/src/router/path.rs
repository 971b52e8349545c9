//! Request path normalisation.

use std::borrow::Cow;

/// Why a request path was refused by [`normalize_path`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path is empty or does not start with `/` (origin-form is required).
    #[error("the request path must start with `/`")]
    NotAbsolute,
    /// A `%` not followed by two hexadecimal digits.
    #[error("malformed percent-escape at byte {offset}")]
    MalformedEscape {
        /// Byte offset of the `%`.
        offset: usize,
    },
}

/// Normalises a request path (without its query) before matching.
///
/// The same normalised path is forwarded to the backend, so that the backend sees exactly
/// what the routing decision was made on (a path that matched `/public` can not reach
/// `/admin` on the backend through `/public/../admin`).
///
/// Rules, in this order (RFC 3986 §6.2.2):
/// - the path must start with `/`, else [`PathError::NotAbsolute`];
/// - escapes of unreserved characters (`ALPHA / DIGIT / - . _ ~`) are decoded; other escapes
///   are kept with upper-case hex digits, so `%2F` stays an encoded byte and never becomes a
///   segment separator; a `%` without two hex digits is [`PathError::MalformedEscape`];
/// - dot segments are removed (RFC 3986 §5.2.4), never climbing above the root;
/// - runs of `/` are merged into one.
///
/// Returns [`Cow::Borrowed`] when the path is already normal, which is the common case and
/// does not allocate. Never panics.
pub fn normalize_path(path: &str) -> Result<Cow<'_, str>, PathError> {
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if !needs_change(path)? {
        return Ok(Cow::Borrowed(path));
    }
    let decoded = decode(path)?;
    Ok(Cow::Owned(remove_dot_segments(&decoded)))
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Reads the escape at `offset` (which holds `%`): the decoded byte and its two hex digits.
fn escape_at(bytes: &[u8], offset: usize) -> Result<(u8, u8, u8), PathError> {
    let malformed = PathError::MalformedEscape { offset };
    let (Some(&hi), Some(&lo)) = (bytes.get(offset + 1), bytes.get(offset + 2)) else {
        return Err(malformed);
    };
    let digit = |b: u8| char::from(b).to_digit(16);
    match (digit(hi), digit(lo)) {
        // Two hex digits make at most 0xFF.
        (Some(h), Some(l)) => Ok((((h << 4) | l) as u8, hi, lo)),
        _ => Err(malformed),
    }
}

/// One read-only pass that validates escapes and tells whether any rule would rewrite the
/// path, so that the common, already-normal path is returned without allocating.
fn needs_change(path: &str) -> Result<bool, PathError> {
    let bytes = path.as_bytes();
    let mut change = false;
    // The path starts with `/`; segments start after each `/`.
    let mut segment_start = 1;
    let mut i = 1;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let (value, hi, lo) = escape_at(bytes, i)?;
                if is_unreserved(value) || hi.is_ascii_lowercase() || lo.is_ascii_lowercase() {
                    change = true;
                }
                i += 3;
            }
            b'/' => {
                let segment = bytes.get(segment_start..i).unwrap_or_default();
                if matches!(segment, b"" | b"." | b"..") {
                    change = true;
                }
                segment_start = i + 1;
                i += 1;
            }
            _ => i += 1,
        }
    }
    // An empty last segment is a trailing slash, which is kept.
    let last = bytes.get(segment_start..).unwrap_or_default();
    Ok(change || matches!(last, b"." | b".."))
}

fn decode(path: &str) -> Result<String, PathError> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut copied = 0;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b != b'%' {
            i += 1;
            continue;
        }
        out.push_str(path.get(copied..i).unwrap_or_default());
        let (value, _, _) = escape_at(bytes, i)?;
        if is_unreserved(value) {
            out.push(char::from(value));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(value >> 4)]));
            out.push(char::from(HEX[usize::from(value & 0xf)]));
        }
        // The two hex digits are ASCII, so `i` stays on a character boundary.
        i += 3;
        copied = i;
    }
    out.push_str(path.get(copied..).unwrap_or_default());
    Ok(out)
}

/// RFC 3986 §5.2.4 on an absolute path, also merging empty segments.
fn remove_dot_segments(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    // Whether the output must end with `/`: after a trailing empty, `.` or `..` segment the
    // path names a directory (`/a/b/..` is `/a/`).
    let mut trailing_slash = false;
    for segment in path.split('/').skip(1) {
        match segment {
            "" | "." => trailing_slash = true,
            ".." => {
                let parent = out.rfind('/').unwrap_or(0);
                out.truncate(parent);
                trailing_slash = true;
            }
            _ => {
                out.push('/');
                out.push_str(segment);
                trailing_slash = false;
            }
        }
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    out
}
