/*
 * queue_scripts: the Lua scripts behind every queue write that touches more
 * than one key, so that each outcome is atomic in Redis (a job is never
 * both acknowledged and lost, never both in the retry set and the stream).
 * Included by queue.c only. Loaded with SCRIPT LOAD on every connection
 * (a restarted Redis has an empty script cache) and run with EVALSHA.
 *
 * Rules they share:
 * - A script stops at the first error but keeps what it already wrote, so
 *   every check that can fail (a key of the wrong type) comes before the
 *   first write, and the first write is the XACK, which also decides
 *   whether anything happens: 0 (the entry was not pending: already
 *   finished, or a replay of a write whose reply was lost) returns 0 with
 *   nothing else written. Replays are therefore harmless.
 * - The job's state record (data-sent) is deleted with its outcome: the
 *   XACK in the same script already says the job is finished, and a record
 *   kept for state_ttl per job would grow Redis with every message sent.
 * - Time comes from Redis (TIME), one clock for every host; Redis 7
 *   replicates the effects of a script, so that is allowed.
 * - A retry-set member is the job serialised as length-prefixed strings,
 *   "<len>:<bytes>" repeated: the original entry ID (which keeps members
 *   unique), then name, value, name, value... Binary-safe, and trivial to
 *   take apart in Lua.
 *
 * Retry and dead scripts: KEYS[1] stream, KEYS[2] events, KEYS[3] state
 * record, KEYS[4] retry set or dead stream. (The ack script takes a batch
 * of jobs; its layout is above it.) ARGV[1] group, ARGV[2] entry
 * ID, ARGV[3] events MAXLEN ("0": no trim), ARGV[4] dead-letter MAXLEN for
 * the dead script ("0": no trim; the state TTL, unused, for the retry one),
 * ARGV[5] keep acked entries ("1") or XDEL them ("0"), then per script.
 * The events come last: their count, then per entry the number of values
 * and the values (name, value, ...).
 */
#ifndef RINGMAIL_QUEUE_SCRIPTS_H
#define RINGMAIL_QUEUE_SCRIPTS_H

enum queue_script {
    QUEUE_SCRIPT_ACK = 0,
    QUEUE_SCRIPT_RETRY = 1,
    QUEUE_SCRIPT_DEAD = 2,
    QUEUE_SCRIPT_PROMOTE = 3,
    QUEUE_SCRIPT_STATS = 4,
    QUEUE_SCRIPT_LAST_DEAD = 5,
    QUEUE_SCRIPT__COUNT
};

/* The prelude of the outcome scripts: type checks, the XACK gate, the
 * events entry. */
#define QUEUE_LUA_OUTCOME                                                                          \
    "local function bad(k, t)\n"                                                                   \
    "  local ty = redis.call('TYPE', k)['ok']\n"                                                   \
    "  if ty ~= 'none' and ty ~= t then return 'WRONGTYPE ' .. k .. ' is not a ' .. t end\n"       \
    "  return nil\n"                                                                               \
    "end\n"                                                                                        \
    "local function gate()\n"                                                                      \
    "  if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return false end\n"              \
    "  if ARGV[5] == '0' then redis.call('XDEL', KEYS[1], ARGV[2]) end\n"                          \
    "  return true\n"                                                                              \
    "end\n"                                                                                        \
    "local function event(outcome, first)\n"                                                       \
    "  local i = first + 1\n"                                                                      \
    "  for _ = 1, tonumber(ARGV[first]) do\n"                                                      \
    "    local n = tonumber(ARGV[i])\n"                                                            \
    "    local a = {KEYS[2]}\n"                                                                    \
    "    if ARGV[3] ~= '0' then a[#a+1] = 'MAXLEN'; a[#a+1] = '~'; a[#a+1] = ARGV[3] end\n"        \
    "    a[#a+1] = '*'; a[#a+1] = 'outcome'; a[#a+1] = outcome\n"                                  \
    "    a[#a+1] = 'entry'; a[#a+1] = ARGV[2]\n"                                                   \
    "    for j = i + 1, i + n do a[#a+1] = ARGV[j] end\n"                                          \
    "    redis.call('XADD', unpack(a))\n"                                                          \
    "    i = i + n + 1\n"                                                                          \
    "  end\n"                                                                                      \
    "  redis.call('DEL', KEYS[3])\n"                                                               \
    "end\n"

