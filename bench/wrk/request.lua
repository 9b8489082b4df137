-- wrk script shared by every HTTP throughput scenario.
-- Environment:
--   BENCH_METHOD   GET, POST or PUT (default GET)
--   BENCH_BODY     request body, sent verbatim (POST/PUT)
--   BENCH_CTYPE    Content-Type of the body (default application/json)
--   BENCH_EXPECT   the status that counts as a success (default 200)
-- Prints one line `BENCH ok=<n> bad=<n> status=<code>:<n>,...` in done(), so the caller can tell
-- successful operations from errors, empty answers (204) and anything else.
local method = os.getenv("BENCH_METHOD") or "GET"
local body = os.getenv("BENCH_BODY")
local ctype = os.getenv("BENCH_CTYPE") or "application/json"
local expect = tonumber(os.getenv("BENCH_EXPECT") or "200")

local threads = {}

function setup(thread)
    table.insert(threads, thread)
end

function init(args)
    wrk.method = method
    if body ~= nil and body ~= "" then
        wrk.body = body
        wrk.headers["Content-Type"] = ctype
    end
    statuses = {}
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
        if status == expect then ok = ok + n else bad = bad + n end
        table.insert(parts, status .. ":" .. n)
    end
    table.sort(parts)
    io.write(string.format("BENCH ok=%d bad=%d errors=%d status=%s\n", ok, bad,
        summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
        table.concat(parts, ",")))
end
