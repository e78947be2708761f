//! Adapted formats through decode → Arrow → Parquet on one core, against the contract's
//! own format (issue 15's target: adapted events at ≥ 70% of the contract's events/s).
//!
//! Each format gets `EVENTS` records (default 200000) made from one realistic template
//! (for Okta, a full `user.session.start` of 2 kB as Okta's System Log API returns it) with
//! ids, users and addresses varied per record. A pass runs what the pipeline runs per
//! message: `Format::decode` (for the contract, `parse_event` inside it), the segment's
//! `push_event`, and at every 100k rows `encode` of the segment's batches into zstd
//! Parquet in memory. The best of `RUNS` (default 3) passes is reported, as events/s, MB/s
//! of input and the ratio to the contract's events/s.
//!
//! `cargo bench -p authtrail-store --bench adapters`. Results: `docs/benchmarks.md`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use authtrail_model::adapt::{DecodeContext, Decoded, Format};
use authtrail_model::{ContractLimits, IngestMeta};
use authtrail_store::{encode, EncodeOptions, SegmentBuilder};

const SEGMENT_ROWS: usize = 100_000;
const NOW: i64 = 1_800_000_000_000_000;

/// The templates: `{i}` is the record's number, `{u}` a user, `{ip}` the last octet.
const TEMPLATES: [(&str, &str); 8] = [
    (
        "authtrail",
        r#"{"id":"e-{i}","time":"2026-11-23T18:00:00.120Z","kind":"authn","principal":"user:u{u}","service":"idp","outcome":"failure","reason":"bad_password","auth_method":"password","source_ip":"203.0.113.{ip}","user_agent":"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7)","session_id":"s-{i}"}"#,
    ),
    // The Keycloak record's content as a contract event: what it keeps beyond the columns
    // (realm, redirect, code id, …) as attributes, as the adapter keeps them.
    (
        "authtrail",
        r#"{"id":"kc-{i}","time":1795456800120,"kind":"authn","principal":"user:u{u}","service":"keycloak","outcome":"failure","reason":"invalid_user_credentials","client_id":"web","source_ip":"203.0.113.{ip}","session_id":"s-{i}","attributes":{"realmId":"prod","details.username":"u{u}","details.auth_method":"openid-connect","details.auth_type":"code","details.redirect_uri":"https://app.example.com/callback","details.code_id":"629888b4-49eb-4659-93da-32fc1ce73abd","source_format":"keycloak","source_type":"LOGIN_ERROR"}}"#,
    ),
    (
        "okta",
        r#"{"actor":{"alternateId":"u{u}@example.com","displayName":"User {u}","id":"00ubewfku1EX0WCFk697","type":"User"},"authenticationContext":{"authenticationStep":0,"externalSessionId":"idxvF50v_5sT2-GOA7_K0Amyw"},"client":{"device":"Computer","geographicalContext":{"city":"Atlanta","country":"United States","geolocation":{"lat":33.9794,"lon":-84.3459},"postalCode":"30350","state":"Georgia"},"ipAddress":"99.108.5.{ip}","userAgent":{"browser":"CHROME","os":"Mac OS 14.4.1 (Sonoma)","rawUserAgent":"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 Safari/537.36"},"zone":"null"},"debugContext":{"debugData":{"authnRequestId":"5167029d2c8308348d651c0be650230f","dtHash":"f23be3b6d8bfd69c14e0d1b33e790b84fa5358eab0a09a1058816ad65d633da4","oktaUserAgentExtended":"okta-auth-js/7.0.1 okta-signin-widget-7.16.1","origin":"https://trial-2340039.okta.com","requestId":"601b158a3b3e23be5bbf74d0fe63cd78","requestUri":"/idp/idx/challenge/answer","threatSuspected":"false","url":"/idp/idx/challenge/answer?"}},"displayMessage":"User login to Okta","eventType":"user.session.start","legacyEventType":"core.user_auth.login_success","outcome":{"result":"SUCCESS"},"published":"2024-04-02T19:17:37.621Z","request":{"ipChain":[{"geographicalContext":{"city":"Atlanta","country":"United States","geolocation":{"lat":33.9794,"lon":-84.3459},"postalCode":"30350","state":"Georgia"},"ip":"99.108.5.{ip}","version":"V4"}]},"securityContext":{"asNumber":7018,"asOrg":"at&t corp.","domain":"sbcglobal.net","isProxy":false,"isp":"att services inc"},"severity":"INFO","target":[{"alternateId":"unknown","displayName":"Password","id":"lae1at5k3ir9bV1gr697","type":"AuthenticatorEnrollment"},{"alternateId":"Okta Dashboard","displayName":"Okta Dashboard","id":"0oabewfkt83T8ve1o697","type":"AppInstance"}],"transaction":{"detail":{},"id":"601b158a3b3e23be5bbf74d0fe63cd78","type":"WEB"},"uuid":"aac560bd-{i}","version":"0"}"#,
    ),
    (
        "auth0",
        r#"{"date":"2026-11-14T21:50:33.473Z","type":"fp","description":"Wrong email or password.","connection":"Username-Password-Authentication","connection_id":"con_ABCDEF","client_id":"123987LKJsdfmnb","client_name":"www.example.com","ip":"198.0.217.{ip}","user_agent":"Other 0.0.0 / Other 0.0.0","details":{"error":{"message":"Wrong email or password."}},"user_id":"auth0|{u}","user_name":"u{u}@example.com","strategy":"auth0","strategy_type":"database","log_id":"9002{i}","isMobile":false}"#,
    ),
    (
        "keycloak",
        r#"{"id":"kc-{i}","time":1795456800120,"type":"LOGIN_ERROR","realmId":"prod","clientId":"web","userId":"u{u}","sessionId":"s-{i}","ipAddress":"203.0.113.{ip}","error":"invalid_user_credentials","details":{"username":"u{u}","auth_method":"openid-connect","auth_type":"code","redirect_uri":"https://app.example.com/callback","code_id":"629888b4-49eb-4659-93da-32fc1ce73abd"}}"#,
    ),
    (
        "k8s_audit",
        r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"263db4e4-{i}","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/kube-system/secrets","verb":"create","user":{"username":"u{u}","groups":["system:masters","system:authenticated"],"extra":{"authentication.kubernetes.io/credential-id":["JTI=jti-{i}"]}},"sourceIPs":["10.0.0.{ip}"],"userAgent":"kubeadm/v1.16.2 (linux/amd64) kubernetes/c97fe50","objectRef":{"resource":"secrets","namespace":"kube-system","name":"bootstrap-token-ne7bxu","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":201},"requestReceivedTimestamp":"2026-03-24T18:53:49.023018Z","stageTimestamp":"2026-03-24T18:53:49.025530Z","annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":""}}"#,
    ),
    (
        "opa",
        r#"{"decision_id":"1df154b5-{i}","input":{"attributes":{"destination":{"address":{"socketAddress":{"address":"10.0.16.44","portValue":14001}}},"metadataContext":{},"request":{"http":{"headers":{":authority":"bookstore.bookstore:14001",":method":"GET",":path":"/books-bought","accept-encoding":"gzip","client-app":"bookbuyer","user-agent":"Go-http-client/1.1","x-forwarded-proto":"http","x-request-id":"69b80716-6af4-4986-bf8c-8f209d96f131"},"host":"bookstore.bookstore:14001","id":"6079090369556950701","method":"GET","path":"/books-bought","protocol":"HTTP/1.1"},"time":"2021-05-04T01:21:18.195876Z"},"source":{"principal":"spiffe://cluster.local/ns/shop/sa/u{u}","address":{"socketAddress":{"address":"10.244.2.{ip}","portValue":53488}}}},"parsed_body":null,"parsed_path":["books-bought"],"parsed_query":{},"truncated_body":false,"version":{"encoding":"protojson","ext_authz":"v3"}},"labels":{"id":"6e56bc11-a212-4c3e-be4d-b33186fd581d","version":"0.28.0-envoy"},"level":"info","metrics":{"timer_rego_query_eval_ns":105799,"timer_server_handler_ns":425097},"msg":"Decision Log","path":"envoy/authz/allow","requested_by":"","result":false,"time":"2021-05-04T01:21:18Z","timestamp":"2026-05-04T01:21:18.1971808Z","type":"openpolicyagent.org/decision_logs"}"#,
    ),
    (
        "ocsf",
        r#"{"class_uid":3002,"category_uid":3,"activity_id":1,"type_uid":300201,"status_id":2,"severity_id":1,"time":1795456800120,"metadata":{"uid":"o-{i}","version":"1.1.0","product":{"name":"idp","vendor_name":"Example"}},"user":{"name":"u{u}","uid":"{u}"},"src_endpoint":{"ip":"203.0.113.{ip}"},"is_mfa":false,"auth_protocol":"OAUTH 2.0","session":{"uid":"s-{i}"},"http_request":{"user_agent":"Mozilla/5.0"},"status_detail":"bad password"}"#,
    ),
];

