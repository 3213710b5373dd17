//! Status callbacks (flat, or the One API's `event.messageStatusUpdate`)
//! as delivery events, and Clickatell's statuses and codes as ours.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Map, Value};

use super::hooks::{checked_body, international, Hooks};
use crate::backends::webhook::answer;
use crate::backends::{json, Report, SourceError};
use crate::message::DeliveryStatus;

/// Which table a numeric status code is read in.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Codes {
    /// The Platform's (and the legacy APIs') 001–014, in flat callbacks.
    Platform,
    /// The One API's, in `event.messageStatusUpdate`.
    OneApi,
}

pub(super) async fn status(
    State(h): State<Arc<Hooks>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let result = async {
        let obj = checked_body(&h, &headers, query.as_deref(), &body)?;
        match obj.get("event") {
            Some(event) => status_updates(&h, event).await,
            None => report(&h, &obj, Codes::Platform).await,
        }
    }
    .await;
    answer(result, ())
}

/// The One API's `event.messageStatusUpdate` list.
pub(super) async fn status_updates(h: &Hooks, event: &Value) -> Result<(), SourceError> {
    let list = json::objects(
        event,
        "messageStatusUpdate",
        "event.messageStatusUpdate",
        "the One API's list of status updates",
    )?;
    for update in list {
        report(h, update, Codes::OneApi).await?;
    }
    Ok(())
}

/// One status callback (or One API status update) as a delivery event.
async fn report(h: &Hooks, u: &Map<String, Value>, codes: Codes) -> Result<(), SourceError> {
    let message_id = json::text(u, "clientMessageId")?;
    let provider_id = match json::text(u, "apiMessageId")? {
        Some(id) => Some(id),
        None => json::text(u, "messageId")?,
    };
    if message_id.is_none() && provider_id.is_none() {
        return Err(SourceError::missing(
            "messageId",
            "Clickatell's id of the message (messageId or apiMessageId), or our clientMessageId",
        ));
    }
    let raw = json::text(u, "status")?;
    let code = json::text(u, "statusCode")?;
    let description = json::text(u, "statusDescription")?;
    if raw.is_none() && code.is_none() {
        return Err(SourceError::missing(
            "status",
            "Clickatell's message status (status or statusCode)",
        ));
    }
    let status = classify(raw.as_deref(), code.as_deref(), codes).ok_or_else(|| {
        SourceError::Invalid {
            field: "status",
            message: format!(
                "status {} (statusCode {}) is not a Clickatell message status this backend knows: expected for example QUEUED, DELIVERED_TO_GATEWAY, RECEIVED_BY_RECIPIENT, EXPIRED, ERROR_DELIVERING or a code 1 to 14",
                raw.as_deref().unwrap_or("none"),
                code.as_deref().unwrap_or("none"),
            ),
        }
    })?;
    let mut provider_status = raw.clone().or_else(|| code.clone()).unwrap_or_default();
    if let (Some(r), Some(c)) = (&raw, &code) {
        if r != c {
            provider_status.push_str(&format!(" ({c})"));
        }
    }
    if let Some(d) = &description {
        provider_status.push_str(&format!(": {d}"));
    }
    let error = matches!(status, DeliveryStatus::Failed | DeliveryStatus::Expired).then(|| {
        description
            .clone()
            .or_else(|| {
                let n = code.as_deref().or(raw.as_deref())?.trim().parse().ok()?;
                (codes == Codes::Platform).then(|| platform_description(n))?
            })
            .unwrap_or_else(|| provider_status.clone())
    });
    let identity = json::text(u, "to")?.map(|to| international(&to));
    h.reports
        .report(Report {
            message_id,
            provider_id,
            identity,
            status: Some(status),
            provider_status,
            error,
        })
        .await
        .map(drop)
        .map_err(|e| {
            e.renamed("message_id", "clientMessageId")
                .renamed("provider_id", "messageId")
                .renamed("identity", "to")
                .renamed("error", "statusDescription")
        })
}

/// A Clickatell status as one of ours: its name first (unambiguous), then
/// its code in the callback's table.
fn classify(raw: Option<&str>, code: Option<&str>, codes: Codes) -> Option<DeliveryStatus> {
    let number = |s: &str| s.trim().parse::<u32>().ok();
    if let Some(r) = raw {
        if let Some(s) = by_name(r) {
            return Some(s);
        }
        if let Some(s) = number(r).and_then(|n| by_code(n, codes)) {
            return Some(s);
        }
    }
    code.and_then(number).and_then(|n| by_code(n, codes))
}

