//! The querier's peers, for `system.queries` across the cluster.
//!
//! ```text
//!  system.queries on querier A
//!    ├─ A's own QueryLog                        querier = A's name
//!    └─ each peer P (--queriers): Flight DoAction "ferrite.system.queries"
//!         └─ P answers its own log as one Arrow IPC stream, tagged with P's instance id
//!                                               querier = P's address as A reaches it
//! ```
//!
//! A peer list usually names every querier, this one included: a peer that answers with
//! this process's instance id is this querier, so its rows are not added twice, and the
//! address it was reached by becomes this querier's name. A peer that does not answer is
//! skipped with a warning: one querier restarting must not make `system.queries` fail.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::compute::concat_batches;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow_flight::Action;
use arrow_flight::flight_service_client::FlightServiceClient;
use ferrite_proto::auth::{AuthChannel, ClientAuth};
use parking_lot::RwLock;
use tracing::warn;

use crate::error::QueryError;
use crate::query_log::QueryLog;
use crate::system::{queries_batch, queries_schema};

/// The Flight `DoAction` type a querier answers with its query log.
pub const QUERIES_ACTION: &str = "ferrite.system.queries";

/// Schema metadata key holding the answering querier's instance id.
const INSTANCE_KEY: &str = "ferrite.querier.instance";

/// How long a peer has to answer: `system.queries` skips a slower one.
const PEER_TIMEOUT: Duration = Duration::from_secs(5);

/// This querier and its peers.
#[derive(Debug)]
pub struct QuerierCluster {
    /// Unique per process: how a querier recognises itself in its peer list.
    instance: uuid::Uuid,
    /// What the `querier` column says for this querier's own queries.
    name: RwLock<String>,
    peers: RwLock<Vec<Peer>>,
}

#[derive(Debug, Clone)]
struct Peer {
    address: String,
    client: FlightServiceClient<AuthChannel>,
}

impl QuerierCluster {
    /// A querier named `name`, with no peers yet.
    pub fn new(name: impl Into<String>) -> Arc<Self> {
        Arc::new(Self {
            instance: uuid::Uuid::new_v4(),
            name: RwLock::new(name.into()),
            peers: RwLock::new(Vec::new()),
        })
    }

    /// Rename this querier (its address once known).
    pub fn set_name(&self, name: impl Into<String>) {
        *self.name.write() = name.into();
    }

    /// Replace the peer list; `auth` says how to reach each address. An address that is not
    /// a valid URI is left out with a warning.
    pub fn set_peers(&self, addresses: &[String], auth: impl Fn(&str) -> ClientAuth) {
        let mut peers = self.peers.write();
        let next = addresses
            .iter()
            .filter_map(|address| {
                if let Some(p) = peers.iter().find(|p| &p.address == address) {
                    return Some(p.clone());
                }
                let auth = auth(address);
                match ferrite_ingester::grpc::lazy_channel(address, PEER_TIMEOUT, &auth) {
                    Ok((channel, _)) => Some(Peer {
                        address: address.clone(),
                        client: FlightServiceClient::new(auth.channel(channel)),
                    }),
                    Err(e) => {
                        warn!(error = %e, "querier peer left out");
                        None
                    }
                }
            })
            .collect();
        *peers = next;
    }

    /// This querier's own log as a peer asks for it: one Arrow IPC stream, tagged with the
    /// instance id.
    pub(crate) fn encode_local(&self, log: &QueryLog) -> Result<Vec<u8>, QueryError> {
        let batch = queries_batch(&log.snapshot(), &self.name.read())?;
        let schema = Arc::new(
            batch
                .schema()
                .as_ref()
                .clone()
                .with_metadata([(INSTANCE_KEY.to_string(), self.instance.to_string())].into()),
        );
        let batch = batch
            .with_schema(Arc::clone(&schema))
            .map_err(|e| QueryError::Internal(format!("tagging the query log: {e}")))?;
        let ipc = |e| QueryError::Internal(format!("encoding the query log: {e}"));
        let mut bytes = Vec::new();
        let mut writer = StreamWriter::try_new(&mut bytes, &schema).map_err(ipc)?;
        writer.write(&batch).map_err(ipc)?;
        writer.finish().map_err(ipc)?;
        drop(writer);
        Ok(bytes)
    }

    /// `system.queries`: this querier's log and every answering peer's.
    pub(crate) async fn queries(&self, log: &QueryLog) -> Result<RecordBatch, QueryError> {
        let peers = self.peers.read().clone();
        let answers = futures::future::join_all(peers.iter().map(|p| self.ask(p))).await;
        let mut name = self.name.read().clone();
        let mut batches = Vec::new();
        for (peer, answer) in peers.iter().zip(answers) {
            match answer {
                Ok(Answer::Myself) => name = peer.address.clone(),
                Ok(Answer::Other(batch)) => batches.push(batch),
                Err(e) => {
                    warn!(querier = %peer.address, error = %e, "querier peer skipped in system.queries")
                }
            }
        }
        batches.insert(0, queries_batch(&log.snapshot(), &name)?);
        concat_batches(&queries_schema(), &batches)
            .map_err(|e| QueryError::Internal(format!("merging query logs: {e}")))
    }

    async fn ask(&self, peer: &Peer) -> Result<Answer, String> {
        let call = async {
            let mut client = peer.client.clone();
            let action = Action {
                r#type: QUERIES_ACTION.to_string(),
                body: Default::default(),
            };
            let status = |s: tonic::Status| format!("{:?}: {}", s.code(), s.message());
            let mut results = client.do_action(action).await.map_err(status)?.into_inner();
            let mut body = Vec::new();
            while let Some(result) = results.message().await.map_err(status)? {
                body.extend_from_slice(&result.body);
            }
            Ok::<_, String>(body)
        };
        let body = tokio::time::timeout(PEER_TIMEOUT, call)
            .await
            .map_err(|_| format!("no answer within {PEER_TIMEOUT:?}"))??;
        let invalid = |e: arrow::error::ArrowError| format!("invalid query log: {e}");
        let reader = StreamReader::try_new(body.as_slice(), None).map_err(invalid)?;
        let instance = reader.schema().metadata().get(INSTANCE_KEY).cloned();
        if instance.as_deref() == Some(self.instance.to_string().as_str()) {
            return Ok(Answer::Myself);
        }
        let batches = reader.collect::<Result<Vec<_>, _>>().map_err(invalid)?;
        let mut merged = Vec::with_capacity(batches.len());
        for batch in batches {
            if batch.num_columns() != queries_schema().fields().len() {
                return Err(format!(
                    "query log has {} columns, expected {}",
                    batch.num_columns(),
                    queries_schema().fields().len()
                ));
            }
            // The address this querier reached the peer by names it, whatever it calls itself.
            let querier: ArrayRef = Arc::new(StringArray::from(vec![
                peer.address.as_str();
                batch.num_rows()
            ]));
            let mut columns = batch.columns().to_vec();
            let last = columns.len() - 1;
            columns[last] = querier;
            merged.push(RecordBatch::try_new(queries_schema(), columns).map_err(invalid)?);
        }
        Ok(Answer::Other(
            concat_batches(&queries_schema(), &merged).map_err(invalid)?,
        ))
    }
}

enum Answer {
    /// The peer is this querier.
    Myself,
    /// Another querier's queries.
    Other(RecordBatch),
}
