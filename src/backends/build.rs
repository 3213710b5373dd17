//! Building a provider backend from its pipeline entry: the provider its
//! sink calls and the webhook routes its source and reports serve.

use std::sync::Arc;

use axum::Router;

use super::auth::WebhookAuth;
use super::provider::Provider;
use super::{clickatell, generic_http as generic, kannel, twilio, vumi, Hooks, Reports, Source};
use crate::config;

/// A provider backend's sink side and its webhook routes (`None` for the
/// tester and discard backends, which call no provider).
pub fn provider(
    cfg: &config::Backend,
    public: &str,
    source: Source,
    reports: Reports,
    client: reqwest::Client,
) -> Option<(Arc<dyn Provider>, Router)> {
    let name = cfg.name();
    let receiving = cfg.receiving().cloned().unwrap_or_default();
    let auth = WebhookAuth::new(name, &receiving);
    let source = source.with_receiving(&receiving);
    let reports = reports.with_receiving(&receiving);
    let built: (Arc<dyn Provider>, Router) = match cfg {
        // Built with the sink's sent-log, by the topology.
        config::Backend::Modem(_) => return None,
        config::Backend::Http {
            url,
            method,
            params,
            ..
        } => {
            let hooks = generic::Hooks {
                auth,
                source,
                reports,
                params: params.clone(),
            };
            let provider = generic::HttpProvider {
                client,
                url: url.clone(),
                method: *method,
            };
            (Arc::new(provider), generic::routes(name, Arc::new(hooks)))
        }
        config::Backend::Kannel {
            sendsms_url,
            username,
            password,
            from,
            smsc,
            dlr_mask,
            ..
        } => {
            let provider = kannel::Kannel {
                client,
                sendsms_url: sendsms_url.clone(),
                username: username.clone(),
                password: password.clone(),
                from: from.clone(),
                smsc: smsc.clone(),
                dlr_mask: *dlr_mask,
                dlr_url: format!("{public}/backend/{name}/dlr"),
                secret: auth.secret().map(str::to_owned),
            };
            let hooks = Hooks {
                auth,
                source,
                reports,
            };
            (Arc::new(provider), kannel::routes(name, Arc::new(hooks)))
        }
        config::Backend::Twilio {
            account_sid,
            auth_token,
            from,
            messaging_service_sid,
            api_url,
            validate,
            ..
        } => {
            let provider = twilio::Twilio {
                client,
                api_url: api_url.trim_end_matches('/').to_owned(),
                account_sid: account_sid.clone(),
                auth_token: auth_token.clone(),
                from: from.clone(),
                messaging_service_sid: messaging_service_sid.clone(),
                status_callback: format!("{public}/backend/{name}/status"),
            };
            let hooks = twilio::Hooks {
                source,
                reports,
                auth_token: auth_token.clone(),
                validate: *validate,
                public: public.to_owned(),
            };
            (Arc::new(provider), twilio::routes(name, Arc::new(hooks)))
        }
        config::Backend::Clickatell {
            api_key,
            from,
            api_url,
            batch,
            ..
        } => {
            let provider = clickatell::Clickatell {
                client,
                api_url: api_url.trim_end_matches('/').to_owned(),
                api_key: api_key.clone(),
                from: from.clone(),
                batch: *batch,
            };
            let hooks = clickatell::Hooks {
                auth,
                api_key: api_key.clone(),
                source,
                reports,
            };
            (
                Arc::new(provider),
                clickatell::routes(name, Arc::new(hooks)),
            )
        }
        config::Backend::Vumi {
            sendsms_url,
            sendsms_user,
            sendsms_pass,
            sendsms_params,
            ..
        } => {
            let provider = vumi::Vumi {
                client,
                sendsms_url: sendsms_url.clone(),
                auth: sendsms_user.clone().zip(sendsms_pass.clone()),
                params: sendsms_params.clone(),
            };
            let hooks = Hooks {
                auth,
                source: source.allow_empty_text(),
                reports,
            };
            (Arc::new(provider), vumi::routes(name, Arc::new(hooks)))
        }
        config::Backend::Tester { .. } | config::Backend::Discard { .. } => return None,
    };
    Some(built)
}

/// The webhook routes of a discard backend (inbound as the generic HTTP
/// backend's, with its credentials and limits); `None` for other backends.
pub fn discard(cfg: &config::Backend, source: Source, reports: Reports) -> Option<Router> {
    let config::Backend::Discard { name, receive } = cfg else {
        return None;
    };
    let hooks = generic::Hooks {
        auth: WebhookAuth::new(name, receive),
        source: source.with_receiving(receive),
        reports: reports.with_receiving(receive),
        params: config::HttpParams::default(),
    };
    Some(generic::routes(name, Arc::new(hooks)))
}