fn records(template: &str, count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            template
                .replace("{i}", &i.to_string())
                .replace("{u}", &(i % 5_000).to_string())
                .replace("{ip}", &(i % 250).to_string())
                .into_bytes()
        })
        .collect()
}

/// One pass: decode, push, encode every full segment (only decode with `decode_only`);
/// returns the events kept.
fn pass(format: &Format, records: &[Vec<u8>], decode_only: bool) -> usize {
    let context = DecodeContext {
        now: NOW,
        limits: ContractLimits::default(),
        envelope_time: None,
    };
    let options = EncodeOptions::default();
    let mut segment = SegmentBuilder::new(format.name(), 0, 64 * 1024);
    let mut events = 0;
    let flush = |segment: &mut SegmentBuilder| {
        if let Some(finished) = segment.finish().expect("finish segment") {
            for (table, _, batch) in &finished.batches {
                black_box(encode(*table, batch, &options).expect("encode"));
            }
        }
    };
    for (offset, record) in records.iter().enumerate() {
        let Decoded::Event(event) = format.decode(record, &context) else {
            panic!("{}: the template maps", format.name());
        };
        if decode_only {
            black_box(&event);
            events += 1;
            continue;
        }
        let meta = IngestMeta {
            topic: format.name(),
            partition: 0,
            offset: offset as i64,
            ingest_time: NOW,
        };
        segment.push_event(&event, &meta);
        events += 1;
        if segment.rows() >= SEGMENT_ROWS {
            flush(&mut segment);
        }
    }
    flush(&mut segment);
    events
}

