//! The Lua scripts that make lease, commit and release atomic on the Redis server.
//!
//! Each runs as one command, so no other client sees a half-done step: a lease is taken only
//! when none is held, a commit checks its fencing token (or generation) and writes the page,
//! its tag sets and its event together, and a lease is released only by its holder.

use redis::Script;
use std::sync::OnceLock;

/// `KEYS`: lease, fence counter, page. `ARGV`: ttl ms.
/// Returns `{1, token, stored generation}` when the lease was taken, `{0, holder, generation}`
/// when another instance holds it.
const ACQUIRE: &str = r#"
local gen = redis.call('HGET', KEYS[3], 'gen') or '0'
local holder = redis.call('GET', KEYS[1])
if holder then return {0, holder, gen} end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], token, 'PX', ARGV[1])
return {1, tostring(token), gen}
"#;

/// `KEYS`: lease. `ARGV`: token, ttl ms. 1 when the lease was still ours and is extended.
const RENEW: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"#;

/// `KEYS`: lease. `ARGV`: token. Deletes the lease only if it is still ours.
const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

/// `KEYS`: page, lease, events. `ARGV`: 1 token (0: a write-back without a lease), 2 the
/// generation the page replaced (a write-back is taken only while it is still stored), 3 etag ('' for a non-page), 4 meta JSON, 5 tag key prefix, 6 origin instance,
/// 7 '1' when an unchanged etag keeps the stored generation (the build), 8 page key, 9 '1' when
/// there is a body, 10 identity, 11 gzip ('' none), 12 br ('' none), 13 stream length, 14 the
/// page's age in ms by the committer's clock, 15 when its loader started (ms since the epoch,
/// the committer's clock; 0: unknown), 16… the new tags.
///
/// The page's invalidation mark (field `mark`, see [`PUBLISH_MARKS`]) stays on the new version
/// when it was made after the loader started (the loader may have read the old data), and is
/// cleared otherwise.
///
/// A written page is one past the larger of the stored generation and the one it replaced (a
/// counter: no clock decides which version is newer, and it keeps growing after Redis lost its
/// data), and its `at` is Redis's own time minus the page's age, from which every instance
/// reads its age.
///
/// Returns `{1, generation, mark}` (written; `mark`: the mark the new version keeps, '' for
/// none), `{0, stored generation, ''}` (rejected: fenced, or a write-back of a version another
/// instance replaced meanwhile) or `{2, stored generation, ''}` (unchanged, kept).
const COMMIT: &str = r#"
local token = tonumber(ARGV[1])
local base = tonumber(ARGV[2])
local stored = redis.call('HMGET', KEYS[1], 'gen', 'fence', 'etag', 'meta', 'mark')
local stored_gen = tonumber(stored[1] or '0') or 0
local stored_fence = tonumber(stored[2] or '0') or 0
if token > 0 then
  if token <= stored_fence then return {0, stored_gen, ''} end
elseif stored_gen > base then
  return {0, stored_gen, ''}
end
local function release()
  if token > 0 and redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
end
if ARGV[7] == '1' and stored[3] and stored[3] ~= '' and stored[3] == ARGV[3] then
  release()
  return {2, stored_gen, ''}
end
local gen = math.max(stored_gen, base) + 1
local time = redis.call('TIME')
local at = string.format('%.0f', tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000) - tonumber(ARGV[14]))
local new_tags = {}
for i = 16, #ARGV do new_tags[ARGV[i]] = true end
if stored[4] then
  local old = cjson.decode(stored[4]).tags or {}
  for _, tag in ipairs(old) do
    if not new_tags[tag] then redis.call('SREM', ARGV[5] .. tag, ARGV[8]) end
  end
end
for tag, _ in pairs(new_tags) do redis.call('SADD', ARGV[5] .. tag, ARGV[8]) end
local gen_text = string.format('%.0f', gen)
redis.call('HSET', KEYS[1], 'gen', gen_text, 'at', at, 'etag', ARGV[3], 'meta', ARGV[4], 'origin', ARGV[6])
if token > 0 then redis.call('HSET', KEYS[1], 'fence', ARGV[1]) end
if ARGV[9] == '1' then
  redis.call('HSET', KEYS[1], 'identity', ARGV[10])
  if ARGV[11] ~= '' then redis.call('HSET', KEYS[1], 'gzip', ARGV[11]) else redis.call('HDEL', KEYS[1], 'gzip') end
  if ARGV[12] ~= '' then redis.call('HSET', KEYS[1], 'br', ARGV[12]) else redis.call('HDEL', KEYS[1], 'br') end
else
  redis.call('HDEL', KEYS[1], 'identity', 'gzip', 'br')
end
local mark = ''
if stored[5] then
  local at = tonumber(cjson.decode(stored[5]).at_ms) or 0
  if at > tonumber(ARGV[15]) then mark = stored[5] else redis.call('HDEL', KEYS[1], 'mark') end
end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[13], '*', 'k', ARGV[8], 'g', gen_text, 'o', ARGV[6])
release()
return {1, gen, mark}
"#;

/// `KEYS`: events. `ARGV`: 1 origin instance, 2 stream length, 3 the page key prefix, then
/// pairs of page key and mark JSON (`{"mode":…,"at_ms":…,"cause":…}`).
///
/// Marks each page Redis holds (field `mark` of its hash; a page it does not hold is left
/// out): an `expire` already there is not weakened by a `stale` (the later time is kept).
/// Then one event names every page marked: `marks` (a JSON array of `[key, mark]`) and `o`.
/// Returns the keys marked.
const PUBLISH_MARKS: &str = r#"
local marked, keys = {}, {}
for i = 4, #ARGV, 2 do
  local page = ARGV[3] .. ARGV[i]
  if redis.call('EXISTS', page) == 1 then
    local new = cjson.decode(ARGV[i + 1])
    local old = redis.call('HGET', page, 'mark')
    if old then
      old = cjson.decode(old)
      if old.mode == 'expire' and new.mode == 'stale' then
        old.at_ms = math.max(tonumber(old.at_ms), tonumber(new.at_ms))
        new = old
      end
    end
    local text = cjson.encode(new)
    redis.call('HSET', page, 'mark', text)
    table.insert(marked, {ARGV[i], new})
    table.insert(keys, ARGV[i])
  end
end
if #marked > 0 then
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'marks', cjson.encode(marked), 'o', ARGV[1])
end
return keys
"#;

/// The scripts, loaded once per process (`EVALSHA`, falling back to `EVAL` after a restart).
pub(super) struct Scripts {
    pub acquire: Script,
    pub renew: Script,
    pub release: Script,
    pub commit: Script,
    pub publish_marks: Script,
}

pub(super) fn scripts() -> &'static Scripts {
    static SCRIPTS: OnceLock<Scripts> = OnceLock::new();
    SCRIPTS.get_or_init(|| Scripts {
        acquire: Script::new(ACQUIRE),
        renew: Script::new(RENEW),
        release: Script::new(RELEASE),
        commit: Script::new(COMMIT),
        publish_marks: Script::new(PUBLISH_MARKS),
    })
}
