//! Requests in, responses out: the API versions the broker speaks and one handler per API.
//!
//! Versions are capped where later ones change semantics the broker does not implement:
//! Fetch at 12 and Produce at 9 (13 and up name topics by id), OffsetFetch at 7 (8 batches
//! groups), FindCoordinator at 3 (4 batches keys). Clients pick the highest common
//! version from ApiVersions.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::find_coordinator_response::FindCoordinatorResponse;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{decode_request_header_from_buffer, Decodable, Encodable, StrBytes};
use kafka_protocol::ResponseError;

use crate::batch::Invalid;
use crate::groups::{Coordinator, JoinRequest};
use crate::offsets::Offsets;
use crate::storage::{AppendError, FetchError, Storage};

/// The broker's node id in metadata.
const NODE_ID: i32 = 1;
const HOST: &str = "127.0.0.1";
/// How long a refused producer is asked to back off before retrying.
const FULL_THROTTLE_MS: i32 = 1_000;

/// The APIs served and their version ranges.
const SUPPORTED: [(ApiKey, i16, i16); 13] = [
    (ApiKey::Produce, 3, 9),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 1, 9),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 7),
    (ApiKey::FindCoordinator, 0, 3),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::InitProducerId, 0, 4),
];

/// What every connection shares.
pub(crate) struct Shared {
    pub storage: Storage,
    pub offsets: Mutex<Offsets>,
    pub coordinator: Coordinator,
    pub port: i32,
    pub producer_ids: AtomicI64,
}

