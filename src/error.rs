//! The one place that knows HTTP errors: every failure that reaches a client becomes an RFC 9457
//! `application/problem+json` body with a stable `code`, or (for the citizen pages) an HTML page.
//! Causes of server faults are logged here, once, and never sent to the client.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::DbError;

/// Stable error codes: partner systems branch on these, so they never change meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// No such route.
    NotFound,
    /// The route exists but not for this method.
    MethodNotAllowed,
    /// No survey with this id.
    SurveyNotFound,
    /// The survey has no such version.
    VersionNotFound,
    /// No agency with this code at this date.
    AgencyNotFound,
    /// A query or path parameter is malformed.
    InvalidParameter,
    /// The paging cursor was not issued by this server.
    InvalidCursor,
    /// The body is not well-formed (JSON, TOML or CSV).
    MalformedBody,
    /// The body is too large.
    PayloadTooLarge,
    /// The request's header fields are too large together.
    HeadersTooLarge,
    /// The body's media type is not accepted here.
    UnsupportedMediaType,
    /// The survey definition is not coherent.
    InvalidDefinition,
    /// The (survey, version) is already published with other content.
    VersionConflict,
    /// No valid API key was presented.
    Unauthorized,
    /// The key's role or scope does not allow this.
    Forbidden,
    /// The database cannot be reached now.
    DatabaseUnavailable,
    /// Something failed on the server.
    Internal,
    /// No campaign with this id.
    CampaignNotFound,
    /// A campaign with this id already exists.
    CampaignExists,
    /// The campaign request is not coherent.
    InvalidCampaign,
    /// The campaign's survey version or agencies cannot change once it has responses.
    CampaignHasResponses,
    /// The response does not fit its campaign or definition.
    InvalidResponse,
    /// The idempotency key was used before with a different request.
    IdempotencyKeyReused,
    /// The idempotency key header is malformed.
    InvalidIdempotencyKey,
    /// This dossier was already rated in this campaign and agency.
    DossierAlreadyRated,
    /// No response with this id.
    ResponseNotFound,
    /// No API key with this id.
    KeyNotFound,
    /// The key request is not coherent.
    InvalidKey,
    /// A batch has more items than allowed.
    BatchTooLarge,
    /// The agency is not part of the campaign.
    AgencyNotInCampaign,
    /// The population table does not fit the campaign.
    InvalidPopulation,
    /// Weighted estimates were asked for, but no population is uploaded.
    PopulationMissing,
    /// The campaign to compare with is of another survey.
    CampaignsNotComparable,
    /// The invitation's one-time link was already used.
    InvitationUsed,
    /// The invitation request is not coherent.
    InvalidInvitations,
}

impl ErrorCode {
    /// Every code, for tests that each has a status and messages.
    pub const ALL: [Self; 35] = [
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::SurveyNotFound,
        Self::VersionNotFound,
        Self::AgencyNotFound,
        Self::InvalidParameter,
        Self::InvalidCursor,
        Self::MalformedBody,
        Self::PayloadTooLarge,
        Self::HeadersTooLarge,
        Self::UnsupportedMediaType,
        Self::InvalidDefinition,
        Self::VersionConflict,
        Self::Unauthorized,
        Self::Forbidden,
        Self::DatabaseUnavailable,
        Self::Internal,
        Self::CampaignNotFound,
        Self::CampaignExists,
        Self::InvalidCampaign,
        Self::CampaignHasResponses,
        Self::InvalidResponse,
        Self::IdempotencyKeyReused,
        Self::InvalidIdempotencyKey,
        Self::DossierAlreadyRated,
        Self::ResponseNotFound,
        Self::KeyNotFound,
        Self::InvalidKey,
        Self::BatchTooLarge,
        Self::AgencyNotInCampaign,
        Self::InvalidPopulation,
        Self::PopulationMissing,
        Self::CampaignsNotComparable,
        Self::InvitationUsed,
        Self::InvalidInvitations,
    ];

