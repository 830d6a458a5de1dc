//! The OData `$batch` codec: the `multipart/mixed` request body read into typed requests and
//! change sets, `$n` Content-ID references resolved, and the multipart response written in the
//! shape Dataverse returns.
//!
//! The format is OData v4.0 Part 1 §11.7 (Batch Requests) as Dataverse uses it:
//!
//! ```text
//! batch      = preamble delimiter item *(delimiter item) close-delimiter epilogue
//! delimiter  = [CRLF] "--" boundary *(SP / HT) CRLF        ; the line break before it is its own
//! item       = mime-headers CRLF ( http-request             ; Content-Type: application/http
//!                                / change-set )             ; Content-Type: multipart/mixed
//! change-set = the same shape with its own boundary, holding only http-request parts
//! http-request = method SP target SP "HTTP/1.1" CRLF headers CRLF body
//! ```
//!
//! Bare LF is accepted wherever CRLF is written above; the response always uses CRLF.
//!
//! **Architecture invariant:** this module does no I/O and knows nothing of tables, stores or
//! callers. It turns bytes into [`BatchItem`]s and [`ResponseItem`]s into bytes; running the
//! requests, atomically per change set, is the edge's job.

use std::collections::{HashMap, HashSet};

use axum::http::{Method, StatusCode};
use serde_json::Value as Json;
use uuid::Uuid;

/// Dataverse's limit on the number of requests in one batch, change-set members included.
pub const MAX_OPERATIONS: usize = 1000;

/// One request of a batch, as written in its `application/http` part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The `Content-ID` of the MIME part, or failing that of the inner request's headers.
    pub content_id: Option<String>,
    pub method: Method,
    /// The request target as written: an absolute URL, a root-relative path, or `$n`/`$n/...`.
    pub target: String,
    /// The inner request's headers, in order, as written.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A top-level member of a batch: a request on its own, or a change set run as one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchItem {
    Request(Part),
    ChangeSet { boundary: String, parts: Vec<Part> },
}

/// What the caller allows a batch to hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Requests in the batch, change-set members included.
    pub max_operations: usize,
    /// Bytes of the whole `$batch` body.
    pub max_batch_bytes: usize,
    /// Bytes of one inner request's body.
    pub max_part_body_bytes: usize,
}

impl Default for Limits {
    /// Dataverse's 1000 requests; the byte limits are left to the caller.
    fn default() -> Limits {
        Limits {
            max_operations: MAX_OPERATIONS,
            max_batch_bytes: usize::MAX,
            max_part_body_bytes: usize::MAX,
        }
    }
}

/// Why a batch body is refused. `operation` is the 1-based position of the request concerned,
/// counting change-set members; the edge answers every variant with a 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("The $batch request must have Content-Type 'multipart/mixed' with a boundary; found '{content_type}'.")]
    NotMultipartMixed { content_type: String },
    #[error("The multipart/mixed Content-Type of the {of} has no boundary parameter.")]
    MissingBoundary { of: &'static str },
    #[error("The boundary '{boundary}' is invalid: a boundary is 1 to 70 characters among letters, digits and '()+_,-./:=? (a space allowed, but not last).")]
    InvalidBoundary { boundary: String },
    #[error("The multipart body has no delimiter line '--{boundary}'.")]
    MissingDelimiter { boundary: String },
    #[error("The multipart body is not closed by the delimiter line '--{boundary}--'.")]
    MissingCloseDelimiter { boundary: String },
    #[error("Operation {operation}: a batch part must have Content-Type 'application/http' or 'multipart/mixed'; found '{found}'.")]
    PartContentType { operation: usize, found: String },
    #[error("Operation {operation}: Content-Transfer-Encoding '{encoding}' is not supported; use 'binary'.")]
    UnsupportedTransferEncoding { operation: usize, encoding: String },
    #[error("Operation {operation}: change sets cannot be nested.")]
    NestedChangeSet { operation: usize },
    #[error("Operation {operation}: a batch cannot contain another $batch request.")]
    NestedBatch { operation: usize },
    #[error("Operation {operation}: the request line '{line}' is malformed; expected '<METHOD> <URL> HTTP/1.1'.")]
    MalformedRequestLine { operation: usize, line: String },
    #[error("Operation {operation}: HTTP version '{version}' is not supported; use HTTP/1.1.")]
    UnsupportedHttpVersion { operation: usize, version: String },
    #[error(
        "Operation {operation}: the header line '{line}' is malformed; expected 'Name: value'."
    )]
    MalformedHeader { operation: usize, line: String },
    #[error("Operation {operation}: {method} requests are not allowed inside a change set.")]
    ReadInChangeSet { operation: usize, method: String },
    #[error("The batch contains more than {limit} requests.")]
    TooManyOperations { limit: usize },
    /// Dataverse's text, word for word.
    #[error("Content-ID Reference: '{reference}' does not exist in the batch context.")]
    UnknownReference { reference: String },
    #[error(
        "Operation {operation}: Content-ID '{content_id}' is already used in the same change set."
    )]
    DuplicateContentId {
        operation: usize,
        content_id: String,
    },
    #[error("The $batch body is larger than the limit of {limit} bytes.")]
    BatchTooLarge { limit: usize },
    #[error("Operation {operation}: the request body is larger than the limit of {limit} bytes.")]
    PartBodyTooLarge { operation: usize, limit: usize },
}

/// Reads a `$batch` body with Dataverse's limit of 1000 requests and no byte limit.
pub fn parse_batch(content_type: &str, body: &[u8]) -> Result<Vec<BatchItem>, BatchError> {
    parse_batch_with(content_type, body, &Limits::default())
}

/// Reads a `$batch` body: `content_type` is the request's `Content-Type` header.
pub fn parse_batch_with(
    content_type: &str,
    body: &[u8],
    limits: &Limits,
) -> Result<Vec<BatchItem>, BatchError> {
    if body.len() > limits.max_batch_bytes {
        return Err(BatchError::BatchTooLarge {
            limit: limits.max_batch_bytes,
        });
    }
    let (media_type, params) = parse_media_type(content_type);
    if media_type != "multipart/mixed" {
        return Err(BatchError::NotMultipartMixed {
            content_type: content_type.to_string(),
        });
    }
    let boundary = boundary_of(&params, "batch")?;
    let mut reader = Reader {
        limits,
        operations: 0,
    };
    let mut items = Vec::new();
    for raw in split_multipart(body, &boundary)? {
        let operation = reader.operations + 1;
        let (headers, content) = split_headers(raw, operation)?;
        let (kind, part_params) = parse_media_type(header(&headers, "content-type").unwrap_or(""));
        match kind.as_str() {
            "application/http" => {
                let part = reader.request(&headers, content)?;
                // Outside a change set there is nothing to refer to.
                let body_references = body_reference_names(&part.body);
                if let Some(name) =
                    reference_name(&part.target).or(body_references.first().map(String::as_str))
                {
                    return Err(unknown_reference(name));
                }
                items.push(BatchItem::Request(part));
            }
            "multipart/mixed" => {
                let boundary = boundary_of(&part_params, "change set")?;
                let parts = reader.change_set(content, &boundary)?;
                items.push(BatchItem::ChangeSet { boundary, parts });
            }
            _ => return Err(part_content_type(operation, &headers)),
        }
    }
    Ok(items)
}

