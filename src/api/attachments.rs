//! Files from agents: `POST /api/v1/conversations/{id}/attachments` (multipart, one part
//! named `file`) and `GET /files/{id}/{name}`, where agents' pages read them back.
//!
//! The bytes go to the [`FileStore`] (durable before the message is committed), the
//! message with its attachment into the transcript, and, for a Messenger customer, the
//! file into the outbox ([`MessengerCommand::SendFile`]). The file's URL is a capability:
//! its id is 128 random bits, and it is served to whoever has it, as agents' `<img>` tags
//! cannot send a bearer token (docs/API-NOTES.md "Files from agents").

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use futures_util::StreamExt;

use super::auth::{Caller, Tenanted};
use super::dto::MessageDto;
use super::error::{ApiError, ErrorBody};
use super::rest::{id, unexpected, Res};
use super::AppState;
use crate::channels::files::FileError;
use crate::core::messenger::{attachment_kind, MessengerCommand, OutboundFile};
use crate::core::{Attachment, Command, Reply};

/// Room for the multipart framing around the file (boundaries, part headers).
const FRAMING_BYTES: usize = 16 * 1024;

fn too_large(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "attachment_too_large",
        format!("a file may be at most {max} bytes (messenger.max_attachment_bytes)"),
    )
}

fn missing() -> ApiError {
    ApiError::bad_request(
        "missing_file",
        "the body must be multipart/form-data with one part named `file` (a file)",
    )
}

/// One file part: its name, content type and bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct FilePart {
    pub filename: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// The part named `file` of multipart body `body` (RFC 7578) with `boundary`; `None`
/// when there is none.
pub fn file_part(body: &[u8], boundary: &str) -> Option<FilePart> {
    let delimiter = format!("--{boundary}");
    let mut rest = body;
    loop {
        let start = find(rest, delimiter.as_bytes())?;
        rest = &rest[start + delimiter.len()..];
        if rest.starts_with(b"--") {
            return None;
        }
        let head_end = find(rest, b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&rest[..head_end]).into_owned();
        let content = &rest[head_end + 4..];
        let end = find(content, format!("\r\n{delimiter}").as_bytes())?;
        let mut disposition = None;
        let mut content_type = None;
        for line in head.lines() {
            let Some((k, v)) = line.split_once(':') else { continue };
            if k.trim().eq_ignore_ascii_case("content-disposition") {
                disposition = Some(v.trim().to_string());
            } else if k.trim().eq_ignore_ascii_case("content-type") {
                content_type = Some(v.trim().to_string());
            }
        }
        let param = |name: &str| {
            disposition.as_deref().and_then(|d| {
                d.split(';').skip(1).find_map(|p| {
                    let (k, v) = p.trim().split_once('=')?;
                    (k.trim() == name).then(|| v.trim().trim_matches('"').to_string())
                })
            })
        };
        if param("name").as_deref() == Some("file") {
            return Some(FilePart {
                filename: param("filename").unwrap_or_default(),
                content_type: content_type
                    .filter(|t| valid_content_type(t))
                    .unwrap_or_else(|| "application/octet-stream".into()),
                bytes: content[..end].to_vec(),
            });
        }
        rest = &content[end..];
    }
}

/// A MIME type as kept and served back: `type/subtype`, short, of token characters.
fn valid_content_type(t: &str) -> bool {
    let base = t.split(';').next().unwrap_or_default().trim();
    let ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    base.len() <= 100 && base.split_once('/').is_some_and(|(a, b)| ok(a) && ok(b))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The boundary of a `multipart/form-data` content type.
fn boundary_of(content_type: &str) -> Option<String> {
    let mut params = content_type.split(';');
    if !params.next()?.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        let v = v.trim().trim_matches('"');
        (k.trim().eq_ignore_ascii_case("boundary") && !v.is_empty() && v.len() <= 200).then(|| v.to_string())
    })
}

