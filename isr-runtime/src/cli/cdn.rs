//! The CDNs to purge, from their flags (with environment fallbacks) and secrets (from the
//! environment only): one line naming the flag or variable for anything wrong.

use super::args::Cli;
use crate::cdn::Adapter;
use std::sync::Arc;

/// Every CDN the flags configure, each with its own queue once started.
pub(super) fn adapters(cli: &Cli) -> Result<Vec<Arc<dyn Adapter>>, String> {
    let mut adapters: Vec<Arc<dyn Adapter>> = Vec::new();
    match (&cli.cdn_purge, &cli.public_host) {
        (Some(endpoints), host) => {
            let targets =
                crate::cdn::PurgeTargets::parse(endpoints, host.as_deref()).map_err(|e| {
                    format!("--cdn-purge / ISR_CDN_PURGE, --public-host / ISR_PUBLIC_HOST: {e}")
                })?;
            adapters.push(Arc::new(crate::cdn::Varnish::new(targets)));
        }
        (None, Some(_)) => {
            return Err(
                "--public-host / ISR_PUBLIC_HOST is set without --cdn-purge / ISR_CDN_PURGE".into(),
            )
        }
        (None, None) => {}
    }
    vendors(cli, &mut adapters)?;
    Ok(adapters)
}

#[cfg(not(feature = "cdn-apis"))]
fn vendors(cli: &Cli, _: &mut Vec<Arc<dyn Adapter>>) -> Result<(), String> {
    let set = [
        (
            cli.fastly_service.is_some(),
            "--fastly-service / ISR_FASTLY_SERVICE",
        ),
        (
            cli.cloudflare_zone.is_some(),
            "--cloudflare-zone / ISR_CLOUDFLARE_ZONE",
        ),
        (cli.akamai_host.is_some(), "--akamai-host / ISR_AKAMAI_HOST"),
        (
            cli.cloudfront_distribution.is_some(),
            "--cloudfront-distribution / ISR_CLOUDFRONT_DISTRIBUTION",
        ),
    ];
    match set.iter().find(|(is_set, _)| *is_set) {
        Some((_, flag)) => Err(format!(
            "{flag} needs isr's `cdn-apis` feature (add it to the app's isr dependency)"
        )),
        None => Ok(()),
    }
}

#[cfg(feature = "cdn-apis")]
fn vendors(cli: &Cli, adapters: &mut Vec<Arc<dyn Adapter>>) -> Result<(), String> {
    use crate::cdn::{akamai, cloudflare, cloudfront, fastly, ApiBase, Secret};
    let api = |given: &Option<String>, default: &str, flag: &str| {
        ApiBase::parse(given.as_deref().unwrap_or(default)).map_err(|e| format!("{flag}: {e}"))
    };
    let secret = |variable: &str, needed_by: &str| {
        Secret::from_env(variable)
            .ok_or_else(|| format!("{needed_by} needs the secret in {variable}, which is not set"))
    };
    let id = |value: &str, flag: &str| {
        let valid = !value.is_empty()
            && value.len() <= 128
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if valid {
            Ok(value.to_owned())
        } else {
            Err(format!(
                "{flag}: {value:?} is not an ID (letters, digits, - and _)"
            ))
        }
    };
    if let Some(service) = &cli.fastly_service {
        let flag = "--fastly-service / ISR_FASTLY_SERVICE";
        adapters.push(Arc::new(fastly::Fastly::new(
            api(
                &cli.fastly_api,
                fastly::API,
                "--fastly-api / ISR_FASTLY_API",
            )?,
            id(service, flag)?,
            secret("ISR_FASTLY_TOKEN", flag)?,
        )));
    }
    if let Some(zone) = &cli.cloudflare_zone {
        let flag = "--cloudflare-zone / ISR_CLOUDFLARE_ZONE";
        adapters.push(Arc::new(cloudflare::Cloudflare::new(
            api(
                &cli.cloudflare_api,
                cloudflare::API,
                "--cloudflare-api / ISR_CLOUDFLARE_API",
            )?,
            id(zone, flag)?,
            secret("ISR_CLOUDFLARE_TOKEN", flag)?,
        )));
    }
    if let Some(host) = &cli.akamai_host {
        let flag = "--akamai-host / ISR_AKAMAI_HOST";
        let network = cli.akamai_network.as_deref().unwrap_or("production");
        if !matches!(network, "production" | "staging") {
            return Err(format!(
                "--akamai-network / ISR_AKAMAI_NETWORK: {network:?} is not production or staging"
            ));
        }
        let default = format!("https://{host}");
        adapters.push(Arc::new(akamai::Akamai::new(
            api(&cli.akamai_api, &default, "--akamai-host / --akamai-api")?,
            network.to_owned(),
            akamai::EdgeGridCredentials {
                client_token: secret("ISR_AKAMAI_CLIENT_TOKEN", flag)?,
                client_secret: secret("ISR_AKAMAI_CLIENT_SECRET", flag)?,
                access_token: secret("ISR_AKAMAI_ACCESS_TOKEN", flag)?,
            },
        )));
    }
    if let Some(distribution) = &cli.cloudfront_distribution {
        let flag = "--cloudfront-distribution / ISR_CLOUDFRONT_DISTRIBUTION";
        let access_key_id = secret("AWS_ACCESS_KEY_ID", flag)?;
        adapters.push(Arc::new(cloudfront::CloudFront::new(
            api(
                &cli.cloudfront_api,
                cloudfront::API,
                "--cloudfront-api / ISR_CLOUDFRONT_API",
            )?,
            id(distribution, flag)?,
            cloudfront::AwsCredentials {
                access_key_id: access_key_id.expose().to_owned(),
                secret_access_key: secret("AWS_SECRET_ACCESS_KEY", flag)?,
                session_token: Secret::from_env("AWS_SESSION_TOKEN"),
            },
            cli.cloudfront_tags,
        )));
    }
    Ok(())
}