impl Shared {
    fn offsets(&self) -> MutexGuard<'_, Offsets> {
        self.offsets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

type Response = Result<Option<BytesMut>, String>;

fn str(value: impl Into<String>) -> StrBytes {
    StrBytes::from_string(value.into())
}

fn encode<R: Encodable>(key: ApiKey, version: i16, correlation_id: i32, body: &R) -> Response {
    let mut out = BytesMut::new();
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header
        .encode(&mut out, key.response_header_version(version))
        .and_then(|()| body.encode(&mut out, version))
        .map_err(|error| format!("encoding {key:?} v{version}: {error}"))?;
    Ok(Some(out))
}

fn decode<R: Decodable>(frame: &mut Bytes, key: ApiKey, version: i16) -> Result<R, String> {
    R::decode(frame, version).map_err(|error| format!("decoding {key:?} v{version}: {error}"))
}

/// Answers one request; `None` for a produce with acks=0. An error closes the connection.
pub(crate) async fn handle(mut frame: Bytes, shared: &Shared) -> Response {
    let key = ApiKey::try_from(i16::from_be_bytes([
        *frame.first().ok_or("empty request")?,
        *frame.get(1).ok_or("short request")?,
    ]))
    .map_err(|()| "unknown API key".to_owned())?;
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let supported = SUPPORTED
        .iter()
        .find(|(api, _, _)| *api == key)
        .is_some_and(|(_, min, max)| (*min..=*max).contains(&version));
    if key == ApiKey::ApiVersions && !supported {
        // The client learns the versions from a v0 answer and asks again.
        let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
        let body = api_versions(ResponseError::UnsupportedVersion.code());
        return encode(key, 0, correlation_id, &body);
    }
    if !supported {
        tracing::warn!(api = ?key, version, "embedded broker: unsupported request; closing the connection");
        return Err(format!("unsupported {key:?} v{version}"));
    }
    let header = decode_request_header_from_buffer(&mut frame)
        .map_err(|error| format!("request header: {error}"))?;
    let id = header.correlation_id;
    let client_id = header
        .client_id
        .map_or_else(String::new, |id| id.to_string());
    match key {
        ApiKey::ApiVersions => encode(key, version, id, &api_versions(0)),
        ApiKey::Metadata => encode(
            key,
            version,
            id,
            &metadata(decode(&mut frame, key, version)?, shared),
        ),
        ApiKey::Produce => {
            let request: ProduceRequest = decode(&mut frame, key, version)?;
            let acks = request.acks;
            let response = produce(request, shared).await;
            if acks == 0 {
                return Ok(None);
            }
            encode(key, version, id, &response)
        }
        ApiKey::Fetch => {
            let response = fetch(decode(&mut frame, key, version)?, version, shared).await;
            encode(key, version, id, &response)
        }
        ApiKey::ListOffsets => encode(
            key,
            version,
            id,
            &list_offsets(decode(&mut frame, key, version)?, shared),
        ),
        ApiKey::FindCoordinator => {
            let mut response = FindCoordinatorResponse::default();
            response.node_id = NODE_ID.into();
            response.host = str(HOST);
            response.port = shared.port;
            encode(key, version, id, &response)
        }
        ApiKey::JoinGroup => {
            let response = join_group(
                decode(&mut frame, key, version)?,
                version,
                client_id,
                shared,
            )
            .await;
            encode(key, version, id, &response)
        }
        ApiKey::SyncGroup => {
            let request: SyncGroupRequest = decode(&mut frame, key, version)?;
            let assignments = request
                .assignments
                .into_iter()
                .map(|a| (a.member_id.to_string(), a.assignment))
                .collect();
            let synced = shared
                .coordinator
                .sync(
                    &request.group_id,
                    &request.member_id,
                    request.generation_id,
                    assignments,
                )
                .await;
            let mut response = SyncGroupResponse::default();
            match synced {
                Ok(assignment) => {
                    response.assignment = assignment;
                    if version >= 5 {
                        response.protocol_type = request.protocol_type;
                        response.protocol_name = request.protocol_name;
                    }
                }
                Err(code) => response.error_code = code,
            }
            encode(key, version, id, &response)
        }
        ApiKey::Heartbeat => {
            let request: HeartbeatRequest = decode(&mut frame, key, version)?;
            let mut response = HeartbeatResponse::default();
            response.error_code = shared.coordinator.heartbeat(
                &request.group_id,
                &request.member_id,
                request.generation_id,
            );
            encode(key, version, id, &response)
        }
        ApiKey::LeaveGroup => {
            let request: LeaveGroupRequest = decode(&mut frame, key, version)?;
            let mut response = LeaveGroupResponse::default();
            if version >= 3 {
                for member in request.members {
                    let mut left = MemberResponse::default();
                    left.error_code = shared
                        .coordinator
                        .leave(&request.group_id, &member.member_id);
                    left.member_id = member.member_id;
                    left.group_instance_id = member.group_instance_id;
                    response.members.push(left);
                }
            } else {
                response.error_code = shared
                    .coordinator
                    .leave(&request.group_id, &request.member_id);
            }
            encode(key, version, id, &response)
        }
        ApiKey::OffsetCommit => {
            let response = offset_commit(decode(&mut frame, key, version)?, shared).await;
            encode(key, version, id, &response)
        }
        ApiKey::OffsetFetch => encode(
            key,
            version,
            id,
            &offset_fetch(decode(&mut frame, key, version)?, shared),
        ),
        ApiKey::InitProducerId => {
            let request: InitProducerIdRequest = decode(&mut frame, key, version)?;
            let mut response = InitProducerIdResponse::default();
            if request.transactional_id.is_some() {
                // Transactions would need markers and a coordinator of their own.
                response.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
            } else {
                response.producer_id = shared.producer_ids.fetch_add(1, Ordering::Relaxed).into();
                response.producer_epoch = 0;
            }
            encode(key, version, id, &response)
        }
        _ => Err(format!("unsupported {key:?}")),
    }
}

fn api_versions(error_code: i16) -> ApiVersionsResponse {
    let mut response = ApiVersionsResponse::default();
    response.error_code = error_code;
    response.api_keys = SUPPORTED
        .iter()
        .map(|(key, min, max)| {
            ApiVersion::default()
                .with_api_key(*key as i16)
                .with_min_version(*min)
                .with_max_version(*max)
        })
        .collect();
    response
}

fn metadata(request: MetadataRequest, shared: &Shared) -> MetadataResponse {
    let mut response = MetadataResponse::default();
    response.brokers = vec![MetadataResponseBroker::default()
        .with_node_id(NODE_ID.into())
        .with_host(str(HOST))
        .with_port(shared.port)];
    response.cluster_id = Some(str("authtrail-embedded"));
    response.controller_id = NODE_ID.into();
    let names: Vec<String> = match request.topics {
        None => shared
            .storage
            .topics()
            .map(|(name, _)| name.to_owned())
            .collect(),
        Some(topics) => topics
            .into_iter()
            .filter_map(|topic| topic.name.map(|name| name.to_string()))
            .collect(),
    };
    for name in names {
        let mut topic = MetadataResponseTopic::default();
        match shared.storage.partitions(&name) {
            Some(count) => {
                topic.partitions = (0..count)
                    .map(|index| {
                        MetadataResponsePartition::default()
                            .with_partition_index(index)
                            .with_leader_id(NODE_ID.into())
                            .with_leader_epoch(-1)
                            .with_replica_nodes(vec![NODE_ID.into()])
                            .with_isr_nodes(vec![NODE_ID.into()])
                    })
                    .collect();
            }
            // Topics are not created on demand: a typo would fill the bound unread.
            None => topic.error_code = ResponseError::UnknownTopicOrPartition.code(),
        }
        topic.name = Some(TopicName(str(name)));
        response.topics.push(topic);
    }
    response
}

/// Syncs the data of every file a request wrote, all at once: concurrent syncs on one file
/// system share its journal commit, so a request that wrote to four partitions waits about
/// one sync, not four in a row (that was the tail of keyed, multi-partition produce
/// requests: docs/benchmarks.md, "HTTP collector"). The first error, if any.
fn sync_all(files: &[std::sync::Arc<std::fs::File>]) -> Option<std::io::Error> {
    match files {
        [] => None,
        [file] => file.sync_data().err(),
        [first, others @ ..] => std::thread::scope(|scope| {
            let others: Vec<_> = others
                .iter()
                .map(|file| scope.spawn(move || file.sync_data()))
                .collect();
            let mut failed = first.sync_data().err();
            for other in others {
                let result = other
                    .join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("a sync thread panicked")));
                failed = failed.or(result.err());
            }
            failed
        }),
    }
}