/* clang-format off */

/* Acks of many jobs at once (queue_acks.c): KEYS[1] stream, KEYS[2] events,
 * KEYS[2 + j] job j's state record; ARGV[1] group, ARGV[2] maxlen ('0':
 * none), ARGV[3] state TTL (unused), ARGV[4] keep ('0': XDEL the acked entry), then
 * for each job its entry ID, the number of its events and each event as
 * (2 * fields, fields). Per job, as the other outcomes: nothing unless its
 * XACK acknowledges it (then its state record goes). The XDEL and the DEL
 * of the acknowledged go once for the batch at the end: a script is
 * atomic, so nobody sees the difference, and each redis.call from Lua
 * costs about a microsecond of Redis's one core. Returns one 1 or 0 per
 * job. */
static const char queue_lua_ack[] =
    "local ty = redis.call('TYPE', KEYS[2])['ok']\n"
    "if ty ~= 'none' and ty ~= 'stream' then\n"
    "  return redis.error_reply('WRONGTYPE ' .. KEYS[2] .. ' is not a stream')\n"
    "end\n"
    "local res, p, gone, done = {}, 5, {KEYS[1]}, {}\n"
    "local trim = ARGV[2] ~= '0'\n"
    "for j = 3, #KEYS do\n"
    "  local id = ARGV[p]\n"
    "  local ok = redis.call('XACK', KEYS[1], ARGV[1], id) == 1\n"
    "  if ok and ARGV[4] == '0' then gone[#gone+1] = id end\n"
    "  local n = tonumber(ARGV[p + 1])\n"
    "  p = p + 2\n"
    "  for _ = 1, n do\n"
    "    local nf = tonumber(ARGV[p])\n"
    "    if ok and trim then\n"
    "      redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'outcome', 'delivered',\n"
    "                 'entry', id, unpack(ARGV, p + 1, p + nf))\n"
    "    elseif ok then\n"
    "      redis.call('XADD', KEYS[2], '*', 'outcome', 'delivered', 'entry', id,\n"
    "                 unpack(ARGV, p + 1, p + nf))\n"
    "    end\n"
    "    p = p + nf + 1\n"
    "  end\n"
    "  if ok then done[#done+1] = KEYS[j] end\n"
    "  res[#res+1] = ok and 1 or 0\n"
    "end\n"
    "if #gone > 1 then redis.call('XDEL', unpack(gone)) end\n"
    "if #done > 0 then redis.call('DEL', unpack(done)) end\n"
    "return res\n";

/* ARGV[6] delay ms, ARGV[7] the member, ARGV[8..] the events. */
static const char queue_lua_retry[] = QUEUE_LUA_OUTCOME
    "local e = bad(KEYS[2], 'stream') or bad(KEYS[4], 'zset')\n"
    "if e then return redis.error_reply(e) end\n"
    "if not gate() then return 0 end\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "redis.call('ZADD', KEYS[4], now + tonumber(ARGV[6]), ARGV[7])\n"
    "event('retry', 8)\n"
    "return 1\n";

/* ARGV[6] n, ARGV[7 .. 6+n] the dead entry's pairs, then the events. */
static const char queue_lua_dead[] = QUEUE_LUA_OUTCOME
    "local e = bad(KEYS[2], 'stream') or bad(KEYS[4], 'stream')\n"
    "if e then return redis.error_reply(e) end\n"
    "if not gate() then return 0 end\n"
    "local n = tonumber(ARGV[6])\n"
    "local a = {KEYS[4]}\n"
    "if ARGV[4] ~= '0' then a[#a+1] = 'MAXLEN'; a[#a+1] = '~'; a[#a+1] = ARGV[4] end\n"
    "a[#a+1] = '*'\n"
    "for i = 7, 6 + n do a[#a+1] = ARGV[i] end\n"
    "redis.call('XADD', unpack(a))\n"
    "event('dead', 7 + n)\n"
    "return 1\n";

/* The dead letter of a job whose own outcome Redis refused
 * (queue_fallback.c): KEYS[1] stream, KEYS[2] state record, KEYS[3] dead
 * stream, and nothing else, so that a refused events key (a NOPERM is
 * checked on every declared key before the script runs) cannot refuse it
 * too. ARGV[1] group, ARGV[2] entry ID, ARGV[3] dead MAXLEN ('0': none),
 * ARGV[4] keep, ARGV[5..] the entry's pairs (a few, bounded). No events
 * entry: the dead stream is the record. 1, or 0 when not pending. */
