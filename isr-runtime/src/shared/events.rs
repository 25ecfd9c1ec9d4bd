//! The reader of the event stream: applies other instances' commits, and detects when events
//! were lost (the stream trimmed past this reader, or Redis restarted with lost data, which
//! shows as a new epoch) so the instance re-checks its local pages.

use super::SharedTier;
use crate::metrics;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::StreamReadReply;
use redis::Value;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How long one `XREAD` waits for new events.
const BLOCK: Duration = Duration::from_secs(1);
/// Reads between two epoch checks (a data set flushed without a reconnect).
const EPOCH_CHECK_EVERY: u32 = 5;
/// Pause after a failed read.
const RETRY_AFTER: Duration = Duration::from_millis(250);

/// What the event reader tells the engine.
pub trait EventSink: Send + Sync + 'static {
    /// Another instance committed `key` as `generation`.
    fn page_changed(self: Arc<Self>, key: &str, generation: u64);
    /// Events may have been missed: every local page must be re-checked against Redis.
    fn resync(self: Arc<Self>);
    /// Redis answers again after being unreachable (write back what was generated meanwhile).
    fn reconnected(self: Arc<Self>);
}

/// A stream entry id (`<ms>-<seq>`), ordered as Redis orders them.
///
/// ```
/// use isr::shared::StreamId;
/// let a: StreamId = "1700000000000-3".parse().unwrap();
/// let b: StreamId = "1700000000001-0".parse().unwrap();
/// assert!(a < b);
/// assert_eq!(a.to_string(), "1700000000000-3");
/// assert!("12".parse::<StreamId>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct StreamId {
    ms: u64,
    seq: u64,
}

impl std::str::FromStr for StreamId {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (ms, seq) = text
            .split_once('-')
            .ok_or_else(|| format!("not a stream id: {text:?}"))?;
        let number = |part: &str| {
            part.parse::<u64>()
                .map_err(|_| format!("not a stream id: {text:?}"))
        };
        Ok(StreamId {
            ms: number(ms)?,
            seq: number(seq)?,
        })
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// Where the reader is: its last entry and the epoch it read under.
struct Position {
    last: StreamId,
    epoch: String,
}

pub(super) fn spawn_reader(tier: Arc<SharedTier>, sink: Weak<dyn EventSink>) {
    tokio::spawn(async move {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(300)))
            .set_response_timeout(Some(BLOCK + Duration::from_secs(2)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let connection = match ConnectionManager::new_lazy_with_config(
            tier.client().clone(),
            config,
        ) {
            Ok(connection) => connection,
            Err(error) => {
                tracing::error!(%error, "cannot start the Redis event reader; other instances' changes will not reach this one");
                return;
            }
        };
        let mut reader = Reader {
            tier,
            connection,
            position: None,
            healthy: false,
            failed_since_healthy: false,
        };
        let mut reads = 0u32;
        loop {
            let Some(sink) = sink.upgrade() else { return };
            if !reader.healthy {
                match reader.position(&sink).await {
                    Ok(()) => reader.healthy = true,
                    Err(error) => {
                        tracing::debug!(%error, "event reader cannot reach Redis");
                        // Pages generated meanwhile are written back once it answers.
                        reader.failed_since_healthy = true;
                        drop(sink);
                        tokio::time::sleep(RETRY_AFTER).await;
                        continue;
                    }
                }
            }
            reads = reads.wrapping_add(1);
            let result = if reads.is_multiple_of(EPOCH_CHECK_EVERY) {
                reader.check_epoch(&sink).await
            } else {
                Ok(())
            };
            let result = match result {
                Ok(()) => reader.read(&sink).await,
                Err(error) => Err(error),
            };
            if let Err(error) = result {
                tracing::debug!(%error, "event read failed");
                reader.healthy = false;
                reader.failed_since_healthy = true;
                drop(sink);
                tokio::time::sleep(RETRY_AFTER).await;
            }
        }
    });
}

struct Reader {
    tier: Arc<SharedTier>,
    connection: ConnectionManager,
    position: Option<Position>,
    healthy: bool,
    /// A read failed since the last successful positioning (a reconnect follows).
    failed_since_healthy: bool,
}

impl Reader {
    /// Positions the reader at start-up or after a failure, and reports a gap when events may
    /// have been lost meanwhile.
    async fn position(&mut self, sink: &Arc<dyn EventSink>) -> std::io::Result<()> {
        let epoch = self.epoch().await?;
        let gap = match &self.position {
            // First start: local pages may predate commits made while this instance was off.
            None => true,
            Some(position) if position.epoch != epoch => {
                tracing::warn!("Redis lost its data (new epoch): re-checking every local page");
                true
            }
            Some(position) => self.trimmed_past(position.last).await?,
        };
        let last = match &self.position {
            Some(position) if position.epoch == epoch && !gap => position.last,
            _ => self.newest_entry().await?,
        };
        self.position = Some(Position { last, epoch });
        if gap {
            sink.clone().resync();
        }
        if std::mem::take(&mut self.failed_since_healthy) {
            sink.clone().reconnected();
        }
        Ok(())
    }

