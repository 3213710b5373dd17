//! Twilio's Programmable Messaging (REST API `2010-04-01`; signatures as the
//! official helper library's `RequestValidator` computes and checks them).
//!
//! **Inbound**: in the Twilio console, a number's (or Messaging Service's)
//! "A message comes in" webhook is `POST <public url>/backend/<name>/`, a
//! form with `From`, `To`, `Body`, `MessageSid` (older: `SmsSid`),
//! `AccountSid`, `NumSegments`, `MessagingServiceSid`, `NumMedia`, ... It is
//! answered `200` with empty TwiML (`text/xml`, `<Response></Response>`: no
//! reply from Twilio itself; replies go out through the API) once the
//! message is on the bus; `400` naming the field (`From`, `Body`,
//! `MessageSid`, `Content-Type`, ...) for a bad request, `403` for a missing
//! or wrong signature, `503` when the bus cannot store it (Twilio retries).
//! `From` is the identity and `Body` the text, exactly as sent (Twilio
//! decodes GSM-7 and UCS-2; the form carries UTF-8). `MessageSid` is the
//! message's `external_id`, so a webhook Twilio repeats is stored once.
//! Every other parameter is kept in the message's `fields`, its name in
//! lower snake case: `To` → `to`, `AccountSid` → `account_sid`,
//! `NumSegments` → `num_segments`, `MessagingServiceSid` →
//! `messaging_service_sid`, `MediaUrl0` → `media_url0`, `FromCountry` →
//! `from_country` (empty values are left out). An MMS without text has an
//! empty `Body` and is refused (`400`, as RapidSMS's rtwilio does).
//!
//! **Outbound**: one request per message, `POST
//! <api_url>/2010-04-01/Accounts/<account_sid>/Messages.json` with HTTP
//! basic auth (account SID, auth token) and the form `To`, `From` or
//! `MessagingServiceSid`, `Body` (UTF-8 as it is: Twilio picks GSM-7 or
//! UCS-2 and splits segments itself) and `StatusCallback`
//! (`<public url>/backend/<name>/status?message_id=<our id>`). A 2xx reply's
//! `sid` is the provider id and its `status` (`queued`, `accepted`, ...)
//! the provider status; a reply whose `status` is `failed`, `undelivered`
//! or `canceled`, or that has an `error_code`, is a permanent failure. Twilio's errors
//! (`{"code": 21211, "message": "...", "more_info": "...", "status": 400}`)
//! become `<code>: <message>`; a 4xx is permanent, 408, 429 and 5xx are
//! retried (`Retry-After` honoured).
//!
//! **Status callbacks**: `POST <public url>/backend/<name>/status?message_id=...`
//! with `MessageSid`, `MessageStatus` (or `SmsSid`, `SmsStatus`), `To`,
//! `ErrorCode`, `ErrorMessage`. `queued`, `accepted`, `scheduled` and
//! `sending` are queued; `sent` sent; `delivered` and `read` delivered;
//! `undelivered`, `failed` and `canceled` failed (the error is
//! `<ErrorCode>: <ErrorMessage>`); any other status gets `400`. The
//! provider status is `MessageStatus`, followed by ` <ErrorCode>` when there
//! is one. Without `message_id` in the URL, our message is found by its
//! `MessageSid` in the sink's sent-log. Answered `200` with an empty body
//! once the event is stored; a repeated callback is answered and not stored
//! twice.
//!
//! **Signatures** (when `validate`, the default): `X-Twilio-Signature` must
//! be base64(HMAC-SHA1(auth token, URL + each POST parameter's name and
//! value)), names sorted, a name's distinct values sorted. The URL is
//! `http.public_url` followed by the request's path and query: it must be
//! the URL as configured in Twilio, also behind a proxy. As the official
//! library does, the URL is tried without its port and with it (the
//! scheme's default port when it names none). Webhooks signed with a
//! Webhooks shared key (`X-Twilio-Webhooks-Signature-Settings`) are
//! refused: only the auth token signature is supported.
//!
//! Where things are: `send` (the Messages API request and its reply),
//! `webhook` (the inbound and status webhooks, their parameters) and
//! `signature` (computing and checking `X-Twilio-Signature`).

mod send;
mod signature;
mod webhook;

pub use send::Twilio;
pub use signature::{signature, SIGNATURE_HEADER};
pub use webhook::{routes, Hooks, EMPTY_TWIML};
