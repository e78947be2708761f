//! The classic consumer group protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup) for
//! the members of each group, with one generation at a time.
//!
//! A rebalance starts when a member joins or leaves or its session expires. Members that
//! rejoin within the rebalance timeout make the next generation; the first of them (or the
//! previous leader) gets every member's subscription and sends back the assignment, which
//! the others wait for in SyncGroup. Waiting requests sleep on a `watch` channel that every
//! state change bumps; [`Coordinator::tick`] runs the timeouts.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tokio::sync::watch;

/// How long a rebalance waits after the last join for more members (Kafka's
/// `group.initial.rebalance.delay.ms`, shorter: most groups here have one member).
const JOIN_SETTLE: Duration = Duration::from_millis(200);

/// A join's outcome for one member.
#[derive(Debug, Clone)]
pub(crate) struct Joined {
    pub generation: i32,
    pub protocol: String,
    pub leader: String,
    pub member_id: String,
    /// Every member's subscription, for the leader only.
    pub members: Vec<(String, Bytes)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

struct Member {
    protocols: Vec<(String, Bytes)>,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    last_seen: Instant,
    /// Has joined the rebalance in progress.
    rejoined: bool,
    joined: Option<Joined>,
    assignment: Option<Bytes>,
}

struct Group {
    state: State,
    generation: i32,
    protocol_type: String,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    rebalance_deadline: Instant,
    last_join: Instant,
}

impl Group {
    fn new() -> Group {
        Group {
            state: State::Empty,
            generation: 0,
            protocol_type: String::new(),
            leader: None,
            members: BTreeMap::new(),
            rebalance_deadline: Instant::now(),
            last_join: Instant::now(),
        }
    }

    fn start_rebalance(&mut self, now: Instant) {
        if self.state != State::PreparingRebalance {
            let longest = self
                .members
                .values()
                .map(|member| member.rebalance_timeout)
                .max()
                .unwrap_or_default();
            self.state = State::PreparingRebalance;
            self.rebalance_deadline = now + longest;
            for member in self.members.values_mut() {
                member.rejoined = false;
                member.joined = None;
                member.assignment = None;
            }
        }
        if self.members.is_empty() {
            self.state = State::Empty;
        }
    }

    /// Ends the join phase when every member rejoined and the group settled, or at the
    /// deadline (dropping those who did not rejoin).
    fn try_complete_join(&mut self, now: Instant) -> bool {
        if self.state != State::PreparingRebalance {
            return false;
        }
        let all = self.members.values().all(|member| member.rejoined);
        let settled = now >= self.last_join + JOIN_SETTLE;
        if !(all && settled) && now < self.rebalance_deadline {
            return false;
        }
        self.members.retain(|_, member| member.rejoined);
        self.generation += 1;
        if self.members.is_empty() {
            self.state = State::Empty;
            self.leader = None;
            return true;
        }
        let leader = match &self.leader {
            Some(leader) if self.members.contains_key(leader) => leader.clone(),
            _ => self.members.keys().next().expect("not empty").clone(),
        };
        // The leader's most preferred protocol that every member supports.
        let protocol = self.members[&leader]
            .protocols
            .iter()
            .map(|(name, _)| name.clone())
            .find(|name| {
                self.members
                    .values()
                    .all(|member| member.protocols.iter().any(|(n, _)| n == name))
            })
            .unwrap_or_default();
        let subscriptions: Vec<(String, Bytes)> = self
            .members
            .iter()
            .map(|(id, member)| {
                let metadata = member
                    .protocols
                    .iter()
                    .find(|(name, _)| *name == protocol)
                    .map(|(_, metadata)| metadata.clone())
                    .unwrap_or_default();
                (id.clone(), metadata)
            })
            .collect();
        for (id, member) in &mut self.members {
            member.last_seen = now;
            member.joined = Some(Joined {
                generation: self.generation,
                protocol: protocol.clone(),
                leader: leader.clone(),
                member_id: id.clone(),
                members: if *id == leader {
                    subscriptions.clone()
                } else {
                    Vec::new()
                },
            });
        }
        self.leader = Some(leader);
        self.state = State::CompletingRebalance;
        true
    }

    /// Removes members whose session expired; true when that changed the group.
    fn expire(&mut self, now: Instant) -> bool {
        if self.state == State::Empty {
            return false;
        }
        let before = self.members.len();
        // A member waiting in JoinGroup does not heartbeat; one that joined is kept.
        let preparing = self.state == State::PreparingRebalance;
        self.members.retain(|_, member| {
            (preparing && member.rejoined) || now < member.last_seen + member.session_timeout
        });
        if self.members.len() == before {
            return false;
        }
        tracing::info!(
            expired = before - self.members.len(),
            "embedded broker: group members' sessions expired; rebalancing"
        );
        self.start_rebalance(now);
        true
    }
}

/// A JoinGroup request's fields the coordinator needs.
pub(crate) struct JoinRequest {
    pub group: String,
    pub member_id: String,
    pub client_id: String,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
}

/// Every group's membership.
pub(crate) struct Coordinator {
    groups: Mutex<HashMap<String, Group>>,
    changed: watch::Sender<u64>,
    next_member: AtomicU64,
}

type Code = i16;
const NONE: Code = 0;

fn code(error: ResponseError) -> Code {
    error.code()
}

impl Coordinator {
    pub(crate) fn new() -> Coordinator {
        Coordinator {
            groups: Mutex::new(HashMap::new()),
            changed: watch::channel(0).0,
            next_member: AtomicU64::new(1),
        }
    }

