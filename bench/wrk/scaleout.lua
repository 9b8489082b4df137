-- wrk script of the scale-out scenario: batch sends and batch receives spread over many queues
-- and over the Skiff replicas, in one closed loop.
-- Environment:
--   BENCH_ADDRS         the replicas, "127.0.0.1:PORT,127.0.0.1:PORT"; wrk thread i talks to
--                       replica i mod n (run as many threads as replicas, or a multiple)
--   BENCH_QUEUES        how many queues (named BENCH_QUEUE_PREFIX0 .. BENCH_QUEUE_PREFIX<n-1>)
--   BENCH_QUEUE_PREFIX  the queues' common name
--   BENCH_BATCH_BODY    the body of a batch POST (a JSON array of messages)
--   BENCH_MAX           `max` of a batch receive
--   BENCH_TIMEOUT_MS    `timeout` of a batch receive (a long-poll when the queue is empty)
-- Each thread sends, in turn, POST /api/<q>/batch and GET /api/<q>/batch?max=..&timeout=.. to
-- the same queue, then moves to the next queue (threads start at different queues). A receive
-- takes no visibility, so it is acknowledged with the answer. Prints the same
-- `BENCH ok=<n> bad=<n> errors=<n> status=<code>:<n>,...` line as request.lua; ok counts the
-- sends (201), the statuses tell the receives (200), the empty waits (204) and anything else.
local addrs = {}
for spec in string.gmatch(os.getenv("BENCH_ADDRS") or "", "[^,]+") do
    table.insert(addrs, spec)
end

local threads = {}

function setup(thread)
    local index = #threads
    local spec = addrs[index % #addrs + 1]
    local host, port = string.match(spec, "^(.+):(%d+)$")
    thread.addr = wrk.lookup(host, port)[1]
    thread:set("index", index)
    table.insert(threads, thread)
end

function init(args)
    local queues = tonumber(os.getenv("BENCH_QUEUES") or "48")
    local prefix = os.getenv("BENCH_QUEUE_PREFIX") or "bench-so-"
    local body = os.getenv("BENCH_BATCH_BODY") or "[{}]"
    local query = string.format("?max=%d&timeout=%d", tonumber(os.getenv("BENCH_MAX") or "10"),
        tonumber(os.getenv("BENCH_TIMEOUT_MS") or "1000"))
    local headers = { ["Content-Type"] = "application/json" }
    sends, receives = {}, {}
    for q = 0, queues - 1 do
        local path = "/api/" .. prefix .. q .. "/batch"
        sends[q + 1] = wrk.format("POST", path, headers, body)
        receives[q + 1] = wrk.format("GET", path .. query, {})
    end
    count = #sends
    -- Threads start spread over the queues, so that they do not march in step.
    turn = 2 * math.floor((index or 0) * count / math.max(1, #addrs))
    statuses = {}
end

function request()
    turn = turn + 1
    local q = math.floor(turn / 2) % count + 1
    if turn % 2 == 0 then return sends[q] end
    return receives[q]
end

function response(status, headers, body)
    statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
    local total = {}
    for _, thread in ipairs(threads) do
        local counts = thread:get("statuses")
        for status, n in pairs(counts) do
            total[status] = (total[status] or 0) + n
        end
    end
    local ok, bad, parts = 0, 0, {}
    for status, n in pairs(total) do
        if status == 201 then ok = ok + n elseif status ~= 200 and status ~= 204 then bad = bad + n end
        table.insert(parts, status .. ":" .. n)
    end
    table.sort(parts)
    io.write(string.format("BENCH ok=%d bad=%d errors=%d status=%s\n", ok, bad,
        summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
        table.concat(parts, ",")))
end