    /// The code as sent in the `code` member.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::SurveyNotFound => "survey_not_found",
            Self::VersionNotFound => "version_not_found",
            Self::AgencyNotFound => "agency_not_found",
            Self::InvalidParameter => "invalid_parameter",
            Self::InvalidCursor => "invalid_cursor",
            Self::MalformedBody => "malformed_body",
            Self::PayloadTooLarge => "payload_too_large",
            Self::HeadersTooLarge => "headers_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::InvalidDefinition => "invalid_definition",
            Self::VersionConflict => "version_conflict",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::DatabaseUnavailable => "database_unavailable",
            Self::Internal => "internal_error",
            Self::CampaignNotFound => "campaign_not_found",
            Self::CampaignExists => "campaign_exists",
            Self::InvalidCampaign => "invalid_campaign",
            Self::CampaignHasResponses => "campaign_has_responses",
            Self::InvalidResponse => "invalid_response",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::InvalidIdempotencyKey => "invalid_idempotency_key",
            Self::DossierAlreadyRated => "dossier_already_rated",
            Self::ResponseNotFound => "response_not_found",
            Self::KeyNotFound => "key_not_found",
            Self::InvalidKey => "invalid_key",
            Self::BatchTooLarge => "batch_too_large",
            Self::AgencyNotInCampaign => "agency_not_in_campaign",
            Self::InvalidPopulation => "invalid_population",
            Self::PopulationMissing => "population_missing",
            Self::CampaignsNotComparable => "campaigns_not_comparable",
            Self::InvitationUsed => "invitation_used",
            Self::InvalidInvitations => "invalid_invitations",
        }
    }

    /// The HTTP status that goes with the code.
    pub fn status(self) -> StatusCode {
        match self {
            Self::NotFound
            | Self::SurveyNotFound
            | Self::VersionNotFound
            | Self::AgencyNotFound
            | Self::CampaignNotFound
            | Self::ResponseNotFound
            | Self::KeyNotFound
            | Self::AgencyNotInCampaign => StatusCode::NOT_FOUND,
            Self::InvitationUsed => StatusCode::GONE,
            Self::InvalidPopulation
            | Self::PopulationMissing
            | Self::CampaignsNotComparable
            | Self::InvalidInvitations => StatusCode::UNPROCESSABLE_ENTITY,
            Self::CampaignExists
            | Self::CampaignHasResponses
            | Self::IdempotencyKeyReused
            | Self::DossierAlreadyRated => StatusCode::CONFLICT,
            Self::InvalidCampaign | Self::InvalidResponse | Self::InvalidKey => StatusCode::UNPROCESSABLE_ENTITY,
            Self::InvalidIdempotencyKey => StatusCode::BAD_REQUEST,
            Self::BatchTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::InvalidParameter | Self::InvalidCursor | Self::MalformedBody => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::InvalidDefinition => StatusCode::UNPROCESSABLE_ENTITY,
            Self::VersionConflict => StatusCode::CONFLICT,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::DatabaseUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short human title in `language` (`vi` or `en`; anything else gets English).
    pub fn title(self, language: &str) -> &'static str {
        let (vi, en) = match self {
            Self::NotFound => ("Không tìm thấy", "Not found"),
            Self::MethodNotAllowed => ("Phương thức không được hỗ trợ", "Method not allowed"),
            Self::SurveyNotFound => ("Không tìm thấy phiếu khảo sát", "Survey not found"),
            Self::VersionNotFound => ("Không tìm thấy phiên bản phiếu khảo sát", "Survey version not found"),
            Self::AgencyNotFound => ("Không tìm thấy cơ quan, đơn vị", "Agency not found"),
            Self::InvalidParameter => ("Tham số không hợp lệ", "Invalid parameter"),
            Self::InvalidCursor => ("Con trỏ phân trang không hợp lệ", "Invalid paging cursor"),
            Self::MalformedBody => ("Nội dung yêu cầu sai định dạng", "Malformed request body"),
            Self::PayloadTooLarge => ("Nội dung yêu cầu quá lớn", "Request body too large"),
            Self::HeadersTooLarge => ("Phần đầu yêu cầu quá lớn", "Request header fields too large"),
            Self::UnsupportedMediaType => ("Kiểu nội dung không được hỗ trợ", "Unsupported media type"),
            Self::InvalidDefinition => ("Định nghĩa phiếu khảo sát không hợp lệ", "Invalid survey definition"),
            Self::VersionConflict => (
                "Phiên bản này đã được công bố với nội dung khác",
                "This version is already published with different content",
            ),
            Self::Unauthorized => ("Cần khóa API hợp lệ", "A valid API key is required"),
            Self::Forbidden => ("Khóa API không có quyền này", "The API key does not allow this"),
            Self::DatabaseUnavailable => ("Cơ sở dữ liệu tạm thời không sẵn sàng", "Database temporarily unavailable"),
            Self::Internal => ("Lỗi máy chủ", "Server error"),
            Self::CampaignNotFound => ("Không tìm thấy đợt khảo sát", "Campaign not found"),
            Self::CampaignExists => ("Đợt khảo sát đã tồn tại", "Campaign already exists"),
            Self::InvalidCampaign => ("Thông tin đợt khảo sát không hợp lệ", "Invalid campaign"),
            Self::CampaignHasResponses => (
                "Đợt khảo sát đã có phiếu trả lời, không thể đổi phiên bản hay cơ quan",
                "The campaign has responses: its survey version and agencies cannot change",
            ),
            Self::InvalidResponse => ("Phiếu trả lời không hợp lệ", "Invalid response"),
            Self::IdempotencyKeyReused => (
                "Khóa chống trùng lặp đã được dùng cho một yêu cầu khác",
                "The idempotency key was used for a different request",
            ),
            Self::InvalidIdempotencyKey => ("Khóa chống trùng lặp không hợp lệ", "Invalid idempotency key"),
            Self::DossierAlreadyRated => ("Hồ sơ này đã được đánh giá", "This dossier has already been rated"),
            Self::ResponseNotFound => ("Không tìm thấy phiếu trả lời", "Response not found"),
            Self::KeyNotFound => ("Không tìm thấy khóa API", "API key not found"),
            Self::InvalidKey => ("Thông tin khóa API không hợp lệ", "Invalid API key request"),
            Self::BatchTooLarge => ("Lô phiếu quá lớn", "Batch too large"),
            Self::AgencyNotInCampaign => {
                ("Cơ quan, đơn vị không thuộc đợt khảo sát", "The agency is not part of the campaign")
            }
            Self::InvalidPopulation => ("Bảng dân số không hợp lệ", "Invalid population table"),
            Self::PopulationMissing => {
                ("Chưa có số liệu dân số để gia quyền", "No population counts have been uploaded for weighting")
            }
            Self::CampaignsNotComparable => {
                ("Hai đợt khảo sát không dùng cùng một phiếu", "The two campaigns do not use the same survey")
            }
            Self::InvitationUsed => ("Đường dẫn mời đã được sử dụng", "The invitation link has already been used"),
            Self::InvalidInvitations => ("Danh sách mời không hợp lệ", "Invalid invitations"),
        };
        if language == "vi" { vi } else { en }
    }
}