async fn produce(request: ProduceRequest, shared: &Shared) -> ProduceResponse {
    let sync = request.acks != 0;
    let mut response = ProduceResponse::default();
    let mut unsynced = Vec::new();
    let mut full = false;
    // Storage work blocks (writes); it runs here, inside the request, on a blocking-capable
    // section so the reactor keeps serving other connections.
    let results = tokio::task::block_in_place(|| {
        let mut results = Vec::new();
        for topic in &request.topic_data {
            for partition in &topic.partition_data {
                let records = partition.records.as_deref().unwrap_or_default();
                let outcome = shared
                    .storage
                    .append(&topic.name, partition.index, records, || {
                        shared.offsets().floors()
                    });
                results.push((topic.name.clone(), partition.index, outcome));
            }
        }
        results
    });
    let mut by_topic: Vec<TopicProduceResponse> = Vec::new();
    for (name, index, outcome) in results {
        let mut partition = PartitionProduceResponse::default().with_index(index);
        match outcome {
            Ok(appended) => {
                partition.base_offset = appended.base_offset;
                partition.log_start_offset = appended.log_start;
                partition.log_append_time_ms = -1;
                unsynced.extend(appended.unsynced);
            }
            Err(error) => {
                partition.base_offset = -1;
                partition.error_code = match error {
                    AppendError::UnknownPartition => ResponseError::UnknownTopicOrPartition,
                    AppendError::Invalid(Invalid::OldFormat) => {
                        ResponseError::UnsupportedForMessageFormat
                    }
                    AppendError::Invalid(_) => ResponseError::CorruptMessage,
                    AppendError::OutOfOrder => ResponseError::OutOfOrderSequenceNumber,
                    AppendError::Full => {
                        full = true;
                        ResponseError::KafkaStorageError
                    }
                    AppendError::Io(error) => {
                        tracing::error!(%error, "embedded broker: append failed");
                        ResponseError::KafkaStorageError
                    }
                }
                .code();
            }
        }
        match by_topic.iter_mut().find(|topic| topic.name == name) {
            Some(topic) => topic.partition_responses.push(partition),
            None => by_topic.push(
                TopicProduceResponse::default()
                    .with_name(name)
                    .with_partition_responses(vec![partition]),
            ),
        }
    }
    if sync && !unsynced.is_empty() {
        let failed = tokio::task::block_in_place(|| sync_all(&unsynced));
        if let Some(error) = failed {
            tracing::error!(%error, "embedded broker: fsync failed; producers retry");
            for topic in &mut by_topic {
                for partition in &mut topic.partition_responses {
                    partition.error_code = ResponseError::KafkaStorageError.code();
                }
            }
        }
    }
    response.responses = by_topic;
    if full {
        response.throttle_time_ms = FULL_THROTTLE_MS;
    }
    response
}