static const char queue_lua_last_dead[] =
    "local ty = redis.call('TYPE', KEYS[3])['ok']\n"
    "if ty ~= 'none' and ty ~= 'stream' then\n"
    "  return redis.error_reply('WRONGTYPE ' .. KEYS[3] .. ' is not a stream')\n"
    "end\n"
    "if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end\n"
    "if ARGV[4] == '0' then redis.call('XDEL', KEYS[1], ARGV[2]) end\n"
    "if ARGV[3] ~= '0' then\n"
    "  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', unpack(ARGV, 5))\n"
    "else\n"
    "  redis.call('XADD', KEYS[3], '*', unpack(ARGV, 5))\n"
    "end\n"
    "redis.call('DEL', KEYS[2])\n"
    "return 1\n";

/* KEYS[1] retry set, KEYS[2] stream, KEYS[3] dead stream; ARGV[1] the most
 * members to move, ARGV[2] dead MAXLEN ('0': none). Returns how many moved. ZRANGEBYSCORE and ZREM in one
 * script: a member is in the set or in the stream, never both, and two
 * promoters running at once cannot both move it. A member that does not
 * parse goes to the dead stream rather than blocking the set forever. */
static const char queue_lua_promote[] =
    "local ty = redis.call('TYPE', KEYS[2])['ok']\n"
    "if ty ~= 'none' and ty ~= 'stream' then\n"
    "  return redis.error_reply('WRONGTYPE ' .. KEYS[2] .. ' is not a stream')\n"
    "end\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, ARGV[1])\n"
    "for _, m in ipairs(due) do\n"
    "  local parts, pos, ok = {}, 1, true\n"
    "  while pos <= #m do\n"
    "    local c = string.find(m, ':', pos, true)\n"
    "    local len = c and tonumber(string.sub(m, pos, c - 1))\n"
    "    if not len or len < 0 or c + len > #m then ok = false; break end\n"
    "    parts[#parts+1] = string.sub(m, c + 1, c + len)\n"
    "    pos = c + len + 1\n"
    "  end\n"
    "  if ok and #parts >= 3 and #parts % 2 == 1 then\n"
    "    local a = {KEYS[2], '*'}\n"
    "    for i = 2, #parts do a[#a+1] = parts[i] end\n"
    "    redis.call('XADD', unpack(a))\n"
    "  else\n"
    "    if ARGV[2] ~= '0' then\n"
    "      redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*', 'reason',\n"
    "                 'malformed retry member', 'member', m)\n"
    "    else\n"
    "      redis.call('XADD', KEYS[3], '*', 'reason', 'malformed retry member', 'member', m)\n"
    "    end\n"
    "  end\n"
    "  redis.call('ZREM', KEYS[1], m)\n"
    "end\n"
    "return #due\n";

/* KEYS[1] stream, KEYS[2] retry, KEYS[3] dead, KEYS[4] events; ARGV[1]
 * group. -1 for what cannot be read (a missing group, a wrong type). */
static const char queue_lua_stats[] =
    "local function n(r)\n"
    "  if type(r) == 'number' then return r end\n"
    "  return -1\n"
    "end\n"
    "local p = redis.pcall('XPENDING', KEYS[1], ARGV[1])\n"
    "if type(p) == 'table' and type(p[1]) == 'number' then p = p[1] else p = -1 end\n"
    "return {n(redis.pcall('XLEN', KEYS[1])), p, n(redis.pcall('ZCARD', KEYS[2])),\n"
    "        n(redis.pcall('XLEN', KEYS[3])), n(redis.pcall('XLEN', KEYS[4]))}\n";

/* clang-format on */

static const char *const queue_scripts[QUEUE_SCRIPT__COUNT] = {
    queue_lua_ack,     queue_lua_retry, queue_lua_dead,
    queue_lua_promote, queue_lua_stats, queue_lua_last_dead,
};

static const char *const queue_script_names[QUEUE_SCRIPT__COUNT] = {
    "ack", "retry", "dead", "promote", "stats", "last-dead",
};

#endif