fn number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let count = number("EVENTS", 200_000);
    let runs = number("RUNS", 3).max(1);
    println!("{count} records per format, best of {runs} passes, one core");
    println!(
        "{:<10} {:>9} {:>12} {:>9} {:>11} {:>14} {:>11}",
        "format", "bytes/rec", "events/s", "MB/s", "× contract", "decode only/s", "× contract"
    );
    let mut contract_rate = None;
    let mut contract_decode = None;
    for (index, (name, template)) in TEMPLATES.into_iter().enumerate() {
        let format = Format::builtin(name).expect("a built-in format");
        let records = records(template, count);
        let bytes: usize = records.iter().map(Vec::len).sum();
        let best = |decode_only: bool| {
            (0..runs)
                .map(|_| {
                    let start = Instant::now();
                    assert_eq!(pass(&format, &records, decode_only), count);
                    start.elapsed()
                })
                .min()
                .unwrap_or(Duration::MAX)
        };
        let (full, decode) = (best(false), best(true));
        let rate = count as f64 / full.as_secs_f64();
        let decode_rate = count as f64 / decode.as_secs_f64();
        let contract = *contract_rate.get_or_insert(rate);
        let contract_decode = *contract_decode.get_or_insert(decode_rate);
        // The second contract row carries the attributes a Keycloak record keeps.
        let label = if index == 1 { "+attrs" } else { name };
        println!(
            "{:<10} {:>9} {:>12.0} {:>9.1} {:>10.2} {:>14.0} {:>10.2}",
            label,
            bytes / count,
            rate,
            bytes as f64 / full.as_secs_f64() / 1e6,
            rate / contract,
            decode_rate,
            decode_rate / contract_decode
        );
    }
}
