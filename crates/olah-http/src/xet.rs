//! Bridge for the local sources (`localgit.rs`, `modelbin.rs`) while they still answer with
//! [`ApiError`]: the Xet side lives in `olah_service::xet`. Goes when they return `ServiceError`.

use crate::error::ApiError;

/// The answer of the token route where the mirror does not serve Xet.
pub(crate) fn disabled() -> ApiError {
    olah_service::xet::disabled().into()
}