async fn fetch(request: FetchRequest, version: i16, shared: &Shared) -> FetchResponse {
    let max_wait = Duration::from_millis(request.max_wait_ms.clamp(0, 30_000) as u64);
    let deadline = tokio::time::Instant::now() + max_wait;
    let mut changes = shared.storage.subscribe();
    loop {
        changes.borrow_and_update();
        let (response, bytes, errors) = read_fetch(&request, version, shared);
        let enough = bytes >= request.min_bytes.max(1) as usize || errors;
        if enough || tokio::time::Instant::now() >= deadline {
            return response;
        }
        if tokio::time::timeout_at(deadline, changes.changed())
            .await
            .is_err()
        {
            // Nothing new: answer with what there is (nothing).
            return read_fetch(&request, version, shared).0;
        }
    }
}

fn read_fetch(
    request: &FetchRequest,
    version: i16,
    shared: &Shared,
) -> (FetchResponse, usize, bool) {
    let mut response = FetchResponse::default();
    let mut budget = if request.max_bytes > 0 {
        request.max_bytes as usize
    } else {
        usize::MAX
    };
    let mut total = 0;
    let mut errors = false;
    for topic in &request.topics {
        let mut out = FetchableTopicResponse::default().with_topic(topic.topic.clone());
        for wanted in &topic.partitions {
            let mut partition = PartitionData::default().with_partition_index(wanted.partition);
            let max = (wanted.partition_max_bytes.max(0) as usize).min(budget);
            match shared
                .storage
                .read(&topic.topic, wanted.partition, wanted.fetch_offset, max)
            {
                Ok(read) => {
                    partition.high_watermark = read.high_watermark;
                    partition.last_stable_offset = read.high_watermark;
                    partition.log_start_offset = read.log_start;
                    total += read.records.len();
                    budget = budget.saturating_sub(read.records.len());
                    partition.records = Some(Bytes::from(read.records));
                }
                Err(FetchError::UnknownPartition) => {
                    errors = true;
                    partition.error_code = ResponseError::UnknownTopicOrPartition.code();
                    partition.records = Some(Bytes::new());
                }
                Err(FetchError::OutOfRange {
                    log_start,
                    high_watermark,
                }) => {
                    errors = true;
                    partition.error_code = ResponseError::OffsetOutOfRange.code();
                    partition.high_watermark = high_watermark;
                    partition.last_stable_offset = high_watermark;
                    partition.log_start_offset = log_start;
                    partition.records = Some(Bytes::new());
                }
            }
            if version >= 4 {
                partition.aborted_transactions = Some(Vec::new());
            }
            out.partitions.push(partition);
        }
        response.responses.push(out);
    }
    (response, total, errors)
}

fn list_offsets(request: ListOffsetsRequest, shared: &Shared) -> ListOffsetsResponse {
    let mut response = ListOffsetsResponse::default();
    for topic in request.topics {
        let mut out = ListOffsetsTopicResponse::default().with_name(topic.name.clone());
        for wanted in topic.partitions {
            let mut partition = ListOffsetsPartitionResponse::default()
                .with_partition_index(wanted.partition_index);
            partition.timestamp = -1;
            match shared.storage.offsets(&topic.name, wanted.partition_index) {
                Some((start, end)) => {
                    partition.offset = match wanted.timestamp {
                        -2 => start,
                        timestamp if timestamp >= 0 => shared
                            .storage
                            .offset_for_timestamp(&topic.name, wanted.partition_index, timestamp)
                            .unwrap_or(end),
                        // -1 (latest) and the newer special values.
                        _ => end,
                    };
                }
                None => {
                    partition.offset = -1;
                    partition.error_code = ResponseError::UnknownTopicOrPartition.code();
                }
            }
            out.partitions.push(partition);
        }
        response.topics.push(out);
    }
    response
}