/// Counts requests across the batch and reads each one.
struct Reader<'a> {
    limits: &'a Limits,
    operations: usize,
}

impl Reader<'_> {
    fn change_set(&mut self, body: &[u8], boundary: &str) -> Result<Vec<Part>, BatchError> {
        let mut parts: Vec<Part> = Vec::new();
        let mut declared: HashSet<String> = HashSet::new();
        for raw in split_multipart(body, boundary)? {
            let operation = self.operations + 1;
            let (headers, content) = split_headers(raw, operation)?;
            let (kind, _) = parse_media_type(header(&headers, "content-type").unwrap_or(""));
            match kind.as_str() {
                "application/http" => {}
                "multipart/mixed" => return Err(BatchError::NestedChangeSet { operation }),
                _ => return Err(part_content_type(operation, &headers)),
            }
            let part = self.request(&headers, content)?;
            if part.method == Method::GET || part.method == Method::HEAD {
                return Err(BatchError::ReadInChangeSet {
                    operation,
                    method: part.method.to_string(),
                });
            }
            let body_references = body_reference_names(&part.body);
            for name in reference_name(&part.target)
                .into_iter()
                .chain(body_references.iter().map(String::as_str))
            {
                if !declared.contains(name) {
                    return Err(unknown_reference(name));
                }
            }
            if let Some(id) = &part.content_id {
                if !declared.insert(id.clone()) {
                    return Err(BatchError::DuplicateContentId {
                        operation,
                        content_id: id.clone(),
                    });
                }
            }
            parts.push(part);
        }
        Ok(parts)
    }

    /// Reads one `application/http` part whose MIME headers are `mime_headers`.
    fn request(
        &mut self,
        mime_headers: &[(String, String)],
        content: &[u8],
    ) -> Result<Part, BatchError> {
        self.operations += 1;
        let operation = self.operations;
        if operation > self.limits.max_operations {
            return Err(BatchError::TooManyOperations {
                limit: self.limits.max_operations,
            });
        }
        if let Some(encoding) = header(mime_headers, "content-transfer-encoding") {
            if !["binary", "8bit", "7bit"]
                .iter()
                .any(|e| encoding.eq_ignore_ascii_case(e))
            {
                return Err(BatchError::UnsupportedTransferEncoding {
                    operation,
                    encoding: encoding.to_string(),
                });
            }
        }
        let mut content = content;
        while let Some(rest) = strip_line_break(content) {
            content = rest;
        }
        let (line, rest) = split_line(content);
        let (method, target) = parse_request_line(line, operation)?;
        let (headers, body) = split_headers(rest, operation)?;
        if body.len() > self.limits.max_part_body_bytes {
            return Err(BatchError::PartBodyTooLarge {
                operation,
                limit: self.limits.max_part_body_bytes,
            });
        }
        if is_batch_target(&target) {
            return Err(BatchError::NestedBatch { operation });
        }
        let content_id = header(mime_headers, "content-id")
            .or_else(|| header(&headers, "content-id"))
            .filter(|id| !id.is_empty())
            .map(str::to_string);
        Ok(Part {
            content_id,
            method,
            target,
            headers,
            body: body.to_vec(),
        })
    }
}

fn parse_request_line(line: &[u8], operation: usize) -> Result<(Method, String), BatchError> {
    let malformed = || BatchError::MalformedRequestLine {
        operation,
        line: String::from_utf8_lossy(line).into_owned(),
    };
    let text = std::str::from_utf8(line).map_err(|_| malformed())?.trim();
    // Method first, version last; the URL between them may hold unencoded spaces (client
    // libraries write `$filter=name eq 'x'` as is, and Dataverse takes it): they become %20.
    let (method, rest) = text.split_once(char::is_whitespace).ok_or_else(malformed)?;
    let (target, version) = rest
        .rsplit_once(char::is_whitespace)
        .ok_or_else(malformed)?;
    let target = target.trim();
    if target.is_empty() {
        return Err(malformed());
    }
    let target = target.replace(' ', "%20");
    if version != "HTTP/1.1" {
        return Err(if version.starts_with("HTTP/") {
            BatchError::UnsupportedHttpVersion {
                operation,
                version: version.to_string(),
            }
        } else {
            malformed()
        });
    }
    let method =
        Method::from_bytes(method.to_ascii_uppercase().as_bytes()).map_err(|_| malformed())?;
    Ok((method, target))
}

/// Whether a request target names the `$batch` resource itself.
fn is_batch_target(target: &str) -> bool {
    let path = target.split(['?', '#']).next().unwrap_or_default();
    path.rsplit('/')
        .next()
        .is_some_and(|last| last.eq_ignore_ascii_case("$batch"))
}

fn part_content_type(operation: usize, headers: &[(String, String)]) -> BatchError {
    BatchError::PartContentType {
        operation,
        found: header(headers, "content-type").unwrap_or("").to_string(),
    }
}