/// One field at fault in a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// Where: a query parameter name, or a dotted path into the body (`answers.q12`).
    pub field: String,
    /// Stable code of the fault (`out_of_range`, `required`, …).
    pub code: String,
    /// What is wrong, for a developer.
    pub message: String,
}

/// The RFC 9457 problem document sipas sends.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// URI naming the problem type (`urn:sipas:problem:{code}`).
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Short summary of the problem type.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What happened in this case.
    pub detail: String,
    /// Stable code to branch on.
    pub code: String,
    /// The fields at fault, when the request had some.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// An error answered to an API client.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The stable code (and with it the status).
    pub code: ErrorCode,
    /// What happened, for the client.
    pub detail: String,
    /// The fields at fault.
    pub errors: Vec<FieldError>,
}

impl ApiError {
    /// An error with a code and a detail.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self { code, detail: detail.into(), errors: Vec::new() }
    }

    /// A malformed parameter, naming it.
    pub fn invalid_parameter(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            code: ErrorCode::InvalidParameter,
            detail: format!("parameter `{field}`: {message}"),
            errors: vec![FieldError { field: field.to_owned(), code: "invalid".to_owned(), message }],
        }
    }

    /// Adds fields at fault.
    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.errors = errors;
        self
    }

    /// The problem document for this error.
    pub fn problem(&self) -> Problem {
        Problem {
            type_uri: format!("urn:sipas:problem:{}", self.code.as_str()),
            title: self.code.title("en").to_owned(),
            status: self.code.status().as_u16(),
            detail: self.detail.clone(),
            code: self.code.as_str().to_owned(),
            errors: self.errors.clone(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.detail)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json")));
        if self.code == ErrorCode::DatabaseUnavailable {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("5")));
        }
        response.body(serde_json::to_string(&self.problem()).unwrap_or_default())
    }
}

impl From<DbError> for ApiError {
    fn from(error: DbError) -> Self {
        match error {
            DbError::Unavailable(cause) => {
                // Every request meets an outage: a line every few seconds says how many.
                static LOGGED: crate::telemetry::LogThrottle = crate::telemetry::LogThrottle::outage();
                if let Some(held) = LOGGED.admit() {
                    tracing::warn!(error.cause = %cause, refused.since_last_line = held, "database unavailable: requests answered 503");
                }
                Self::new(ErrorCode::DatabaseUnavailable, "The database cannot be reached now; retry shortly.")
            }
            other => {
                tracing::error!(error.cause = %other, "database error");
                Self::new(ErrorCode::Internal, "The server failed to handle the request.")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_status_and_a_message_in_each_language() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "duplicate code {}", code.as_str());
            assert!(code.status().is_client_error() || code.status().is_server_error(), "{}", code.as_str());
            for language in ["vi", "en"] {
                assert!(!code.title(language).is_empty(), "{} has no {language} title", code.as_str());
            }
            assert_ne!(code.title("vi"), code.title("en"), "{} is not translated", code.as_str());
        }
    }

    #[test]
    fn a_problem_document_has_the_rfc_9457_members() {
        let error = ApiError::invalid_parameter("limit", "must be 1 to 1000");
        let json = serde_json::to_value(error.problem()).unwrap_or_default();
        assert_eq!(json["status"], 400);
        assert_eq!(json["code"], "invalid_parameter");
        assert_eq!(json["type"], "urn:sipas:problem:invalid_parameter");
        assert_eq!(json["errors"][0]["field"], "limit");
    }
}