async fn join_group(
    request: JoinGroupRequest,
    version: i16,
    client_id: String,
    shared: &Shared,
) -> JoinGroupResponse {
    let session_timeout = Duration::from_millis(request.session_timeout_ms.max(0) as u64);
    let rebalance_timeout = if version >= 1 {
        Duration::from_millis(request.rebalance_timeout_ms.max(0) as u64)
    } else {
        session_timeout
    };
    let joined = shared
        .coordinator
        .join(JoinRequest {
            group: request.group_id.to_string(),
            member_id: request.member_id.to_string(),
            client_id: if client_id.is_empty() {
                "member".into()
            } else {
                client_id
            },
            protocol_type: request.protocol_type.to_string(),
            protocols: request
                .protocols
                .into_iter()
                .map(|p| (p.name.to_string(), p.metadata))
                .collect(),
            session_timeout,
            rebalance_timeout,
        })
        .await;
    let mut response = JoinGroupResponse::default();
    match joined {
        Ok(joined) => {
            response.generation_id = joined.generation;
            response.protocol_name = Some(str(joined.protocol));
            if version >= 7 {
                response.protocol_type = Some(request.protocol_type);
            }
            response.leader = str(joined.leader);
            response.member_id = str(joined.member_id);
            response.members = joined
                .members
                .into_iter()
                .map(|(id, metadata)| {
                    JoinGroupResponseMember::default()
                        .with_member_id(str(id))
                        .with_metadata(metadata)
                })
                .collect();
        }
        Err(code) => {
            response.error_code = code;
            response.generation_id = -1;
            response.member_id = request.member_id;
        }
    }
    response
}

async fn offset_commit(request: OffsetCommitRequest, shared: &Shared) -> OffsetCommitResponse {
    let allowed = shared.coordinator.may_commit(
        &request.group_id,
        &request.member_id,
        request.generation_id_or_member_epoch,
    );
    let mut commits = Vec::new();
    let mut codes: HashMap<(String, i32), i16> = HashMap::new();
    for topic in &request.topics {
        for partition in &topic.partitions {
            let code = if allowed != 0 {
                allowed
            } else if shared
                .storage
                .offsets(&topic.name, partition.partition_index)
                .is_none()
            {
                ResponseError::UnknownTopicOrPartition.code()
            } else {
                commits.push((
                    topic.name.to_string(),
                    partition.partition_index,
                    partition.committed_offset,
                ));
                0
            };
            codes.insert((topic.name.to_string(), partition.partition_index), code);
        }
    }
    if !commits.is_empty() {
        let stored = tokio::task::block_in_place(|| {
            let mut offsets = shared.offsets();
            offsets.commit(&request.group_id, &commits)?;
            let floors = offsets.floors();
            drop(offsets);
            // Committed segments go now, not when the bound is reached: the disk is shared.
            shared.storage.retain(&floors, false)
        });
        if let Err(error) = stored {
            tracing::error!(%error, "embedded broker: storing committed offsets failed");
            for (topic, partition, _) in &commits {
                codes.insert(
                    (topic.clone(), *partition),
                    ResponseError::KafkaStorageError.code(),
                );
            }
        }
    }
    let mut response = OffsetCommitResponse::default();
    for topic in request.topics {
        let partitions = topic
            .partitions
            .iter()
            .map(|partition| {
                OffsetCommitResponsePartition::default()
                    .with_partition_index(partition.partition_index)
                    .with_error_code(codes[&(topic.name.to_string(), partition.partition_index)])
            })
            .collect();
        response.topics.push(
            OffsetCommitResponseTopic::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    response
}

fn offset_fetch(request: OffsetFetchRequest, shared: &Shared) -> OffsetFetchResponse {
    let offsets = shared.offsets();
    let wanted: Vec<(String, Vec<i32>)> = match request.topics {
        Some(topics) => topics
            .into_iter()
            .map(|topic| (topic.name.to_string(), topic.partition_indexes))
            .collect(),
        None => offsets
            .of_group(&request.group_id)
            .into_iter()
            .map(|(topic, partitions)| (topic, partitions.into_iter().map(|(p, _)| p).collect()))
            .collect(),
    };
    let mut response = OffsetFetchResponse::default();
    for (topic, partitions) in wanted {
        let partitions = partitions
            .into_iter()
            .map(|index| {
                let mut partition =
                    OffsetFetchResponsePartition::default().with_partition_index(index);
                partition.committed_offset =
                    offsets.get(&request.group_id, &topic, index).unwrap_or(-1);
                partition.metadata = Some(str(""));
                partition
            })
            .collect();
        response.topics.push(
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(str(topic)))
                .with_partitions(partitions),
        );
    }
    response
}