fn unknown_reference(name: &str) -> BatchError {
    BatchError::UnknownReference {
        reference: format!("${name}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Content-ID references

/// OData's own `$` segments, which are never Content-ID references.
const SYSTEM_SEGMENTS: &[&str] = &[
    "all",
    "batch",
    "count",
    "crossjoin",
    "entity",
    "filter",
    "metadata",
    "ref",
    "root",
    "value",
];

/// The Content-ID a target refers to: `n` for `$n`, `$n/...` or `$n?...`.
fn reference_name(target: &str) -> Option<&str> {
    let rest = target.strip_prefix('$')?;
    let name = rest.split(['/', '?']).next().unwrap_or_default();
    let system = SYSTEM_SEGMENTS.iter().any(|s| s.eq_ignore_ascii_case(name));
    (!name.is_empty() && !system).then_some(name)
}

/// Replaces a leading `$n` with the OData-EntityId URL of the record that the request with
/// Content-ID `n` created. Targets that are not references come back unchanged.
pub fn resolve_reference(
    target: &str,
    created: &HashMap<String, String>,
) -> Result<String, BatchError> {
    let Some(name) = reference_name(target) else {
        return Ok(target.to_string());
    };
    let url = created.get(name).ok_or_else(|| unknown_reference(name))?;
    Ok(format!("{url}{}", &target[1 + name.len()..]))
}

/// Resolves the references in a JSON body: the values of `...@odata.bind` properties (a string
/// or an array of strings) and of `@odata.id`, at any depth, that are `$n` or start with `$n/`.
/// Other string values are data and stay as written, even when they look like `$1`. A body
/// that is not JSON, or holds no reference, comes back byte for byte.
pub fn resolve_body_references(
    body: &[u8],
    created: &HashMap<String, String>,
) -> Result<Vec<u8>, BatchError> {
    let Some(mut json) = json_body(body) else {
        return Ok(body.to_vec());
    };
    let mut changed = false;
    visit_references(&mut json, &mut |value: &mut String| {
        let resolved = resolve_reference(value, created)?;
        if resolved != *value {
            *value = resolved;
            changed = true;
        }
        Ok(())
    })?;
    if !changed {
        return Ok(body.to_vec());
    }
    Ok(serde_json::to_vec(&json).unwrap_or_else(|_| body.to_vec()))
}

/// The Content-IDs referred to in a JSON body's bind and id values.
fn body_reference_names(body: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    if let Some(mut json) = json_body(body) {
        let _ = visit_references(&mut json, &mut |value: &mut String| {
            if let Some(name) = reference_name(value) {
                names.push(name.to_string());
            }
            Ok(())
        });
    }
    names
}

fn json_body(body: &[u8]) -> Option<Json> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first != b'{' && *first != b'[' {
        return None;
    }
    serde_json::from_slice(body).ok()
}

/// Calls `f` on every string that sits where an entity reference belongs.
fn visit_references(
    json: &mut Json,
    f: &mut dyn FnMut(&mut String) -> Result<(), BatchError>,
) -> Result<(), BatchError> {
    match json {
        Json::Object(map) => {
            for (key, value) in map.iter_mut() {
                if key.ends_with("@odata.bind") || key == "@odata.id" {
                    match value {
                        Json::String(s) => f(s)?,
                        Json::Array(items) => {
                            for item in items {
                                if let Json::String(s) = item {
                                    f(s)?;
                                }
                            }
                        }
                        _ => {}
                    }
                } else {
                    visit_references(value, f)?;
                }
            }
        }
        Json::Array(items) => {
            for item in items {
                visit_references(item, f)?;
            }
        }
        _ => {}
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The response

/// The answer to one request of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartResponse {
    /// Echoed as the part's `Content-ID` when present; set it for change-set members.
    pub content_id: Option<String>,
    pub status: u16,
    /// Written in order after the status line, e.g. `OData-Version`, `Location`, `OData-EntityId`.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A top-level member of a batch response, matching the request's [`BatchItem`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseItem {
    Single(PartResponse),
    ChangeSet(Vec<PartResponse>),
}

/// Writes a batch response in Dataverse's shape. Returns the `Content-Type` header value
/// (`multipart/mixed; boundary=batchresponse_<uuid>`) and the body.
pub fn write_batch_response(items: &[ResponseItem]) -> (String, Vec<u8>) {
    write_batch_response_with(items, &mut Uuid::new_v4)
}

fn write_batch_response_with(
    items: &[ResponseItem],
    new_id: &mut dyn FnMut() -> Uuid,
) -> (String, Vec<u8>) {
    let boundary = format!("batchresponse_{}", new_id());
    let mut out = Vec::new();
    for item in items {
        push_line(&mut out, &format!("--{boundary}"));
        match item {
            ResponseItem::Single(response) => write_part(&mut out, response),
            ResponseItem::ChangeSet(responses) => {
                let inner = format!("changesetresponse_{}", new_id());
                push_line(
                    &mut out,
                    &format!("Content-Type: multipart/mixed; boundary={inner}"),
                );
                out.extend_from_slice(b"\r\n");
                for response in responses {
                    push_line(&mut out, &format!("--{inner}"));
                    write_part(&mut out, response);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(format!("--{inner}--").as_bytes());
            }
        }
        out.extend_from_slice(b"\r\n");
    }
    push_line(&mut out, &format!("--{boundary}--"));
    (format!("multipart/mixed; boundary={boundary}"), out)
}

/// One `application/http` part, ending with its body; the caller writes the CRLF that starts
/// the next delimiter.
fn write_part(out: &mut Vec<u8>, response: &PartResponse) {
    push_line(out, "Content-Type: application/http");
    push_line(out, "Content-Transfer-Encoding: binary");
    if let Some(id) = &response.content_id {
        push_line(out, &format!("Content-ID: {}", one_line(id)));
    }
    out.extend_from_slice(b"\r\n");
    let reason = StatusCode::from_u16(response.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    push_line(out, &format!("HTTP/1.1 {} {reason}", response.status));
    for (name, value) in &response.headers {
        push_line(out, &format!("{}: {}", one_line(name), one_line(value)));
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&response.body);
}

fn push_line(out: &mut Vec<u8>, line: &str) {
    out.extend_from_slice(line.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// A header text with its line breaks turned into spaces, so it cannot break the framing.
fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

// ---------------------------------------------------------------------------------------------
// The MIME layer

/// Splits a multipart body into its parts' raw bytes (headers and content), dropping the
/// preamble, the epilogue and the line break that belongs to each delimiter.
fn split_multipart<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<&'a [u8]>, BatchError> {
    let dash = format!("--{boundary}");
    let dash = dash.as_bytes();
    let mut parts = Vec::new();
    let mut current: Option<usize> = None;
    let mut line_start = 0;
    while line_start <= body.len() {
        if let Some((close, next)) = delimiter_at(body, line_start, dash) {
            if let Some(start) = current {
                parts.push(&body[start..content_end(body, start, line_start)]);
            }
            if close {
                return Ok(parts);
            }
            current = Some(next);
            line_start = next;
            continue;
        }
        match body[line_start..].iter().position(|&b| b == b'\n') {
            Some(i) => line_start += i + 1,
            None => break,
        }
    }
    Err(match current {
        None => BatchError::MissingDelimiter {
            boundary: boundary.to_string(),
        },
        Some(_) => BatchError::MissingCloseDelimiter {
            boundary: boundary.to_string(),
        },
    })
}

/// Whether the line at `at` is a delimiter: `--boundary` or `--boundary--`, then transport
/// padding and the end of the line. Returns whether it closes, and where the next line starts.
fn delimiter_at(body: &[u8], at: usize, dash: &[u8]) -> Option<(bool, usize)> {
    let rest = body.get(at..)?.strip_prefix(dash)?;
    let (close, rest) = match rest.strip_prefix(b"--") {
        Some(after) => (true, after),
        None => (false, rest),
    };
    let padding = rest
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    let rest = &rest[padding..];
    let line_break = match rest {
        [] => 0,
        [b'\n', ..] => 1,
        [b'\r'] => 1,
        [b'\r', b'\n', ..] => 2,
        _ => return None,
    };
    Some((close, body.len() - rest.len() + line_break))
}

/// Where a part's content ends: before the line break that precedes the delimiter at `line`.
fn content_end(body: &[u8], start: usize, line: usize) -> usize {
    let mut end = line;
    if end > start && body[end - 1] == b'\n' {
        end -= 1;
        if end > start && body[end - 1] == b'\r' {
            end -= 1;
        }
    }
    end
}

/// Splits off the first line, without its line break.
fn split_line(bytes: &[u8]) -> (&[u8], &[u8]) {
    match bytes.iter().position(|&b| b == b'\n') {
        Some(i) => (
            bytes[..i].strip_suffix(b"\r").unwrap_or(&bytes[..i]),
            &bytes[i + 1..],
        ),
        None => (bytes.strip_suffix(b"\r").unwrap_or(bytes), &[]),
    }
}

/// The bytes after a leading line break, if `bytes` starts with one.
fn strip_line_break(bytes: &[u8]) -> Option<&[u8]> {
    bytes
        .strip_prefix(b"\r\n")
        .or_else(|| bytes.strip_prefix(b"\n"))
}

/// Header lines in order, as `(name, value)`.
type Headers = Vec<(String, String)>;

/// Reads header lines up to the first empty line (or the end) and returns them with the bytes
/// after that line. Folded lines (starting with a space or tab) continue the previous header.
fn split_headers(bytes: &[u8], operation: usize) -> Result<(Headers, &[u8]), BatchError> {
    let mut headers: Headers = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (line, after) = split_line(rest);
        rest = after;
        if line.is_empty() {
            break;
        }
        let malformed = || BatchError::MalformedHeader {
            operation,
            line: String::from_utf8_lossy(line).into_owned(),
        };
        let text = std::str::from_utf8(line).map_err(|_| malformed())?;
        if text.starts_with([' ', '\t']) {
            let (_, value) = headers.last_mut().ok_or_else(malformed)?;
            value.push(' ');
            value.push_str(text.trim());
            continue;
        }
        let (name, value) = text.split_once(':').ok_or_else(malformed)?;
        if !is_token(name) {
            return Err(malformed());
        }
        headers.push((name.to_string(), value.trim().to_string()));
    }
    Ok((headers, rest))
}

/// The value of the first header called `name` (compared case-insensitively).
fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// RFC 9110 `token`: the characters of a header name or a method.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A media type, lower-cased, and its parameters (names lower-cased, values unquoted).
fn parse_media_type(value: &str) -> (String, Vec<(String, String)>) {
    let mut pieces = split_unquoted(value, ';').into_iter();
    let media_type = pieces
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let params = pieces
        .filter_map(|piece| {
            let (name, value) = piece.split_once('=')?;
            Some((name.trim().to_ascii_lowercase(), unquote(value.trim())))
        })
        .collect();
    (media_type, params)
}

/// Splits on `separator` where it is not inside a quoted string.
fn split_unquoted(text: &str, separator: char) -> Vec<&str> {
    let mut pieces = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == separator && !quoted => {
                pieces.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    pieces.push(&text[start..]);
    pieces
}

fn unquote(value: &str) -> String {
    let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return value.to_string();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        out.push(if c == '\\' {
            chars.next().unwrap_or('\\')
        } else {
            c
        });
    }
    out
}

/// The checked `boundary` parameter of a multipart Content-Type (RFC 2046 §5.1.1).
fn boundary_of(params: &[(String, String)], of: &'static str) -> Result<String, BatchError> {
    let boundary = params
        .iter()
        .find(|(name, _)| name == "boundary")
        .map(|(_, value)| value.clone())
        .ok_or(BatchError::MissingBoundary { of })?;
    let valid = (1..=70).contains(&boundary.len())
        && !boundary.ends_with(' ')
        && boundary
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(&b));
    if !valid {
        return Err(BatchError::InvalidBoundary { boundary });
    }
    Ok(boundary)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the contract, section 9, with CRLF line endings.
    const CONTRACT_EXAMPLE: &str = "--batch_A\r\n\
Content-Type: multipart/mixed; boundary=\"changeset_B\"\r\n\
\r\n\
--changeset_B\r\n\
Content-Type: application/http\r\n\
Content-Transfer-Encoding: binary\r\n\
Content-ID: 1\r\n\
\r\n\
POST /api/data/v9.2/msdyn_smsengagementctxes HTTP/1.1\r\n\
Content-Type: application/json; type=entry\r\n\
\r\n\
{\"msdyn_name\":\"in batch\"}\r\n\
--changeset_B\r\n\
Content-Type: application/http\r\n\
Content-Transfer-Encoding: binary\r\n\
Content-ID: 2\r\n\
\r\n\
PATCH $1 HTTP/1.1\r\n\
Content-Type: application/json\r\n\
\r\n\
{\"msdyn_countrycode\":\"44\"}\r\n\
--changeset_B--\r\n\
--batch_A\r\n\
Content-Type: application/http\r\n\
Content-Transfer-Encoding: binary\r\n\
\r\n\
GET /api/data/v9.2/msdyn_smsengagementctxes?$select=msdyn_name HTTP/1.1\r\n\
\r\n\
\r\n\
--batch_A--\r\n";

    const CONTENT_TYPE: &str = "multipart/mixed; boundary=\"batch_A\"";

    fn part(
        id: Option<&str>,
        method: Method,
        target: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Part {
        Part {
            content_id: id.map(str::to_string),
            method,
            target: target.to_string(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    fn contract_items() -> Vec<BatchItem> {
        vec![
            BatchItem::ChangeSet {
                boundary: "changeset_B".to_string(),
                parts: vec![
                    part(
                        Some("1"),
                        Method::POST,
                        "/api/data/v9.2/msdyn_smsengagementctxes",
                        &[("Content-Type", "application/json; type=entry")],
                        "{\"msdyn_name\":\"in batch\"}",
                    ),
                    part(
                        Some("2"),
                        Method::PATCH,
                        "$1",
                        &[("Content-Type", "application/json")],
                        "{\"msdyn_countrycode\":\"44\"}",
                    ),
                ],
            },
            BatchItem::Request(part(
                None,
                Method::GET,
                "/api/data/v9.2/msdyn_smsengagementctxes?$select=msdyn_name",
                &[],
                "",
            )),
        ]
    }

    /// Builds a batch body from lines joined by CRLF.
    fn crlf(lines: &[&str]) -> String {
        lines.join("\r\n")
    }

    /// The one error helper: `body` under `content_type` is refused with `expected`.
    fn check_error(content_type: &str, body: &str, expected: BatchError) {
        assert_eq!(
            parse_batch(content_type, body.as_bytes()),
            Err(expected),
            "body:\n{body}"
        );
    }

    /// A batch holding one change set made of `requests`, each `(content id, request text)`.
    fn change_set(requests: &[(Option<&str>, &str)]) -> String {
        let mut body =
            String::from("--batch_A\r\nContent-Type: multipart/mixed; boundary=cs\r\n\r\n");
        for (id, request) in requests {
            body.push_str(
                "--cs\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n",
            );
            if let Some(id) = id {
                body.push_str(&format!("Content-ID: {id}\r\n"));
            }
            body.push_str("\r\n");
            body.push_str(request);
            body.push_str("\r\n");
        }
        body.push_str("--cs--\r\n--batch_A--\r\n");
        body
    }

    /// A batch of top-level requests, each given as its `application/http` content.
    #[test]
    fn a_request_url_may_hold_unencoded_spaces() {
        let (method, target) = parse_request_line(
            b"GET /api/data/v9.2/accounts?$filter=name eq 'a  b' HTTP/1.1",
            1,
        )
        .unwrap();
        assert_eq!(method, Method::GET);
        assert_eq!(
            target,
            "/api/data/v9.2/accounts?$filter=name%20eq%20'a%20%20b'"
        );
        assert!(parse_request_line(b"GET  HTTP/1.1", 1).is_err());
    }

    fn singles(requests: &[&str]) -> String {
        let mut body = String::new();
        for request in requests {
            body.push_str("--batch_A\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n");
            body.push_str(request);
            body.push_str("\r\n");
        }
        body.push_str("--batch_A--\r\n");
        body
    }

    #[test]
    fn the_contract_example_parses() {
        let items = parse_batch(CONTENT_TYPE, CONTRACT_EXAMPLE.as_bytes()).unwrap();
        assert_eq!(items, contract_items());
    }

    #[test]
    fn bare_lf_line_endings_parse_the_same() {
        let lf = CONTRACT_EXAMPLE.replace("\r\n", "\n");
        assert_eq!(
            parse_batch(CONTENT_TYPE, lf.as_bytes()).unwrap(),
            contract_items()
        );
        // Mixed: CRLF delimiters, LF inside the parts.
        let mixed = CONTRACT_EXAMPLE
            .replace("\r\nContent-Type", "\nContent-Type")
            .replace("\r\n\r\n{", "\n\n{");
        assert_eq!(
            parse_batch(CONTENT_TYPE, mixed.as_bytes()).unwrap(),
            contract_items()
        );
    }

    #[test]
    fn unquoted_boundary_preamble_epilogue_padding_and_tolerances() {
        let body = "This is a preamble that clients may write.\r\n\
--batch_A \t\r\n\
content-type:multipart/mixed;BOUNDARY=changeset_B\r\n\
\r\n\
ignored changeset preamble\r\n\
--changeset_B\r\n\
Content-Transfer-Encoding:binary\r\n\
Content-Type:application/http; msgtype=request\r\n\
\r\n\
POST /api/data/v9.2/msdyn_smsengagementctxes HTTP/1.1\r\n\
Content-ID: 1\r\n\
Content-Type: application/json; type=entry\r\n\
\r\n\
{\"msdyn_name\":\"in batch\"}\r\n\
--changeset_B\r\n\
Content-Type: application/http\r\n\
Content-ID:2\r\n\
\r\n\
patch $1 HTTP/1.1\r\n\
Content-Type: application/json\r\n\
\r\n\
{\"msdyn_countrycode\":\"44\"}\r\n\
--changeset_B--   \r\n\
changeset epilogue\r\n\
--batch_A\r\n\
Content-Type: application/http\r\n\
Content-Transfer-Encoding: binary\r\n\
\r\n\
GET /api/data/v9.2/msdyn_smsengagementctxes?$select=msdyn_name HTTP/1.1\r\n\
\r\n\
\r\n\
--batch_A--\r\n\
and an epilogue, with --batch_A inside it";
        let items = parse_batch("Multipart/Mixed;boundary=batch_A", body.as_bytes()).unwrap();
        let mut expected = contract_items();
        if let BatchItem::ChangeSet { parts, .. } = &mut expected[0] {
            // The Content-ID written among the inner headers is kept there too.
            parts[0]
                .headers
                .insert(0, ("Content-ID".into(), "1".into()));
        }
        assert_eq!(items, expected);
    }

    #[test]
    fn targets_keep_their_form_and_headers_fold() {
        let body = singles(&[
            "GET https://org.example.com/api/data/v9.2/msdyn_smsengagementctxes(00000000-0000-0000-0000-000000000001) HTTP/1.1\r\nAccept: application/json\r\nPrefer: odata.include-annotations=\"*\",\r\n  return=representation\r\n",
            "\r\n\r\nDELETE msdyn_smsengagementctxes(00000000-0000-0000-0000-000000000002) HTTP/1.1\r\n",
        ]);
        let items = parse_batch(CONTENT_TYPE, body.as_bytes()).unwrap();
        assert_eq!(
            items,
            vec![
                BatchItem::Request(part(
                    None,
                    Method::GET,
                    "https://org.example.com/api/data/v9.2/msdyn_smsengagementctxes(00000000-0000-0000-0000-000000000001)",
                    &[
                        ("Accept", "application/json"),
                        ("Prefer", "odata.include-annotations=\"*\", return=representation")
                    ],
                    "",
                )),
                BatchItem::Request(part(
                    None,
                    Method::DELETE,
                    "msdyn_smsengagementctxes(00000000-0000-0000-0000-000000000002)",
                    &[],
                    "",
                )),
            ]
        );
    }

    #[test]
    fn bodies_are_kept_byte_for_byte() {
        let binary: Vec<u8> = (0u8..=255).filter(|&b| b != b'\n').collect();
        let mut body =
            b"--batch_A\r\nContent-Type: application/http\r\n\r\nPOST /x HTTP/1.1\r\n\r\n".to_vec();
        body.extend_from_slice(&binary);
        body.extend_from_slice(b"\r\n\r\n--batch_A--");
        let items = parse_batch(CONTENT_TYPE, &body).unwrap();
        let BatchItem::Request(part) = &items[0] else {
            panic!("expected a request")
        };
        let mut expected = binary.clone();
        expected.extend_from_slice(b"\r\n");
        assert_eq!(part.body, expected);
    }

    #[test]
    fn an_empty_batch_has_no_items() {
        assert_eq!(
            parse_batch(CONTENT_TYPE, b"--batch_A--\r\n").unwrap(),
            vec![]
        );
    }

    #[test]
    fn every_error() {
        use BatchError as E;
        check_error(
            "application/json",
            "{}",
            E::NotMultipartMixed {
                content_type: "application/json".into(),
            },
        );
        check_error("multipart/mixed", "", E::MissingBoundary { of: "batch" });
        check_error(
            "multipart/mixed; boundary=\"\"",
            "",
            E::InvalidBoundary {
                boundary: String::new(),
            },
        );
        let long = "b".repeat(71);
        check_error(
            &format!("multipart/mixed; boundary={long}"),
            "",
            E::InvalidBoundary { boundary: long },
        );
        check_error(
            "multipart/mixed; boundary=\"a{b}\"",
            "",
            E::InvalidBoundary {
                boundary: "a{b}".into(),
            },
        );
        check_error(
            CONTENT_TYPE,
            "--batch_AB\r\n--batch_AB--",
            E::MissingDelimiter {
                boundary: "batch_A".into(),
            },
        );
        check_error(
            CONTENT_TYPE,
            "--batch_A\r\nContent-Type: application/http\r\n\r\nGET /x HTTP/1.1\r\n\r\n",
            E::MissingCloseDelimiter {
                boundary: "batch_A".into(),
            },
        );
        check_error(
            CONTENT_TYPE,
            "--batch_A\r\nContent-Type: multipart/mixed; boundary=cs\r\n\r\n--cs\r\nContent-Type: application/http\r\n\r\nPOST /x HTTP/1.1\r\n\r\n{}\r\n--batch_A--",
            E::MissingCloseDelimiter { boundary: "cs".into() },
        );
        check_error(
            CONTENT_TYPE,
            "--batch_A\r\nContent-Type: multipart/mixed\r\n\r\n--batch_A--",
            E::MissingBoundary { of: "change set" },
        );
        check_error(
            CONTENT_TYPE,
            "--batch_A\r\nContent-Type: text/plain\r\n\r\nGET /x HTTP/1.1\r\n--batch_A--",
            E::PartContentType {
                operation: 1,
                found: "text/plain".into(),
            },
        );
        check_error(
            CONTENT_TYPE,
            "--batch_A\r\n\r\nGET /x HTTP/1.1\r\n--batch_A--",
            E::PartContentType {
                operation: 1,
                found: String::new(),
            },
        );
        check_error(
            CONTENT_TYPE,
            "--batch_A\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: base64\r\n\r\nR0VUIC94IEhUVFAvMS4x\r\n--batch_A--",
            E::UnsupportedTransferEncoding {
                operation: 1,
                encoding: "base64".into(),
            },
        );
        check_error(
            CONTENT_TYPE,
            "--batch_A\r\nContent-Type: multipart/mixed; boundary=cs\r\n\r\n--cs\r\nContent-Type: multipart/mixed; boundary=inner\r\n\r\n--inner--\r\n--cs--\r\n--batch_A--",
            E::NestedChangeSet { operation: 1 },
        );
        check_error(
            CONTENT_TYPE,
            &singles(&["POST /api/data/v9.2/$batch HTTP/1.1\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x--"]),
            E::NestedBatch { operation: 1 },
        );
        for line in [
            "GET",
            "GET /x",
            "GET /x HTTP/1.1 extra",
            "G(T /x HTTP/1.1",
            "GET /x HTTPS",
        ] {
            check_error(
                CONTENT_TYPE,
                &singles(&[line]),
                E::MalformedRequestLine {
                    operation: 1,
                    line: line.into(),
                },
            );
        }
        check_error(
            CONTENT_TYPE,
            &singles(&["GET /x HTTP/1.1", "GET /x HTTP/2"]),
            E::UnsupportedHttpVersion {
                operation: 2,
                version: "HTTP/2".into(),
            },
        );
        check_error(
            CONTENT_TYPE,
            &singles(&["GET /x HTTP/1.1\r\nno colon here"]),
            E::MalformedHeader {
                operation: 1,
                line: "no colon here".into(),
            },
        );
        check_error(
            CONTENT_TYPE,
            &singles(&["GET /x HTTP/1.1\r\nBad Name: v"]),
            E::MalformedHeader {
                operation: 1,
                line: "Bad Name: v".into(),
            },
        );
        check_error(
            CONTENT_TYPE,
            "--batch_A\r\n continued: nothing\r\n\r\nGET /x HTTP/1.1\r\n--batch_A--",
            E::MalformedHeader {
                operation: 1,
                line: " continued: nothing".into(),
            },
        );
        check_error(
            CONTENT_TYPE,
            &change_set(&[
                (Some("1"), "POST /a HTTP/1.1\r\n\r\n{}"),
                (None, "GET /a HTTP/1.1\r\n"),
            ]),
            E::ReadInChangeSet {
                operation: 2,
                method: "GET".into(),
            },
        );
        let many = vec!["GET /x HTTP/1.1\r\n"; 1001];
        check_error(
            CONTENT_TYPE,
            &singles(&many),
            E::TooManyOperations { limit: 1000 },
        );
        assert_eq!(
            parse_batch(CONTENT_TYPE, singles(&many[..1000]).as_bytes())
                .unwrap()
                .len(),
            1000
        );
        let in_change_sets = format!(
            "{}{}",
            change_set(&vec![(None, "POST /a HTTP/1.1\r\n\r\n{}"); 600])
                .trim_end_matches("--batch_A--\r\n"),
            change_set(&vec![(None, "POST /a HTTP/1.1\r\n\r\n{}"); 401])
        );
        check_error(
            CONTENT_TYPE,
            &in_change_sets,
            E::TooManyOperations { limit: 1000 },
        );
        check_error(
            CONTENT_TYPE,
            &change_set(&[(Some("2"), "PATCH $1 HTTP/1.1\r\n\r\n{}")]),
            E::UnknownReference {
                reference: "$1".into(),
            },
        );
        check_error(
            CONTENT_TYPE,
            &singles(&["PATCH $1/msdyn_name HTTP/1.1\r\n\r\n{}"]),
            E::UnknownReference {
                reference: "$1".into(),
            },
        );
        check_error(
            CONTENT_TYPE,
            &change_set(&[
                (Some("1"), "POST /a HTTP/1.1\r\n\r\n{}"),
                (Some("1"), "POST /a HTTP/1.1\r\n\r\n{}"),
            ]),
            E::DuplicateContentId {
                operation: 2,
                content_id: "1".into(),
            },
        );
    }

    #[test]
    fn a_reference_must_be_declared_earlier_in_the_same_change_set() {
        // Microsoft's example: the phone call binds to `$1`, which the next request declares.
        let early = change_set(&[
            (
                Some("2"),
                "POST /api/data/v9.2/phonecalls HTTP/1.1\r\nContent-Type: application/json;type=entry\r\n\r\n{\"phonenumber\":\"911\",\"regardingobjectid_account_phonecall@odata.bind\":\"$1\"}",
            ),
            (Some("1"), "POST /api/data/v9.2/accounts HTTP/1.1\r\n\r\n{\"name\":\"QQQQ\"}"),
        ]);
        let error = parse_batch(CONTENT_TYPE, early.as_bytes()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "Content-ID Reference: '$1' does not exist in the batch context."
        );
        // A part cannot refer to itself, nor to another change set.
        let own = change_set(&[(Some("1"), "PATCH $1 HTTP/1.1\r\n\r\n{}")]);
        assert!(matches!(
            parse_batch(CONTENT_TYPE, own.as_bytes()),
            Err(BatchError::UnknownReference { .. })
        ));
        let two = format!(
            "{}{}",
            change_set(&[(Some("1"), "POST /a HTTP/1.1\r\n\r\n{}")])
                .trim_end_matches("--batch_A--\r\n"),
            change_set(&[(Some("2"), "PATCH $1 HTTP/1.1\r\n\r\n{}")])
        );
        assert!(matches!(
            parse_batch(CONTENT_TYPE, two.as_bytes()),
            Err(BatchError::UnknownReference { .. })
        ));
        // Declared earlier: in URLs, binds (single and collection) and `@odata.id`.
        let fine = change_set(&[
            (Some("1"), "POST /api/data/v9.2/accounts HTTP/1.1\r\n\r\n{}"),
            (Some("2"), "POST /api/data/v9.2/contacts HTTP/1.1\r\n\r\n{\"parentcustomerid_account@odata.bind\":\"$1\"}"),
            (Some("3"), "PUT $1/primarycontactid/$ref HTTP/1.1\r\n\r\n{\"@odata.id\":\"$2\"}"),
            (None, "PATCH $1?$select=name HTTP/1.1\r\n\r\n{\"contact_customer_accounts@odata.bind\":[\"$2\"],\"name\":\"$9\"}"),
            (None, "POST $metadata HTTP/1.1\r\n"),
        ]);
        let items = parse_batch(CONTENT_TYPE, fine.as_bytes()).unwrap();
        let BatchItem::ChangeSet { parts, .. } = &items[0] else {
            panic!("expected a change set")
        };
        assert_eq!(parts.len(), 5);
        assert_eq!(parts[4].target, "$metadata");
    }

    #[test]
    fn limits_given_by_the_caller() {
        let limits = Limits {
            max_operations: 2,
            max_batch_bytes: 10_000,
            max_part_body_bytes: 10,
        };
        let parse = |body: &str| parse_batch_with(CONTENT_TYPE, body.as_bytes(), &limits);
        assert!(parse(&singles(&["POST /x HTTP/1.1\r\n\r\n0123456789"])).is_ok());
        assert_eq!(
            parse(&singles(&[
                "GET /x HTTP/1.1",
                "POST /x HTTP/1.1\r\n\r\n0123456789A"
            ])),
            Err(BatchError::PartBodyTooLarge {
                operation: 2,
                limit: 10
            })
        );
        assert_eq!(
            parse(&singles(&["GET /x HTTP/1.1"; 3])),
            Err(BatchError::TooManyOperations { limit: 2 })
        );
        assert_eq!(
            parse(&"x".repeat(10_001)),
            Err(BatchError::BatchTooLarge { limit: 10_000 })
        );
    }

    fn created() -> HashMap<String, String> {
        HashMap::from([
            (
                "1".to_string(),
                "https://org/api/data/v9.2/accounts(11111111-1111-1111-1111-111111111111)"
                    .to_string(),
            ),
            (
                "10".to_string(),
                "https://org/api/data/v9.2/contacts(22222222-2222-2222-2222-222222222222)"
                    .to_string(),
            ),
        ])
    }

    #[test]
    fn references_resolve_in_urls() {
        let created = created();
        let resolve = |target: &str| resolve_reference(target, &created);
        let account = "https://org/api/data/v9.2/accounts(11111111-1111-1111-1111-111111111111)";
        assert_eq!(resolve("$1").unwrap(), account);
        assert_eq!(
            resolve("$1/lastname").unwrap(),
            format!("{account}/lastname")
        );
        assert_eq!(
            resolve("$1?$select=name").unwrap(),
            format!("{account}?$select=name")
        );
        assert_eq!(
            resolve("$10/primarycontactid/$ref").unwrap(),
            "https://org/api/data/v9.2/contacts(22222222-2222-2222-2222-222222222222)/primarycontactid/$ref"
        );
        for unchanged in [
            "/api/data/v9.2/accounts",
            "accounts",
            "$metadata",
            "$batch",
            "https://x/$1",
            "",
        ] {
            assert_eq!(resolve(unchanged).unwrap(), unchanged);
        }
        let error = resolve("$2/name").unwrap_err();
        assert_eq!(
            error,
            BatchError::UnknownReference {
                reference: "$2".into()
            }
        );
        assert_eq!(
            error.to_string(),
            "Content-ID Reference: '$2' does not exist in the batch context."
        );
    }

    #[test]
    fn references_resolve_in_bodies() {
        let created = created();
        let resolve = |body: &str| {
            resolve_body_references(body.as_bytes(), &created)
                .map(|b| String::from_utf8(b).unwrap())
        };
        let account = "https://org/api/data/v9.2/accounts(11111111-1111-1111-1111-111111111111)";
        let contact = "https://org/api/data/v9.2/contacts(22222222-2222-2222-2222-222222222222)";
        assert_eq!(
            resolve(r#"{"name":"$1","originatingleadid@odata.bind":"$1","primarycontactid@odata.bind":"$10"}"#).unwrap(),
            format!(r#"{{"name":"$1","originatingleadid@odata.bind":"{account}","primarycontactid@odata.bind":"{contact}"}}"#)
        );
        assert_eq!(
            resolve(r#"{"@odata.id":"$10"}"#).unwrap(),
            format!(r#"{{"@odata.id":"{contact}"}}"#)
        );
        assert_eq!(
            resolve(r#"{"x@odata.bind":["$1/child","accounts(1)"],"deep":{"y@odata.bind":"$10"},"list":[{"@odata.id":"$1"}]}"#).unwrap(),
            format!(r#"{{"x@odata.bind":["{account}/child","accounts(1)"],"deep":{{"y@odata.bind":"{contact}"}},"list":[{{"@odata.id":"{account}"}}]}}"#)
        );
        // Without a reference, or when not JSON, the body comes back byte for byte.
        for same in [
            "{ \"revenue\": 1.50, \"a@odata.bind\": \"accounts(1)\" }",
            "not json $1",
            "",
            "[1, 2]",
        ] {
            assert_eq!(resolve(same).unwrap(), same);
        }
        assert_eq!(
            resolve(r#"{"a@odata.bind":"$3"}"#),
            Err(BatchError::UnknownReference {
                reference: "$3".into()
            })
        );
    }

    fn response(
        id: Option<&str>,
        status: u16,
        headers: &[(&str, &str)],
        body: &str,
    ) -> PartResponse {
        PartResponse {
            content_id: id.map(str::to_string),
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    fn counter_ids() -> impl FnMut() -> Uuid {
        let mut n = 0u128;
        move || {
            n += 1;
            Uuid::from_u128(n)
        }
    }

    #[test]
    fn the_response_has_dataverse_s_shape() {
        let entity = "https://org/api/data/v9.2/msdyn_smsengagementctxes(00000000-0000-0000-0000-0000000000aa)";
        let items = vec![
            ResponseItem::ChangeSet(vec![
                response(
                    Some("1"),
                    204,
                    &[
                        ("OData-Version", "4.0"),
                        ("Location", entity),
                        ("OData-EntityId", entity),
                    ],
                    "",
                ),
                response(Some("2"), 204, &[("OData-Version", "4.0")], ""),
            ]),
            ResponseItem::Single(response(
                None,
                200,
                &[
                    (
                        "Content-Type",
                        "application/json; odata.metadata=minimal; odata.streaming=true",
                    ),
                    ("OData-Version", "4.0"),
                ],
                "{\"value\":[]}",
            )),
        ];
        let (content_type, body) = write_batch_response_with(&items, &mut counter_ids());
        assert_eq!(
            content_type,
            "multipart/mixed; boundary=batchresponse_00000000-0000-0000-0000-000000000001"
        );
        let expected = crlf(&[
            "--batchresponse_00000000-0000-0000-0000-000000000001",
            "Content-Type: multipart/mixed; boundary=changesetresponse_00000000-0000-0000-0000-000000000002",
            "",
            "--changesetresponse_00000000-0000-0000-0000-000000000002",
            "Content-Type: application/http",
            "Content-Transfer-Encoding: binary",
            "Content-ID: 1",
            "",
            "HTTP/1.1 204 No Content",
            "OData-Version: 4.0",
            &format!("Location: {entity}"),
            &format!("OData-EntityId: {entity}"),
            "",
            "",
            "--changesetresponse_00000000-0000-0000-0000-000000000002",
            "Content-Type: application/http",
            "Content-Transfer-Encoding: binary",
            "Content-ID: 2",
            "",
            "HTTP/1.1 204 No Content",
            "OData-Version: 4.0",
            "",
            "",
            "--changesetresponse_00000000-0000-0000-0000-000000000002--",
            "--batchresponse_00000000-0000-0000-0000-000000000001",
            "Content-Type: application/http",
            "Content-Transfer-Encoding: binary",
            "",
            "HTTP/1.1 200 OK",
            "Content-Type: application/json; odata.metadata=minimal; odata.streaming=true",
            "OData-Version: 4.0",
            "",
            "{\"value\":[]}",
            "--batchresponse_00000000-0000-0000-0000-000000000001--",
            "",
        ]);
        assert_eq!(String::from_utf8(body).unwrap(), expected);
        let (content_type, body) = write_batch_response(&items);
        assert!(content_type.starts_with("multipart/mixed; boundary=batchresponse_"));
        assert_eq!(read_response(&content_type, &body), items);
    }

    /// A reader of batch responses for the round trip, built on the MIME layer.
    fn read_response(content_type: &str, body: &[u8]) -> Vec<ResponseItem> {
        let (media_type, params) = parse_media_type(content_type);
        assert_eq!(media_type, "multipart/mixed");
        let boundary = boundary_of(&params, "batch").unwrap();
        assert!(boundary.starts_with("batchresponse_"));
        split_multipart(body, &boundary)
            .unwrap()
            .into_iter()
            .map(|raw| {
                let (headers, content) = split_headers(raw, 0).unwrap();
                let (kind, params) = parse_media_type(header(&headers, "content-type").unwrap());
                if kind == "multipart/mixed" {
                    let inner = boundary_of(&params, "change set").unwrap();
                    assert!(inner.starts_with("changesetresponse_"));
                    ResponseItem::ChangeSet(
                        split_multipart(content, &inner)
                            .unwrap()
                            .into_iter()
                            .map(read_part_response)
                            .collect(),
                    )
                } else {
                    ResponseItem::Single(read_part_response(raw))
                }
            })
            .collect()
    }

    fn read_part_response(raw: &[u8]) -> PartResponse {
        let (mime, content) = split_headers(raw, 0).unwrap();
        assert_eq!(header(&mime, "content-type"), Some("application/http"));
        assert_eq!(header(&mime, "content-transfer-encoding"), Some("binary"));
        let (status_line, rest) = split_line(content);
        let status_line = std::str::from_utf8(status_line).unwrap();
        let mut words = status_line.splitn(3, ' ');
        assert_eq!(words.next(), Some("HTTP/1.1"));
        let status: u16 = words.next().unwrap().parse().unwrap();
        let reason = words.next().unwrap();
        assert_eq!(
            reason,
            StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("")
        );
        let (headers, body) = split_headers(rest, 0).unwrap();
        PartResponse {
            content_id: header(&mime, "content-id").map(str::to_string),
            status,
            headers,
            body: body.to_vec(),
        }
    }

    #[test]
    fn responses_round_trip() {
        let mut rng = Rng(0x5eed);
        let statuses = [200, 201, 204, 400, 403, 404, 412, 429, 500, 299];
        for _ in 0..300 {
            let next_response = |rng: &mut Rng, id: Option<String>| PartResponse {
                content_id: id,
                status: statuses[rng.below(statuses.len())],
                headers: (0..rng.below(4))
                    .map(|i| (format!("X-Header-{i}"), format!("value {}", rng.next())))
                    .collect(),
                body: (0..rng.below(64)).map(|_| rng.byte()).collect(),
            };
            let items: Vec<ResponseItem> = (0..rng.below(5))
                .map(|_| {
                    if rng.below(2) == 0 {
                        ResponseItem::Single(next_response(&mut rng, None))
                    } else {
                        ResponseItem::ChangeSet(
                            (1..=1 + rng.below(3))
                                .map(|i| next_response(&mut rng, Some(i.to_string())))
                                .collect(),
                        )
                    }
                })
                .collect();
            let (content_type, body) = write_batch_response(&items);
            assert_eq!(read_response(&content_type, &body), items);
        }
    }

    #[test]
    fn response_headers_cannot_break_the_framing() {
        let items = vec![ResponseItem::Single(response(
            Some("a\r\n--x"),
            418,
            &[("X-Evil", "one\r\n\r\ntwo")],
            "",
        ))];
        let (content_type, body) = write_batch_response(&items);
        let read = read_response(&content_type, &body);
        assert_eq!(
            read,
            vec![ResponseItem::Single(response(
                Some("a  --x"),
                418,
                &[("X-Evil", "one    two")],
                "",
            ))]
        );
    }

    /// A small deterministic generator (splitmix64), so the garbage tests need no dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn byte(&mut self) -> u8 {
            self.next() as u8
        }
    }

    /// Bytes that matter to the grammar, so mutations reach the interesting branches.
    const PIECES: &[&[u8]] = &[
        b"\r\n",
        b"\n",
        b"\r",
        b"--",
        b"--batch_A",
        b"--changeset_B",
        b"--batch_A--",
        b"--changeset_B--",
        b":",
        b" ",
        b"\t",
        b"$1",
        b"$2/",
        b"HTTP/1.1",
        b"GET ",
        b"Content-Type: multipart/mixed; boundary=changeset_B",
        b"Content-Type: application/http",
        b"Content-ID: 1",
        b"{\"a@odata.bind\":\"$1\"}",
        b"\"",
        b"\xff\xfe",
    ];

    fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
        let mut bytes = input.to_vec();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(bytes.len() + 1);
            match rng.below(5) {
                0 if !bytes.is_empty() => {
                    let at = at.min(bytes.len() - 1);
                    bytes[at] = rng.byte();
                }
                1 => {
                    let end = (at + rng.below(16)).min(bytes.len());
                    bytes.drain(at..end);
                }
                2 => {
                    let piece = PIECES[rng.below(PIECES.len())];
                    bytes.splice(at..at, piece.iter().copied());
                }
                3 => bytes.truncate(at),
                _ => {
                    let end = (at + rng.below(32)).min(bytes.len());
                    let copy = bytes[at..end].to_vec();
                    let to = rng.below(bytes.len() + 1);
                    bytes.splice(to..to, copy);
                }
            }
        }
        bytes
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = Rng(42);
        let created = created();
        let content_types = [
            CONTENT_TYPE,
            "multipart/mixed; boundary=\"batch_A",
            "multipart/mixed; boundary=\"\\",
            "multipart/mixed;;;=;boundary=",
            "",
            "\"",
        ];
        for _ in 0..3000 {
            let garbage: Vec<u8> = (0..rng.below(200)).map(|_| rng.byte()).collect();
            let content_type = content_types[rng.below(content_types.len())];
            let _ = parse_batch(content_type, &garbage);
            let _ = resolve_body_references(&garbage, &created);
            let _ = resolve_reference(&String::from_utf8_lossy(&garbage), &created);
        }
        let seeds = [
            CONTRACT_EXAMPLE.to_string(),
            CONTRACT_EXAMPLE.replace("\r\n", "\n"),
            change_set(&[
                (Some("1"), "POST /a HTTP/1.1\r\n\r\n{}"),
                (
                    Some("2"),
                    "PATCH $1 HTTP/1.1\r\n\r\n{\"x@odata.bind\":\"$1\"}",
                ),
            ]),
        ];
        let mut accepted = 0;
        for _ in 0..20_000 {
            let seed = seeds[rng.below(seeds.len())].as_bytes();
            let body = mutate(&mut rng, seed);
            if let Ok(items) = parse_batch(CONTENT_TYPE, &body) {
                accepted += 1;
                for item in &items {
                    if let BatchItem::ChangeSet { parts, .. } = item {
                        for part in parts {
                            let _ = resolve_reference(&part.target, &created);
                            let _ = resolve_body_references(&part.body, &created);
                        }
                    }
                }
            }
        }
        // The mutations are small enough that some bodies stay valid.
        assert!(accepted > 100, "only {accepted} mutated bodies parsed");
    }
}
