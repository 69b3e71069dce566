//! Building HTTP responses: JSON bodies, the API's error shape, text.
//!
//! Every error the API returns is `{"error": code, "message": text}` with
//! its status ([`ApiError`]); used by `routes.rs` and `api.rs`.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};

pub type Reply = Response<Full<Bytes>>;

/// An error answer: its status, a short code and a sentence.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed on this path",
        )
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    pub fn reply(&self) -> Reply {
        let body = serde_json::json!({"error": self.code, "message": self.message});
        json(self.status, &body)
    }
}

/// What an endpoint returns.
pub type ApiResult = Result<Reply, ApiError>;

/// A response with a body and its content type.
pub fn body(status: StatusCode, content_type: &str, bytes: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(bytes.into()));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    if let Ok(v) = "no-store".parse() {
        r.headers_mut().insert(hyper::header::CACHE_CONTROL, v);
    }
    r
}

/// A JSON response.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Reply {
    body(status, "application/json", value.to_string())
}

/// 200 with a JSON body.
pub fn ok(value: serde_json::Value) -> ApiResult {
    Ok(json(StatusCode::OK, &value))
}

/// 204, no body.
pub fn no_content() -> ApiResult {
    Ok(body(
        StatusCode::NO_CONTENT,
        "application/json",
        Bytes::new(),
    ))
}
