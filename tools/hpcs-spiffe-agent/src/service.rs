//! The `SpiffeWorkloadAPI` gRPC service (JWT-SVID profile).
//!
//! Every RPC first checks the `workload.spiffe.io: true` metadata the
//! Workload API specification requires (`InvalidArgument` otherwise), then
//! identifies the caller by the uid in the unix socket's peer credentials
//! (`SO_PEERCRED`, through tonic's [`UdsConnectInfo`]) and looks it up in the
//! [`IdentityMap`]. A caller without an identity gets `PermissionDenied` on
//! every RPC, as SPIRE does for unattested callers by default.
//!
//! The X.509-SVID profile (`FetchX509SVID`, `FetchX509Bundles`) answers
//! `Unimplemented`: hpcs only uses JWT-SVIDs.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use spiffe::SpiffeId;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::UdsConnectInfo;
use tonic::{Request, Response, Status};

use crate::config::IdentityMap;
use crate::jwt::Issuer;
use crate::pb::spiffe_workload_api_server::SpiffeWorkloadApi;
use crate::pb::{
    JwtBundlesRequest, JwtBundlesResponse, Jwtsvid, JwtsvidRequest, JwtsvidResponse,
    ValidateJwtsvidRequest, ValidateJwtsvidResponse, X509BundlesRequest, X509BundlesResponse,
    X509svidRequest, X509svidResponse,
};

/// The metadata key every Workload API request must carry with value `true`.
pub const SECURITY_HEADER: &str = "workload.spiffe.io";

/// The Workload API implementation.
#[derive(Debug, Clone)]
pub struct WorkloadApi {
    issuer: Arc<Issuer>,
    identities: Arc<IdentityMap>,
    /// Becomes `true` at shutdown; open bundle streams then end, so the
    /// server's graceful shutdown does not wait for clients.
    shutdown: watch::Receiver<bool>,
}

impl WorkloadApi {
    pub fn new(
        issuer: Arc<Issuer>,
        identities: Arc<IdentityMap>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Self {
            issuer,
            identities,
            shutdown,
        }
    }

    /// Checks the security header and returns the caller's uid and identity.
    fn authorize<T>(&self, request: &Request<T>) -> Result<(u32, &SpiffeId), Status> {
        check_security_header(request)?;
        let uid = request
            .extensions()
            .get::<UdsConnectInfo>()
            .and_then(|info| info.peer_cred)
            .map(|cred| cred.uid())
            .ok_or_else(|| Status::permission_denied("caller's uid is unknown"))?;
        let id = self
            .identities
            .lookup(uid)
            .ok_or_else(|| Status::permission_denied("no identity issued"))?;
        Ok((uid, id))
    }
}

fn check_security_header<T>(request: &Request<T>) -> Result<(), Status> {
    match request.metadata().get(SECURITY_HEADER) {
        Some(value) if value == "true" => Ok(()),
        _ => Err(Status::invalid_argument(
            "security header missing from request",
        )),
    }
}

fn unix_now() -> Result<u64, Status> {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| Status::internal("system clock is before 1970"))
}

type Unimplemented<T> = tokio_stream::Empty<Result<T, Status>>;

#[tonic::async_trait]
impl SpiffeWorkloadApi for WorkloadApi {
    type FetchX509SVIDStream = Unimplemented<X509svidResponse>;
    type FetchX509BundlesStream = Unimplemented<X509BundlesResponse>;
    type FetchJWTBundlesStream = ReceiverStream<Result<JwtBundlesResponse, Status>>;

    async fn fetch_x509svid(
        &self,
        request: Request<X509svidRequest>,
    ) -> Result<Response<Self::FetchX509SVIDStream>, Status> {
        check_security_header(&request)?;
        Err(Status::unimplemented(
            "X.509-SVIDs are not implemented by this development agent",
        ))
    }

    async fn fetch_x509_bundles(
        &self,
        request: Request<X509BundlesRequest>,
    ) -> Result<Response<Self::FetchX509BundlesStream>, Status> {
        check_security_header(&request)?;
        Err(Status::unimplemented(
            "X.509 bundles are not implemented by this development agent",
        ))
    }

    async fn fetch_jwtsvid(
        &self,
        request: Request<JwtsvidRequest>,
    ) -> Result<Response<JwtsvidResponse>, Status> {
        let (uid, id) = self.authorize(&request)?;
        let req = request.get_ref();
        if req.audience.is_empty() {
            return Err(Status::invalid_argument("audience must be specified"));
        }
        if req.audience.iter().any(String::is_empty) {
            return Err(Status::invalid_argument("audience must not be empty"));
        }
        if !req.spiffe_id.is_empty() {
            let wanted = SpiffeId::new(&req.spiffe_id).map_err(|e| {
                Status::invalid_argument(format!("invalid requested SPIFFE ID: {e}"))
            })?;
            if &wanted != id {
                return Err(Status::permission_denied("no identity issued"));
            }
        }
        let now = unix_now()?;
        let svid = self
            .issuer
            .issue(id, &req.audience, now)
            .map_err(|e| Status::internal(e.to_string()))?;
        eprintln!(
            "hpcs-spiffe-agent: issued JWT-SVID to uid {uid}: sub={id} aud={:?}",
            req.audience
        );
        Ok(Response::new(JwtsvidResponse {
            svids: vec![Jwtsvid {
                spiffe_id: id.to_string(),
                svid,
                hint: String::new(),
            }],
        }))
    }

    async fn fetch_jwt_bundles(
        &self,
        request: Request<JwtBundlesRequest>,
    ) -> Result<Response<Self::FetchJWTBundlesStream>, Status> {
        self.authorize(&request)?;
        let mut bundles = HashMap::new();
        bundles.insert(self.issuer.trust_domain_id(), self.issuer.jwks());
        let (tx, rx) = mpsc::channel(1);
        tx.send(Ok(JwtBundlesResponse { bundles }))
            .await
            .map_err(|_| Status::internal("bundle stream closed"))?;
        // The key never rotates, so there is nothing more to send; hold the
        // stream open until the client goes away or the agent stops.
        let stopped = crate::stop_requested(self.shutdown.clone());
        tokio::spawn(async move {
            tokio::select! {
                () = tx.closed() => {}
                () = stopped => {}
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn validate_jwtsvid(
        &self,
        request: Request<ValidateJwtsvidRequest>,
    ) -> Result<Response<ValidateJwtsvidResponse>, Status> {
        self.authorize(&request)?;
        let req = request.get_ref();
        if req.audience.is_empty() {
            return Err(Status::invalid_argument("audience must be specified"));
        }
        if req.svid.is_empty() {
            return Err(Status::invalid_argument("svid must be specified"));
        }
        let now = unix_now()?;
        let valid = self
            .issuer
            .validate(&req.svid, &req.audience, now)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        Ok(Response::new(ValidateJwtsvidResponse {
            spiffe_id: valid.spiffe_id.to_string(),
            claims: Some(to_struct(&valid.claims)),
        }))
    }
}

/// JSON object → `google.protobuf.Struct`.
fn to_struct(map: &serde_json::Map<String, Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: map
            .iter()
            .map(|(k, v)| (k.clone(), to_value(v)))
            .collect::<BTreeMap<_, _>>(),
    }
}

fn to_value(v: &Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match v {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        // Without serde_json's arbitrary_precision, every number has an f64 form.
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.iter().map(to_value).collect(),
        }),
        Value::Object(map) => Kind::StructValue(to_struct(map)),
    };
    prost_types::Value { kind: Some(kind) }
}
