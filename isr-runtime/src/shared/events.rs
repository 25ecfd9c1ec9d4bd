//! The reader of the event stream: applies other instances' commits, and detects when events
//! were lost (the stream trimmed past this reader, or Redis restarted with lost data, which
//! shows as a new epoch) so the instance re-checks its local pages.

use super::RedisTier;
use crate::engine::tier::{EventSink, SharedTier};
use crate::metrics;
use crate::store::Mark;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::StreamReadReply;
use redis::Value;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How long one `XREAD` waits for new events.
const BLOCK: Duration = Duration::from_secs(1);
/// Reads between two gap checks (a data set flushed, or entries trimmed, without a reconnect).
const GAP_CHECK_EVERY: u32 = 5;
/// Pause after a failed read.
const RETRY_AFTER: Duration = Duration::from_millis(250);

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

/// Where the reader is: its last entry, the epoch it reads under, and how many entries it has
/// read since the stream had `added_before` entries (to tell trimmed-away unread entries).
struct Position {
    last: StreamId,
    epoch: String,
    added_before: u64,
    read: u64,
}

impl Position {
    /// Whether entries this reader never read are gone from the stream. Trimming removes the
    /// oldest entries: when the stream still holds an entry at or before `last`, everything
    /// after it is there; otherwise every entry left is unread, and fewer than were added
    /// since means some were trimmed.
    fn missed_entries(&self, info: &StreamInfo) -> bool {
        let unread = info
            .entries_added
            .saturating_sub(self.added_before + self.read);
        match info.first_entry {
            Some(first) if first <= self.last => false,
            _ => unread > info.length,
        }
    }
}

/// What `XINFO STREAM` says (all zero and `None` when there is no stream yet).
#[derive(Default)]
struct StreamInfo {
    last_generated: StreamId,
    entries_added: u64,
    length: u64,
    first_entry: Option<StreamId>,
}

pub(super) fn spawn_reader(tier: Arc<RedisTier>, sink: Weak<dyn EventSink>) {
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
            let result = if reads.is_multiple_of(GAP_CHECK_EVERY) {
                reader.check_for_gap(&sink).await
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
    tier: Arc<RedisTier>,
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
        let info = self.stream_info().await?;
        let gap = match &self.position {
            // First start: local pages may predate commits made while this instance was off.
            None => true,
            Some(position) if position.epoch != epoch => {
                tracing::warn!("Redis lost its data (new epoch): re-checking every local page");
                true
            }
            Some(position) if position.missed_entries(&info) => {
                tracing::warn!("events this instance did not read were trimmed from the stream: re-checking every local page");
                true
            }
            Some(_) => false,
        };
        if gap {
            self.position = Some(Position {
                last: info.last_generated,
                epoch,
                added_before: info.entries_added,
                read: 0,
            });
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

    /// Between reads: a data set replaced without a reconnect (a new epoch) or entries this
    /// reader never read trimmed away are gaps too; repositions and reports them.
    async fn check_for_gap(&mut self, sink: &Arc<dyn EventSink>) -> std::io::Result<()> {
        let Some(known) = self.position.as_ref().map(|p| p.epoch.clone()) else {
            return Ok(());
        };
        let epoch = self.epoch().await?;
        let info = self.stream_info().await?;
        let missed = self
            .position
            .as_ref()
            .is_some_and(|p| p.missed_entries(&info));
        if epoch != known || missed {
            self.position(sink).await?;
        }
        Ok(())
    }

    /// The stream's counters (`XINFO STREAM`).
    async fn stream_info(&mut self) -> std::io::Result<StreamInfo> {
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
        // No stream yet.
        let Ok(info) = info else {
            return Ok(StreamInfo::default());
        };
        let id = |value: Option<Value>| value.and_then(text_of).and_then(|t| t.parse().ok());
        let number = |value: Option<Value>| match value {
            Some(Value::Int(n)) => u64::try_from(n).unwrap_or(0),
            other => other
                .and_then(text_of)
                .and_then(|t| t.parse().ok())
                .unwrap_or(0),
        };
        let first_entry = match field(&info, "first-entry") {
            Some(Value::Array(parts)) => id(parts.into_iter().next()),
            _ => None,
        };
        Ok(StreamInfo {
            last_generated: id(field(&info, "last-generated-id")).unwrap_or_default(),
            entries_added: number(field(&info, "entries-added")),
            length: number(field(&info, "length")),
            first_entry,
        })
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
        let mut count = 0u64;
        for stream in reply.keys {
            for entry in stream.ids {
                count += 1;
                newest = entry.id.parse::<StreamId>().ok().or(newest);
                let origin: Option<String> = entry.get("o");
                if origin.as_deref() == Some(self.tier.instance()) {
                    continue;
                }
                if let Some(marks) = entry.get::<String>("marks") {
                    // A batch of invalidation marks (one that does not parse is another
                    // version's).
                    if let Ok(marks) = serde_json::from_str::<Vec<(String, Mark)>>(&marks) {
                        metrics::redis_event_applied();
                        sink.clone().pages_marked(marks);
                    }
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
        if let Some(position) = &mut self.position {
            position.read += count;
            if let Some(newest) = newest {
                position.last = position.last.max(newest);
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> StreamId {
        text.parse().unwrap()
    }

    fn at(last: &str, added_before: u64, read: u64) -> Position {
        Position {
            last: id(last),
            epoch: "e".into(),
            added_before,
            read,
        }
    }

    fn info(entries_added: u64, length: u64, first: Option<&str>) -> StreamInfo {
        StreamInfo {
            last_generated: StreamId::default(),
            entries_added,
            length,
            first_entry: first.map(id),
        }
    }

    #[test]
    fn unread_entries_trimmed_away_are_missed_and_read_ones_are_not() {
        // Positioned at 10 entries, read 2 since (the last one 5-0).
        let position = at("5-0", 10, 2);
        // 3 added after those, all still there (the stream still starts at or before 5-0).
        assert!(!position.missed_entries(&info(15, 12, Some("1-0"))));
        // The read ones were trimmed: everything left (3 entries) is unread, none lost.
        assert!(!position.missed_entries(&info(15, 3, Some("6-0"))));
        // Trimmed to 2 of the 3 unread: one was lost.
        assert!(position.missed_entries(&info(15, 2, Some("7-0"))));
        // Emptied after an unread entry was added.
        assert!(position.missed_entries(&info(13, 0, None)));
        // Emptied with nothing unread.
        assert!(!position.missed_entries(&info(12, 0, None)));
    }
}