fn by_name(name: &str) -> Option<DeliveryStatus> {
    use DeliveryStatus::*;
    let name = name.trim().to_ascii_uppercase().replace([' ', '-'], "_");
    Some(match name.as_str() {
        "QUEUED"
        | "MESSAGE_QUEUED"
        | "SCHEDULED"
        | "QUEUED_FOR_LATER_DELIVERY"
        | "MESSAGE_QUEUED_FOR_LATER_DELIVERY" => Queued,
        "DELIVERED_TO_GATEWAY" | "RECEIVED_BY_GATEWAY" | "SENT_TO_SUPPLIER" | "EMULATED" => Sent,
        "RECEIVED_BY_RECIPIENT" | "DEVICE_ACK" | "READ" => Delivered,
        "EXPIRED" | "MESSAGE_EXPIRED" => Expired,
        "UNKNOWN"
        | "MESSAGE_UNKNOWN"
        | "ERROR_WITH_MESSAGE"
        | "USER_CANCELLED"
        | "USER_CANCELLED_MESSAGE_DELIVERY"
        | "ERROR_DELIVERING"
        | "ERROR_DELIVERING_MESSAGE"
        | "ROUTING_ERROR"
        | "OUT_OF_CREDIT"
        | "CLICKATELL_CANCELLED"
        | "CLICKATELL_CANCELLED_MESSAGE_DELIVERY"
        | "MAX_MT_LIMIT_EXCEEDED"
        | "MAXIMUM_MT_LIMIT_EXCEEDED"
        | "DELIVERY_FAILURE"
        | "STOPPED_BY_USER"
        | "STOPPED_BY_ADMIN"
        | "INSUFFICIENT_ACCOUNT_BALANCE"
        | "VOLUME_LIMIT"
        | "VOLUME_LIMIT_DAILY"
        | "VOLUME_LIMIT_MONTHLY"
        | "RECIPIENT_DOES_NOT_EXIST" => Failed,
        _ => return None,
    })
}

/// What the Platform's status codes mean, for callbacks without a description.
fn platform_description(code: u32) -> Option<String> {
    let text = match code {
        1 => "Message unknown",
        2 => "Message queued",
        3 => "Delivered to gateway",
        4 => "Received by recipient",
        5 => "Error with message",
        6 => "User cancelled message delivery",
        7 => "Error delivering message",
        8 => "Message received by gateway",
        9 => "Routing error",
        10 => "Message expired",
        11 => "Message queued for later delivery",
        12 => "Out of credit",
        13 => "Clickatell cancelled message delivery",
        14 => "Maximum MT limit exceeded",
        _ => return None,
    };
    Some(text.to_owned())
}

fn by_code(code: u32, codes: Codes) -> Option<DeliveryStatus> {
    use DeliveryStatus::*;
    Some(match (codes, code) {
        (Codes::Platform, 2 | 11) => Queued,
        (Codes::Platform, 3 | 8) => Sent,
        (Codes::Platform, 4) => Delivered,
        (Codes::Platform, 10) => Expired,
        (Codes::Platform, 1 | 5 | 6 | 7 | 9 | 12 | 13 | 14) => Failed,
        (Codes::OneApi, 2 | 3) => Queued,
        (Codes::OneApi, 4 | 24) => Sent,
        (Codes::OneApi, 5 | 6) => Delivered,
        (Codes::OneApi, 20) => Expired,
        (Codes::OneApi, 1 | 21..=29) => Failed,
        (Codes::OneApi, c) if c >= 60 => Failed,
        _ => return None,
    })
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_by_name_then_by_code() {
        use DeliveryStatus::*;
        let c = |raw: Option<&str>, code: Option<&str>, t| classify(raw, code, t);
        assert_eq!(
            c(Some("RECEIVED_BY_RECIPIENT"), Some("4"), Codes::Platform),
            Some(Delivered)
        );
        assert_eq!(
            c(Some("DELIVERED_TO_GATEWAY"), None, Codes::Platform),
            Some(Sent)
        );
        assert_eq!(c(Some("004"), None, Codes::Platform), Some(Delivered));
        assert_eq!(c(None, Some("10"), Codes::Platform), Some(Expired));
        assert_eq!(c(None, Some("2"), Codes::Platform), Some(Queued));
        assert_eq!(c(None, Some("7"), Codes::Platform), Some(Failed));
        // The One API's 4 is "sent to supplier", the Platform's "received by recipient".
        assert_eq!(c(None, Some("4"), Codes::OneApi), Some(Sent));
        assert_eq!(
            c(Some("SENT_TO_SUPPLIER"), Some("4"), Codes::Platform),
            Some(Sent)
        );
        assert_eq!(c(Some("whatever"), Some("99"), Codes::Platform), None);
        assert_eq!(
            c(Some("Received by recipient"), None, Codes::OneApi),
            Some(Delivered)
        );
    }
}
