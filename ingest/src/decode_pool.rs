//! Decoding ahead of the pipeline thread, on a pool of threads, without changing the
//! order the pipeline sees.
//!
//! A dispatcher thread deals the source's batches to the decoders in turn (batch 0 to
//! decoder 0, batch 1 to decoder 1, ...), and the pipeline thread takes the decoded
//! batches back in the same turn, so it sees them in source order with no reordering
//! buffer: per source partition, messages keep their order, and so do assignments and
//! revocations relative to them. Each decoder holds at most one batch waiting on each
//! side, so memory stays bounded and a slow pipeline thread stops the source as before.
//!
//! A decoder decodes every message of its batch, and copies each event out of its
//! message (the events go on to the detection thread, which outlives the message). The
//! pipeline thread then only decides what to keep, builds the Arrow rows and hands the
//! events on; messages it skips (already in the lake) were decoded for nothing, the
//! price of deciding in order.

use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use authtrail_model::ContractLimits;

use crate::decode::{decode, Clock, Decoding};
use crate::formats::SourceFormats;
use crate::message::{Durable, Input, RawMessage};
use crate::writer::PartitionKey;
use crate::{Error, Result};

/// A message for the pipeline thread, decoded already when a pool did it.
pub(crate) struct Arrived {
    pub message: RawMessage,
    pub decoded: Option<Decoding<'static>>,
}

/// What the pipeline thread receives: the source's input, its messages decoded or not.
pub(crate) enum Arrival {
    Messages(Vec<Arrived>),
    Assign(Vec<PartitionKey>),
    Revoke {
        partitions: Vec<PartitionKey>,
        reply: SyncSender<Vec<Durable>>,
    },
}

impl Arrival {
    /// The source's input with `decode` applied to each message.
    fn from_input(input: Input, mut decode: impl FnMut(RawMessage) -> Arrived) -> Self {
        match input {
            Input::Messages(messages) => {
                Arrival::Messages(messages.into_iter().map(&mut decode).collect())
            }
            Input::Assign(partitions) => Arrival::Assign(partitions),
            Input::Revoke { partitions, reply } => Arrival::Revoke { partitions, reply },
        }
    }
}

/// What the pipeline thread's next wait brought.
pub(crate) enum Next {
    Arrival(Arrival),
    /// Nothing arrived within the wait.
    Timeout,
    /// Every sender is gone and everything sent was delivered.
    Ended,
}

/// Where the pipeline thread's input comes from.
pub(crate) enum Feed {
    /// Straight from the source; the pipeline thread decodes.
    Direct(Receiver<Input>),
    /// Through a pool of decoders.
    Pool(DecodePool),
}

impl Feed {
    /// The next arrival, waiting at most `wait`.
    pub fn next(&mut self, wait: Duration) -> Result<Next> {
        match self {
            Feed::Direct(input) => match input.recv_timeout(wait) {
                Ok(input) => Ok(Next::Arrival(Arrival::from_input(input, |message| {
                    Arrived {
                        message,
                        decoded: None,
                    }
                }))),
                Err(RecvTimeoutError::Timeout) => Ok(Next::Timeout),
                Err(RecvTimeoutError::Disconnected) => Ok(Next::Ended),
            },
            Feed::Pool(pool) => pool.next(wait),
        }
    }
}

/// The dispatcher and the decoders, and where the pipeline thread takes its turn.
pub(crate) struct DecodePool {
    /// Each decoder's decoded batches, taken in turn.
    outputs: Vec<Receiver<Arrival>>,
    /// The decoder whose batch comes next.
    turn: usize,
    /// The dispatcher and the decoders, joined once the input has ended.
    threads: Vec<JoinHandle<()>>,
}

/// The source's batches each decoder may hold waiting, on its way in and on its way out.
const QUEUED_PER_DECODER: usize = 1;