    /// The data set's epoch, created when missing.
    async fn epoch(&mut self) -> std::io::Result<String> {
        let key = self.tier.keys().epoch();
        let mut connection = self.connection.clone();
        let proposed = format!("{:016x}", fastrand::u64(..));
        let (_, epoch): (Option<String>, String) = self
            .tier
            .call("epoch", super::REQUEST_TIMEOUT, async {
                redis::pipe()
                    .cmd("SET")
                    .arg(&key)
                    .arg(&proposed)
                    .arg("NX")
                    .cmd("GET")
                    .arg(&key)
                    .query_async(&mut connection)
                    .await
            })
            .await?;
        Ok(epoch)
    }

    async fn check_epoch(&mut self, sink: &Arc<dyn EventSink>) -> std::io::Result<()> {
        let epoch = self.epoch().await?;
        if self.position.as_ref().is_some_and(|p| p.epoch != epoch) {
            // Repositions and reports the gap.
            self.position(sink).await?;
        }
        Ok(())
    }

    /// The id of the stream's newest entry (`0-0` when empty).
    async fn newest_entry(&mut self) -> std::io::Result<StreamId> {
        let mut connection = self.connection.clone();
        let events = self.tier.keys().events();
        let newest: Value = self
            .tier
            .call("newest_event", super::REQUEST_TIMEOUT, async {
                redis::cmd("XREVRANGE")
                    .arg(&events)
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(1)
                    .query_async(&mut connection)
                    .await
            })
            .await?;
        let id = match newest {
            Value::Array(entries) => entries.into_iter().next().and_then(|entry| match entry {
                Value::Array(parts) => parts.into_iter().next().and_then(text_of),
                _ => None,
            }),
            _ => None,
        };
        Ok(id.and_then(|id| id.parse().ok()).unwrap_or_default())
    }

    /// Whether the stream dropped entries newer than `last` (trimmed while this reader was
    /// away).
    async fn trimmed_past(&mut self, last: StreamId) -> std::io::Result<bool> {
        let mut connection = self.connection.clone();
        let events = self.tier.keys().events();
        let info: redis::RedisResult<Value> = self
            .tier
            .call("stream_info", super::REQUEST_TIMEOUT, async {
                Ok(redis::cmd("XINFO")
                    .arg("STREAM")
                    .arg(&events)
                    .query_async(&mut connection)
                    .await)
            })
            .await?;
        // No stream yet: nothing was trimmed.
        let Ok(info) = info else { return Ok(false) };
        let deleted = field(&info, "max-deleted-entry-id")
            .and_then(text_of)
            .and_then(|id| id.parse::<StreamId>().ok())
            .unwrap_or_default();
        Ok(deleted > last)
    }

    /// Reads and applies the next events (waits up to [`BLOCK`] for some).
    async fn read(&mut self, sink: &Arc<dyn EventSink>) -> std::io::Result<()> {
        let Some(position) = &self.position else {
            return Ok(());
        };
        let last = position.last.to_string();
        let events = self.tier.keys().events();
        let mut connection = self.connection.clone();
        let reply: Option<StreamReadReply> = self
            .tier
            .call("read_events", BLOCK + Duration::from_secs(2), async {
                redis::cmd("XREAD")
                    .arg("COUNT")
                    .arg(512)
                    .arg("BLOCK")
                    .arg(BLOCK.as_millis() as u64)
                    .arg("STREAMS")
                    .arg(&events)
                    .arg(&last)
                    .query_async(&mut connection)
                    .await
            })
            .await?;
        let Some(reply) = reply else { return Ok(()) };
        let mut newest = None;
        for stream in reply.keys {
            for entry in stream.ids {
                newest = entry.id.parse::<StreamId>().ok().or(newest);
                let origin: Option<String> = entry.get("o");
                if origin.as_deref() == Some(self.tier.instance()) {
                    continue;
                }
                let (Some(key), Some(generation)) =
                    (entry.get::<String>("k"), entry.get::<u64>("g"))
                else {
                    continue;
                };
                metrics::redis_event_applied();
                sink.clone().page_changed(&key, generation);
            }
        }
        if let (Some(newest), Some(position)) = (newest, &mut self.position) {
            position.last = position.last.max(newest);
        }
        Ok(())
    }
}

fn text_of(value: Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes).ok(),
        Value::SimpleString(text) => Some(text),
        _ => None,
    }
}

/// A field of a reply that is a map (RESP3) or a flat list of names and values (RESP2).
fn field(reply: &Value, name: &str) -> Option<Value> {
    match reply {
        Value::Map(pairs) => pairs
            .iter()
            .find(|(k, _)| text_of(k.clone()).as_deref() == Some(name))
            .map(|(_, v)| v.clone()),
        Value::Array(items) => items
            .chunks(2)
            .find(|pair| text_of(pair[0].clone()).as_deref() == Some(name))
            .and_then(|pair| pair.get(1).cloned()),
        _ => None,
    }
}
