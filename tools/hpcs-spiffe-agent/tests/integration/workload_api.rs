//! The agent against real Workload API clients: the `spiffe` 0.19 crate
//! (what `hpcs-mount` uses) and a raw tonic client generated from the same
//! proto, for the requests the `spiffe` crate never sends.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hpcs_spiffe_agent::pb::{
    JwtBundlesRequest, JwtsvidRequest, ValidateJwtsvidRequest, X509BundlesRequest, X509svidRequest,
};
use spiffe::{JwtSvid, JwtSvidError, JwtVerificationErrorKind, TrustDomain};
use tokio_stream::StreamExt as _;
use tonic::Code;

use crate::util::{self, raw_client, spiffe_client, with_header, Agent, TD};

const AUD: &str = "hpcs-test";

fn unix_now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    i64::try_from(secs).expect("seconds fit i64")
}

#[tokio::test]
async fn svid_for_the_callers_uid_validates_against_the_fetched_bundle() {
    let dir = util::test_dir();
    let uid = util::my_uid(dir.path());
    let alice = "spiffe://example.org/user/alice/job";
    let map = format!("{uid}={alice}");
    let agent = Agent::start(
        dir.path(),
        "agent",
        &[
            "--map",
            &map,
            "--default-id",
            "spiffe://example.org/other",
            "--ttl",
            "120",
        ],
    );

    // The way hpcs-mount finds the agent: SPIFFE_ENDPOINT_SOCKET. Only this
    // test touches the variable (the others use `connect_to`), and std
    // serialises its own environment access (e.g. Command::spawn).
    std::env::set_var("SPIFFE_ENDPOINT_SOCKET", agent.endpoint());
    let client = spiffe::WorkloadApiClient::connect_env().await;
    std::env::remove_var("SPIFFE_ENDPOINT_SOCKET");
    let client = client.expect("connect through SPIFFE_ENDPOINT_SOCKET");

    let svid = client
        .fetch_jwt_svid([AUD], None)
        .await
        .expect("fetch JWT-SVID");
    assert_eq!(svid.spiffe_id().to_string(), alice);
    assert_eq!(svid.audience(), [AUD.to_owned()]);
    let lifetime = svid.expiry().unix_timestamp() - unix_now();
    assert!((100..=120).contains(&lifetime), "lifetime {lifetime}");

    let bundles = client.fetch_jwt_bundles().await.expect("fetch JWT bundles");
    let td = TrustDomain::new(TD).expect("trust domain");
    let bundle = bundles.get(&td).expect("bundle for the trust domain");
    assert!(bundle.find_jwt_authority(svid.key_id()).is_some());

    let valid = JwtSvid::parse_and_validate(svid.token(), &bundles, &[AUD])
        .expect("the spiffe crate validates the SVID against the agent's bundle");
    assert_eq!(valid.spiffe_id().to_string(), alice);
    match JwtSvid::parse_and_validate(svid.token(), &bundles, &["someone-else"]) {
        Err(JwtSvidError::InvalidToken(e)) => {
            assert_eq!(e.kind(), JwtVerificationErrorKind::AudienceMismatch);
        }
        other => panic!("wrong audience must fail validation, got {other:?}"),
    }

    // The agent-side validation (ValidateJWTSVID) agrees.
    let checked = client
        .validate_jwt_token(AUD, svid.token())
        .await
        .expect("ValidateJWTSVID accepts it");
    assert_eq!(checked.spiffe_id().to_string(), alice);
    assert!(client
        .validate_jwt_token("someone-else", svid.token())
        .await
        .is_err());

    // Asking for the caller's own SPIFFE ID explicitly works too.
    let own = client
        .fetch_jwt_svid([AUD], Some(svid.spiffe_id()))
        .await
        .expect("fetch by own SPIFFE ID");
    assert_eq!(own.spiffe_id(), svid.spiffe_id());
}