impl DecodePool {
    /// Starts `decoders` threads (at least one) decoding what `input` brings.
    pub fn start(
        input: Receiver<Input>,
        decoders: usize,
        formats: SourceFormats,
        limits: ContractLimits,
        clock: Clock,
    ) -> Result<Self> {
        let formats = Arc::new(formats);
        let mut inputs = Vec::new();
        let mut outputs = Vec::new();
        let mut threads = Vec::new();
        for index in 0..decoders.max(1) {
            let (to_decoder, batches) = sync_channel::<Input>(QUEUED_PER_DECODER);
            let (decoded, output) = sync_channel(QUEUED_PER_DECODER);
            let formats = formats.clone();
            let decoder = thread::Builder::new()
                .name(format!("authtrail-decode-{index}"))
                .spawn(move || {
                    for batch in batches {
                        let arrival = Arrival::from_input(batch, |message| {
                            let decoding = decode(&message, &formats, limits, clock());
                            let decoded = Decoding {
                                now: decoding.now,
                                outcome: decoding.outcome.into_owned(),
                            };
                            Arrived {
                                message,
                                decoded: Some(decoded),
                            }
                        });
                        // The pipeline thread is gone (it stopped on an error): so are we.
                        if decoded.send(arrival).is_err() {
                            return;
                        }
                    }
                })
                .map_err(Error::Thread)?;
            inputs.push(to_decoder);
            outputs.push(output);
            threads.push(decoder);
        }
        let dispatcher = thread::Builder::new()
            .name("authtrail-dispatch".into())
            .spawn(move || {
                for (batch, turn) in input.into_iter().zip((0..inputs.len()).cycle()) {
                    if inputs[turn].send(batch).is_err() {
                        return;
                    }
                }
            })
            .map_err(Error::Thread)?;
        threads.push(dispatcher);
        Ok(DecodePool {
            outputs,
            turn: 0,
            threads,
        })
    }

    fn next(&mut self, wait: Duration) -> Result<Next> {
        match self.outputs[self.turn].recv_timeout(wait) {
            Ok(arrival) => {
                self.turn = (self.turn + 1) % self.outputs.len();
                Ok(Next::Arrival(arrival))
            }
            Err(RecvTimeoutError::Timeout) => Ok(Next::Timeout),
            // This decoder's input ended, so the dispatcher sent nothing after the batches
            // already taken: every thread has finished or is finishing. One that panicked
            // ended early, and what it held is missing: that is an error, not the end.
            Err(RecvTimeoutError::Disconnected) => {
                for thread in self.threads.drain(..) {
                    thread.join().map_err(|_| Error::PipelineGone)?;
                }
                Ok(Next::Ended)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Outcome;

    fn message(offset: i64) -> RawMessage {
        let text = format!(
            r#"{{"id":"e-{offset}","time":"2026-11-23T10:00:00Z","kind":"authz","principal":"user:ana","outcome":"allow"}}"#
        );
        RawMessage {
            source: Arc::from("file.x"),
            partition: 0,
            offset,
            timestamp: None,
            size: text.len(),
            payload: Some(text.into_bytes()),
        }
    }

    #[test]
    fn hands_batches_back_decoded_in_source_order() {
        let (sender, input) = sync_channel(2);
        let mut pool = DecodePool::start(
            input,
            3,
            SourceFormats::contract(),
            ContractLimits::default(),
            || 1_796_083_200_000_000,
        )
        .unwrap();
        let source = thread::spawn(move || {
            for batch in 0..20 {
                let offsets = batch * 10..batch * 10 + 10;
                sender
                    .send(Input::Messages(offsets.map(message).collect()))
                    .unwrap();
                if batch % 7 == 0 {
                    sender
                        .send(Input::Assign(vec![(Arc::from("file.x"), batch as i32)]))
                        .unwrap();
                }
            }
        });
        let mut seen = Vec::new();
        loop {
            match pool.next(Duration::from_secs(60)).unwrap() {
                Next::Arrival(Arrival::Messages(messages)) => {
                    for arrived in messages {
                        let decoded = arrived.decoded.expect("decoded by the pool");
                        let Outcome::Event(event) = decoded.outcome else {
                            panic!("a good event");
                        };
                        assert_eq!(event.id, format!("e-{}", arrived.message.offset));
                        seen.push(arrived.message.offset);
                    }
                }
                Next::Arrival(Arrival::Assign(partitions)) => {
                    seen.push(-i64::from(partitions[0].1) - 1000);
                }
                Next::Arrival(Arrival::Revoke { .. }) => panic!("none sent"),
                Next::Timeout => panic!("the source sends without pause"),
                Next::Ended => break,
            }
        }
        source.join().unwrap();
        let mut expected = Vec::new();
        for batch in 0..20i64 {
            expected.extend(batch * 10..batch * 10 + 10);
            if batch % 7 == 0 {
                expected.push(-batch - 1000);
            }
        }
        assert_eq!(seen, expected);
    }
}
