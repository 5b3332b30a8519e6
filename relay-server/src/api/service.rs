//! `/service`: send a SIP `SERVICE` (draft-deason-sip-soap) with a SOAP envelope to any SIP
//! URI and get the far end's answer as a value: the SOAP response, a Fault, "not implemented"
//! (405 or 501 from the far end), or a failure with its SIP status.

use axum::extract::State;
use axum::Json;
use restsip_protocol::{ProblemKind, ServiceRequest, ServiceResult};

use super::auth::Caller;
use super::body::JsonBody;
use super::error::ApiError;
use super::AppState;
use crate::sipapp::service::outbound::SendError;

/// Largest SOAP body sent: what fits in a SIP message with its headers.
const MAX_SOAP_BODY: usize = 60 * 1024;

/// `POST /service`: the caller's SERVICE request, answered when the far end's final response
/// comes (or after 32 s without one, whatever the reason: status 408). A destination the
/// egress guard refuses is `forbidden-target` (422).
pub(crate) async fn service_send(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<ServiceRequest>,
) -> Result<Json<ServiceResult>, ApiError> {
    let Some(sender) = &state.service_out else {
        return Err(ApiError::new(
            ProblemKind::Unavailable,
            "SIP is off on this relay",
        ));
    };
    match sender.send(&caller.0, &req, MAX_SOAP_BODY).await {
        Ok(result) => Ok(Json(result)),
        Err(SendError::Invalid(why)) => Err(ApiError::new(ProblemKind::Unprocessable, why)),
        Err(SendError::Unavailable(why)) => Err(ApiError::new(ProblemKind::Unavailable, why)),
        Err(SendError::Forbidden(why)) => Err(ApiError::new(ProblemKind::ForbiddenTarget, why)),
    }
}