#[tokio::test]
async fn unmapped_uid_gets_the_default_id_or_is_denied() {
    let dir = util::test_dir();
    let uid = util::my_uid(dir.path());
    let someone_else = format!("{}=spiffe://example.org/user/nobody", uid.wrapping_add(1));

    let with_default = Agent::start(
        dir.path(),
        "default",
        &[
            "--map",
            &someone_else,
            "--default-id",
            "spiffe://example.org/anyone",
        ],
    );
    let svid = spiffe_client(&with_default)
        .await
        .fetch_jwt_svid([AUD], None)
        .await
        .expect("default identity");
    assert_eq!(svid.spiffe_id().to_string(), "spiffe://example.org/anyone");

    let strict = Agent::start(dir.path(), "strict", &["--map", &someone_else]);
    let err = spiffe_client(&strict)
        .await
        .fetch_jwt_svid([AUD], None)
        .await
        .expect_err("no identity for this uid");
    assert!(
        matches!(err, spiffe::WorkloadApiError::NoIdentityIssued),
        "{err:?}"
    );
    let mut raw = raw_client(&strict.socket).await;
    let request = JwtsvidRequest {
        audience: vec![AUD.into()],
        spiffe_id: String::new(),
    };
    let status = raw
        .fetch_jwtsvid(with_header(request))
        .await
        .expect_err("denied");
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = raw
        .fetch_jwt_bundles(with_header(JwtBundlesRequest {}))
        .await
        .expect_err("denied");
    assert_eq!(status.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn every_rpc_requires_the_security_header() {
    let dir = util::test_dir();
    let agent = Agent::start(
        dir.path(),
        "agent",
        &["--default-id", "spiffe://example.org/a"],
    );
    let mut raw = raw_client(&agent.socket).await;
    let jwt_request = || JwtsvidRequest {
        audience: vec![AUD.into()],
        spiffe_id: String::new(),
    };

    let codes = [
        raw.fetch_jwtsvid(jwt_request()).await.map(drop),
        raw.fetch_jwt_bundles(JwtBundlesRequest {}).await.map(drop),
        raw.validate_jwtsvid(ValidateJwtsvidRequest {
            audience: AUD.into(),
            svid: "x.y.z".into(),
        })
        .await
        .map(drop),
        raw.fetch_x509svid(X509svidRequest {}).await.map(drop),
        raw.fetch_x509_bundles(X509BundlesRequest {})
            .await
            .map(drop),
    ];
    for (i, result) in codes.into_iter().enumerate() {
        let status = result.expect_err("missing header must be rejected");
        assert_eq!(status.code(), Code::InvalidArgument, "rpc #{i}: {status:?}");
    }

    // Present but not "true" is rejected too.
    let mut request = tonic::Request::new(jwt_request());
    request
        .metadata_mut()
        .insert("workload.spiffe.io", "false".parse().expect("value"));
    let status = raw.fetch_jwtsvid(request).await.expect_err("wrong value");
    assert_eq!(status.code(), Code::InvalidArgument);

    // With the header the same request succeeds.
    let ok = raw
        .fetch_jwtsvid(with_header(jwt_request()))
        .await
        .expect("with header")
        .into_inner();
    assert_eq!(ok.svids.len(), 1);
    assert_eq!(ok.svids[0].spiffe_id, "spiffe://example.org/a");
}

#[tokio::test]
async fn bad_requests_are_invalid_and_x509_is_unimplemented() {
    let dir = util::test_dir();
    let agent = Agent::start(
        dir.path(),
        "agent",
        &["--default-id", "spiffe://example.org/a"],
    );
    let mut raw = raw_client(&agent.socket).await;

    let empty_audience = JwtsvidRequest {
        audience: vec![],
        spiffe_id: String::new(),
    };
    let status = raw
        .fetch_jwtsvid(with_header(empty_audience))
        .await
        .expect_err("empty audience");
    assert_eq!(status.code(), Code::InvalidArgument);

    let other_id = JwtsvidRequest {
        audience: vec![AUD.into()],
        spiffe_id: "spiffe://example.org/b".into(),
    };
    let status = raw
        .fetch_jwtsvid(with_header(other_id))
        .await
        .expect_err("someone else's identity");
    assert_eq!(status.code(), Code::PermissionDenied);

    // A genuine SVID with one signature byte changed fails validation.
    let svid = raw
        .fetch_jwtsvid(with_header(JwtsvidRequest {
            audience: vec![AUD.into()],
            spiffe_id: String::new(),
        }))
        .await
        .expect("svid")
        .into_inner()
        .svids
        .remove(0)
        .svid;
    let mut tampered = svid.clone().into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).expect("ascii");
    for (svid, audience) in [(tampered.as_str(), AUD), (svid.as_str(), ""), ("", AUD)] {
        let status = raw
            .validate_jwtsvid(with_header(ValidateJwtsvidRequest {
                audience: audience.into(),
                svid: svid.into(),
            }))
            .await
            .expect_err("invalid");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    }
    let ok = raw
        .validate_jwtsvid(with_header(ValidateJwtsvidRequest {
            audience: AUD.into(),
            svid,
        }))
        .await
        .expect("untampered SVID validates")
        .into_inner();
    assert_eq!(ok.spiffe_id, "spiffe://example.org/a");
    let claims = ok.claims.expect("claims");
    for claim in ["sub", "aud", "exp", "iat"] {
        assert!(claims.fields.contains_key(claim), "{claim}");
    }

    for status in [
        raw.fetch_x509svid(with_header(X509svidRequest {}))
            .await
            .map(drop)
            .expect_err("x509"),
        raw.fetch_x509_bundles(with_header(X509BundlesRequest {}))
            .await
            .map(drop)
            .expect_err("x509 bundles"),
    ] {
        assert_eq!(status.code(), Code::Unimplemented);
    }
}

#[tokio::test]
async fn backdated_svids_are_already_expired() {
    let dir = util::test_dir();
    let agent = Agent::start(
        dir.path(),
        "agent",
        &[
            "--default-id",
            "spiffe://example.org/a",
            "--ttl",
            "60",
            "--backdate",
            "3600",
        ],
    );
    let client = spiffe_client(&agent).await;
    let svid = client
        .fetch_jwt_svid([AUD], None)
        .await
        .expect("the Workload API still hands it out");
    assert!(svid.expiry().unix_timestamp() < unix_now() - 3000);
    let bundles = client.fetch_jwt_bundles().await.expect("bundles");
    match JwtSvid::parse_and_validate(svid.token(), &bundles, &[AUD]) {
        Err(JwtSvidError::InvalidToken(e)) => {
            assert_eq!(e.kind(), JwtVerificationErrorKind::Expired);
        }
        other => panic!("a backdated SVID must be expired, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundle_stream_stays_open_until_the_agent_stops() {
    let dir = util::test_dir();
    let mut agent = Agent::start(
        dir.path(),
        "agent",
        &["--default-id", "spiffe://example.org/a"],
    );
    let client = spiffe_client(&agent).await;
    let mut stream = client.stream_jwt_bundles().await.expect("stream");
    let first = stream
        .next()
        .await
        .expect("one message")
        .expect("bundle set");
    let td = TrustDomain::new(TD).expect("td");
    assert!(first.get(&td).is_some());

    // Nothing more arrives, and the stream is not closed either.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), stream.next())
            .await
            .is_err(),
        "the bundle stream must stay open"
    );

    // SIGTERM with a client still attached: exit 0, the stream ends, the socket goes.
    let status = tokio::task::block_in_place(|| agent.terminate());
    assert_eq!(status.code(), Some(0), "stderr:\n{}", agent.stderr());
    let end = tokio::time::timeout(util::WAIT_LIMIT, stream.next())
        .await
        .expect("stream ends after the agent stops");
    assert!(!matches!(end, Some(Ok(_))), "{end:?}");
    assert!(!agent.socket.exists(), "socket removed at exit");
}