    fn groups(&self) -> MutexGuard<'_, HashMap<String, Group>> {
        self.groups
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|count| *count += 1);
    }

    /// Runs the timeouts: completes joins, expires sessions.
    pub(crate) fn tick(&self) {
        let now = Instant::now();
        let mut changed = false;
        for group in self.groups().values_mut() {
            changed |= group.try_complete_join(now);
            changed |= group.expire(now);
        }
        if changed {
            self.bump();
        }
    }

    /// JoinGroup: waits for the rebalance to complete.
    pub(crate) async fn join(&self, request: JoinRequest) -> Result<Joined, Code> {
        let now = Instant::now();
        let member_id = {
            let mut groups = self.groups();
            let group = groups
                .entry(request.group.clone())
                .or_insert_with(Group::new);
            if !group.members.is_empty() && group.protocol_type != request.protocol_type {
                return Err(code(ResponseError::InconsistentGroupProtocol));
            }
            let member_id = if request.member_id.is_empty() {
                let n = self.next_member.fetch_add(1, Ordering::Relaxed);
                format!("{}-{n}", request.client_id)
            } else if group.members.contains_key(&request.member_id) {
                request.member_id.clone()
            } else {
                return Err(code(ResponseError::UnknownMemberId));
            };
            group.protocol_type = request.protocol_type;
            group.start_rebalance(now);
            group.state = State::PreparingRebalance;
            group.last_join = now;
            let member = Member {
                protocols: request.protocols,
                session_timeout: request.session_timeout,
                rebalance_timeout: request.rebalance_timeout,
                last_seen: now,
                rejoined: true,
                joined: None,
                assignment: None,
            };
            group.rebalance_deadline = group.rebalance_deadline.max(now + member.rebalance_timeout);
            group.members.insert(member_id.clone(), member);
            member_id
        };
        self.bump();
        let mut changes = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + request.rebalance_timeout + JOIN_SETTLE;
        loop {
            {
                let mut groups = self.groups();
                let group = groups.get_mut(&request.group).expect("groups are kept");
                let Some(member) = group.members.get_mut(&member_id) else {
                    return Err(code(ResponseError::UnknownMemberId));
                };
                if let Some(joined) = member.joined.clone() {
                    return Ok(joined);
                }
            }
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                return Err(code(ResponseError::RebalanceInProgress));
            }
        }
    }

    /// SyncGroup: the leader's assignment in, each member's out (waiting for the leader).
    pub(crate) async fn sync(
        &self,
        group_id: &str,
        member_id: &str,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
    ) -> Result<Bytes, Code> {
        let mut changes = self.changed.subscribe();
        let mut wait = Duration::from_secs(60);
        let mut first = true;
        loop {
            {
                let mut groups = self.groups();
                let Some(group) = groups.get_mut(group_id) else {
                    return Err(code(ResponseError::UnknownMemberId));
                };
                if !group.members.contains_key(member_id) {
                    return Err(code(ResponseError::UnknownMemberId));
                }
                if group.generation != generation {
                    return Err(code(ResponseError::IllegalGeneration));
                }
                let state = group.state;
                let is_leader = group.leader.as_deref() == Some(member_id);
                let member = group.members.get_mut(member_id).expect("checked");
                member.last_seen = Instant::now();
                if first {
                    wait = member.session_timeout;
                    first = false;
                }
                match state {
                    State::PreparingRebalance | State::Empty => {
                        return Err(code(ResponseError::RebalanceInProgress))
                    }
                    State::Stable => return Ok(member.assignment.clone().unwrap_or_default()),
                    State::CompletingRebalance if is_leader => {
                        let mut assignments: HashMap<String, Bytes> =
                            assignments.into_iter().collect();
                        for (id, member) in &mut group.members {
                            member.assignment = Some(assignments.remove(id).unwrap_or_default());
                        }
                        group.state = State::Stable;
                        let own = group.members[member_id].assignment.clone();
                        drop(groups);
                        self.bump();
                        return Ok(own.unwrap_or_default());
                    }
                    State::CompletingRebalance => {}
                }
            }
            if tokio::time::timeout(wait, changes.changed()).await.is_err() {
                return Err(code(ResponseError::RebalanceInProgress));
            }
        }
    }

    /// Heartbeat: keeps the session, and tells the member when to rejoin.
    pub(crate) fn heartbeat(&self, group_id: &str, member_id: &str, generation: i32) -> Code {
        let mut groups = self.groups();
        let Some(group) = groups.get_mut(group_id) else {
            return code(ResponseError::UnknownMemberId);
        };
        let Some(member) = group.members.get_mut(member_id) else {
            return code(ResponseError::UnknownMemberId);
        };
        member.last_seen = Instant::now();
        if generation != group.generation {
            return code(ResponseError::IllegalGeneration);
        }
        match group.state {
            State::PreparingRebalance => code(ResponseError::RebalanceInProgress),
            _ => NONE,
        }
    }

    /// LeaveGroup: the member goes and the rest rebalance.
    pub(crate) fn leave(&self, group_id: &str, member_id: &str) -> Code {
        let mut groups = self.groups();
        let Some(group) = groups.get_mut(group_id) else {
            return code(ResponseError::UnknownMemberId);
        };
        if group.members.remove(member_id).is_none() {
            return code(ResponseError::UnknownMemberId);
        }
        group.start_rebalance(Instant::now());
        drop(groups);
        self.bump();
        NONE
    }

    /// Whether an offset commit from this member of this generation may be stored
    /// (generation -1: a consumer outside the group protocol).
    pub(crate) fn may_commit(&self, group_id: &str, member_id: &str, generation: i32) -> Code {
        if generation < 0 {
            return NONE;
        }
        let groups = self.groups();
        let Some(group) = groups.get(group_id) else {
            return code(ResponseError::IllegalGeneration);
        };
        if !group.members.contains_key(member_id) {
            return code(ResponseError::UnknownMemberId);
        }
        if group.generation != generation {
            return code(ResponseError::IllegalGeneration);
        }
        if group.state == State::CompletingRebalance {
            return code(ResponseError::RebalanceInProgress);
        }
        NONE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(member_id: &str) -> JoinRequest {
        JoinRequest {
            group: "g".into(),
            member_id: member_id.into(),
            client_id: "c".into(),
            protocol_type: "consumer".into(),
            protocols: vec![
                ("range".into(), Bytes::from_static(b"r")),
                ("roundrobin".into(), Bytes::from_static(b"rr")),
            ],
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(5),
        }
    }

    async fn ticking<T>(
        coordinator: &Coordinator,
        work: impl std::future::Future<Output = T>,
    ) -> T {
        let ticks = async {
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                coordinator.tick();
            }
        };
        tokio::select! {
            done = work => done,
            () = ticks => unreachable!(),
        }
    }

    #[tokio::test]
    async fn two_members_join_one_generation_and_get_the_leaders_assignment() {
        let coordinator = Coordinator::new();
        let (a, b) = ticking(&coordinator, async {
            tokio::join!(coordinator.join(request("")), coordinator.join(request("")))
        })
        .await;
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!((a.generation, b.generation), (1, 1));
        assert_eq!(a.protocol, "range");
        let (leader, follower) = if a.member_id == a.leader {
            (a, b)
        } else {
            (b, a)
        };
        assert_eq!(leader.members.len(), 2);
        assert!(follower.members.is_empty());
        let assignments = vec![
            (leader.member_id.clone(), Bytes::from_static(b"p0")),
            (follower.member_id.clone(), Bytes::from_static(b"p1")),
        ];
        let (got_leader, got_follower) = ticking(&coordinator, async {
            tokio::join!(
                coordinator.sync("g", &leader.member_id, 1, assignments),
                coordinator.sync("g", &follower.member_id, 1, Vec::new())
            )
        })
        .await;
        assert_eq!(got_leader.unwrap(), Bytes::from_static(b"p0"));
        assert_eq!(got_follower.unwrap(), Bytes::from_static(b"p1"));
        assert_eq!(coordinator.heartbeat("g", &leader.member_id, 1), NONE);
        // One leaves: the other is told to rejoin, and commits of the old generation are refused after.
        assert_eq!(coordinator.leave("g", &follower.member_id), NONE);
        assert_eq!(
            coordinator.heartbeat("g", &leader.member_id, 1),
            code(ResponseError::RebalanceInProgress)
        );
        let rejoined = ticking(&coordinator, coordinator.join(request(&leader.member_id)))
            .await
            .unwrap();
        assert_eq!((rejoined.generation, rejoined.members.len()), (2, 1));
        assert_eq!(
            coordinator.may_commit("g", &leader.member_id, 1),
            code(ResponseError::IllegalGeneration)
        );
    }

    #[tokio::test]
    async fn an_unknown_member_is_told_to_join_afresh() {
        let coordinator = Coordinator::new();
        let refused = coordinator.join(request("stale-member")).await;
        assert_eq!(refused.unwrap_err(), code(ResponseError::UnknownMemberId));
        assert_eq!(
            coordinator.heartbeat("g", "stale-member", 3),
            code(ResponseError::UnknownMemberId)
        );
    }
}