/// Sends a file in a conversation: a message with the attachment joins the transcript,
/// and goes to a Messenger customer through the Send API (as an attachment).
#[utoipa::path(post, path = "/api/v1/conversations/{id}/attachments", tag = "conversations",
    params(("id" = String, Path, description = "Conversation id")),
    request_body(content_type = "multipart/form-data", description = "One part named `file`: the file, with its content type (image, video and audio are sent as such, anything else as a file)"),
    responses(
        (status = 201, description = "The message as the transcript keeps it, with `attachments`", body = MessageDto),
        (status = 400, description = "No part named `file` (`missing_file`), or a bad id", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Not an agent, or an agent not in it", body = ErrorBody),
        (status = 404, description = "Unknown conversation", body = ErrorBody),
        (status = 409, description = "Not active, ended, or outside Messenger's messaging window", body = ErrorBody),
        (status = 413, description = "Over `messenger.max_attachment_bytes` (`attachment_too_large`)", body = ErrorBody),
        (status = 507, description = "The file store is full (`attachment_storage_full`)", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn send_attachment(
    state: Tenanted,
    caller: Caller,
    path: web::Path<String>,
    req: actix_web::HttpRequest,
    mut payload: web::Payload,
) -> Res {
    let agent = caller.agent()?.to_string();
    let conversation = id(&path)?.to_string();
    let max = state.max_attachment_bytes;
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let boundary = boundary_of(content_type).ok_or_else(missing)?;
    if req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n > max + FRAMING_BYTES)
    {
        return Err(too_large(max));
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request("invalid_input", format!("the body could not be read: {e}")))?;
        if body.len() + chunk.len() > max + FRAMING_BYTES {
            return Err(too_large(max));
        }
        body.extend_from_slice(&chunk);
    }
    let part = file_part(&body, &boundary).ok_or_else(missing)?;
    if part.bytes.len() > max {
        return Err(too_large(max));
    }
    if part.bytes.is_empty() {
        return Err(ApiError::bad_request("missing_file", "the file is empty"));
    }
    let files = state.files.clone();
    let FilePart {
        filename,
        content_type,
        bytes,
    } = part;
    let kept = files.keep(bytes, content_type, filename).await;
    let (file_id, meta) = match kept {
        Ok(k) => k,
        Err(FileError::Full(_)) => {
            return Err(ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "attachment_storage_full",
                "the file store is full (messenger.attachments_max_total_bytes)",
            ))
        }
        Err(e) => {
            tracing::error!(error = %e, "a file could not be kept");
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the file could not be kept",
            ));
        }
    };
    let kind = attachment_kind(&meta.content_type).to_string();
    let cmd = Command::Messenger(MessengerCommand::SendFile {
        agent,
        conversation,
        attachment: Box::new(Attachment {
            kind: kind.clone(),
            url: Some(format!("/files/{file_id}/{}", meta.name)),
        }),
        file: Box::new(OutboundFile {
            id: file_id,
            kind,
            content_type: meta.content_type,
            name: meta.name,
        }),
    });
    // A refused message leaves its file unreferenced (counted against the bound; see
    // docs/API-NOTES.md): the check needs the engine, which needs the file kept first.
    match state.engine.exec(cmd).await? {
        Reply::Message(m) => Ok(HttpResponse::Created().json(MessageDto::from(&m))),
        r => Err(unexpected("message", &r)),
    }
}

/// Types a page may show inline; anything else is served as a download.
const INLINE: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "audio/mpeg",
    "audio/ogg",
    "audio/wav",
    "video/mp4",
    "video/webm",
];

/// `GET /files/{id}/{name}`: a file an agent sent, to whoever has its URL.
pub async fn get_file(state: web::Data<AppState>, path: web::Path<(String, String)>) -> Res {
    let (file_id, _name) = path.into_inner();
    let found = state.files.fetch(file_id).await;
    match found {
        Ok((bytes, meta)) => {
            let base = meta
                .content_type
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            let inline = INLINE.contains(&base.as_str());
            let (content_type, disposition) = if inline {
                (base, format!("inline; filename=\"{}\"", meta.name))
            } else {
                (
                    "application/octet-stream".to_string(),
                    format!("attachment; filename=\"{}\"", meta.name),
                )
            };
            Ok(HttpResponse::Ok()
                .content_type(content_type)
                .insert_header(("content-disposition", disposition))
                .insert_header(("content-security-policy", "default-src 'none'; sandbox"))
                .insert_header(("x-content-type-options", "nosniff"))
                .insert_header(("referrer-policy", "no-referrer"))
                .insert_header(("cache-control", "private, max-age=86400"))
                .body(bytes))
        }
        Err(FileError::NotFound) => Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such file")),
        Err(e) => {
            tracing::error!(error = %e, "a file could not be read");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the file could not be read",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A part: name, file name, content type, bytes.
    type Part<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a [u8]);

    fn body(parts: &[Part]) -> Vec<u8> {
        let mut b = Vec::new();
        for (name, filename, ty, content) in parts {
            b.extend_from_slice(b"--XyZ\r\nContent-Disposition: form-data; name=\"");
            b.extend_from_slice(name.as_bytes());
            b.extend_from_slice(b"\"");
            if let Some(f) = filename {
                b.extend_from_slice(format!("; filename=\"{f}\"").as_bytes());
            }
            b.extend_from_slice(b"\r\n");
            if let Some(t) = ty {
                b.extend_from_slice(format!("Content-Type: {t}\r\n").as_bytes());
            }
            b.extend_from_slice(b"\r\n");
            b.extend_from_slice(content);
            b.extend_from_slice(b"\r\n");
        }
        b.extend_from_slice(b"--XyZ--\r\n");
        b
    }

    #[test]
    fn the_file_part_is_found_by_name() {
        let b = body(&[
            ("note", None, None, b"hi"),
            ("file", Some("cat.png"), Some("image/png"), b"\x89PNG\r\n--X"),
        ]);
        assert_eq!(
            file_part(&b, "XyZ"),
            Some(FilePart {
                filename: "cat.png".into(),
                content_type: "image/png".into(),
                bytes: b"\x89PNG\r\n--X".to_vec(),
            })
        );
        let b = body(&[("file", Some("x"), Some("<script>"), b"1")]);
        assert_eq!(
            file_part(&b, "XyZ").map(|p| p.content_type),
            Some("application/octet-stream".into())
        );
        assert_eq!(file_part(&body(&[("other", Some("x"), None, b"1")]), "XyZ"), None);
        assert_eq!(file_part(b"garbage", "XyZ"), None);
        assert_eq!(boundary_of("multipart/form-data; boundary=\"a b\""), Some("a b".into()));
        assert_eq!(boundary_of("application/json"), None);
    }
}
